// SPDX-License-Identifier: MPL-2.0
//! The ring directory as an open handle: every file operation of the writer
//! is made relative to it (`openat`, `unlinkat`, `renameat2`, `linkat`), so
//! that a path swapped for a link or another directory mid-recording never
//! makes the writer touch someone else's files. [`DirHandle::is_named_by_path`]
//! tells when the path no longer names the directory held.
//!
//! Off Unix the same operations go through paths (what the platform offers).

use std::fs::File;
use std::io::{self, Write as _};
use std::path::{Path, PathBuf};

/// What the writer needs to know of an entry of the directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EntryInfo {
    pub is_file: bool,
    pub len: u64,
    /// Names (hard links) it has; `None` where the platform cannot tell.
    pub links: Option<u64>,
}

/// See the module documentation.
#[derive(Debug)]
pub struct DirHandle {
    path: PathBuf,
    #[cfg(unix)]
    fd: rustix::fd::OwnedFd,
}

#[cfg(unix)]
#[allow(clippy::useless_conversion)] // the stat field widths differ between Unix systems
mod imp {
    use std::fs::File;
    use std::io;
    use std::os::unix::fs::MetadataExt;
    use std::path::Path;

    use rustix::fd::AsFd;
    use rustix::fs::{AtFlags, Mode, OFlags};

    use super::{DirHandle, EntryInfo};
    use crate::platform::FILE_MODE;

    fn info(st: &rustix::fs::Stat) -> EntryInfo {
        EntryInfo {
            is_file: rustix::fs::FileType::from_raw_mode(st.st_mode) == rustix::fs::FileType::RegularFile,
            len: u64::try_from(st.st_size).unwrap_or(0),
            links: Some(u64::from(st.st_nlink)),
        }
    }

    impl DirHandle {
        /// Opens the directory at `path` (a link to a directory is followed
        /// here, once: the user may have configured one).
        pub fn open(path: &Path) -> io::Result<DirHandle> {
            let fd = rustix::fs::open(
                path,
                OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
                Mode::empty(),
            )?;
            Ok(DirHandle {
                path: path.to_owned(),
                fd,
            })
        }

        fn open_at(&self, name: &str, flags: OFlags) -> io::Result<File> {
            crate::platform::regular(self.open_raw(name, flags)?)
        }

        fn open_raw(&self, name: &str, flags: OFlags) -> io::Result<File> {
            let fd = rustix::fs::openat(
                self.fd.as_fd(),
                name,
                flags | OFlags::CLOEXEC | OFlags::NOFOLLOW | OFlags::NONBLOCK,
                Mode::from_raw_mode(FILE_MODE),
            )?;
            Ok(File::from(fd))
        }

        /// Creates `name` for writing, failing if anything is there (a link
        /// included, dangling or not).
        pub fn create_new(&self, name: &str) -> io::Result<File> {
            // What `O_EXCL` creates is a new regular file: nothing to check.
            self.open_raw(name, OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL)
        }

        /// Opens the regular file `name` for reading and writing.
        pub fn open_existing(&self, name: &str) -> io::Result<File> {
            self.open_at(name, OFlags::RDWR)
        }

        /// Opens the regular file `name` for reading.
        pub fn open_read_only(&self, name: &str) -> io::Result<File> {
            self.open_at(name, OFlags::RDONLY)
        }

        /// Opens (creating if needed) the regular file `name` for reading
        /// and writing, without truncating it.
        pub fn open_or_create(&self, name: &str) -> io::Result<File> {
            self.open_at(name, OFlags::RDWR | OFlags::CREATE)
        }

        /// Deletes `name` (a file or a link, never what a link points to).
        pub fn remove(&self, name: &str) -> io::Result<()> {
            Ok(rustix::fs::unlinkat(self.fd.as_fd(), name, AtFlags::empty())?)
        }

        /// Renames `from` to `to`, replacing a file at `to`.
        pub fn rename(&self, from: &str, to: &str) -> io::Result<()> {
            Ok(rustix::fs::renameat(self.fd.as_fd(), from, self.fd.as_fd(), to)?)
        }

        /// Gives the file `from` the second name `to`; fails if `to` exists.
        pub fn hard_link(&self, from: &str, to: &str) -> io::Result<()> {
            Ok(rustix::fs::linkat(
                self.fd.as_fd(),
                from,
                self.fd.as_fd(),
                to,
                AtFlags::empty(),
            )?)
        }

        /// Gives the file `name` of this directory a second name, `to`,
        /// outside it (a path); fails if `to` exists. The file linked is
        /// the one in the directory held, whatever its path names now.
        pub fn link_out(&self, name: &str, to: &Path) -> io::Result<()> {
            Ok(rustix::fs::linkat(
                self.fd.as_fd(),
                name,
                rustix::fs::CWD,
                to,
                AtFlags::empty(),
            )?)
        }

        /// Opens the subdirectory `name`, creating it if missing; a link
        /// planted at `name` is refused, never followed.
        pub fn open_subdir(&self, name: &str) -> io::Result<DirHandle> {
            match rustix::fs::mkdirat(self.fd.as_fd(), name, Mode::from_raw_mode(0o755)) {
                Err(e) if e != rustix::io::Errno::EXIST => return Err(e.into()),
                _ => {}
            }
            let fd = rustix::fs::openat(
                self.fd.as_fd(),
                name,
                OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                Mode::empty(),
            )?;
            Ok(DirHandle {
                path: self.path.join(name),
                fd,
            })
        }

        /// Gives the file `name` of this directory the second name `to` in
        /// the directory `other` (on the same filesystem); fails if `to`
        /// exists.
        pub fn link_into(&self, name: &str, other: &DirHandle, to: &str) -> io::Result<()> {
            Ok(rustix::fs::linkat(
                self.fd.as_fd(),
                name,
                other.fd.as_fd(),
                to,
                AtFlags::empty(),
            )?)
        }

        /// What `name` is, without following a link.
        pub fn entry(&self, name: &str) -> io::Result<EntryInfo> {
            Ok(info(&rustix::fs::statat(
                self.fd.as_fd(),
                name,
                AtFlags::SYMLINK_NOFOLLOW,
            )?))
        }

        /// Names in the directory, `.` and `..` left out.
        pub fn names(&self) -> io::Result<Vec<String>> {
            let mut names = Vec::new();
            for entry in rustix::fs::Dir::read_from(self.fd.as_fd())? {
                let entry = entry?;
                if let Ok(name) = entry.file_name().to_str()
                    && name != "."
                    && name != ".."
                {
                    names.push(name.to_owned());
                }
            }
            Ok(names)
        }

        /// Whether the path still names the directory held: false once it
        /// was deleted, renamed, or replaced by a link or another directory.
        #[must_use]
        pub fn is_named_by_path(&self) -> bool {
            match (rustix::fs::fstat(self.fd.as_fd()), std::fs::metadata(&self.path)) {
                (Ok(held), Ok(named)) => u64::from(held.st_dev) == named.dev() && u64::from(held.st_ino) == named.ino(),
                _ => false,
            }
        }

        /// Whether `name` still names the open `file` (not deleted, renamed
        /// away or replaced).
        #[must_use]
        pub fn still_names(&self, file: &File, name: &str) -> bool {
            match (
                file.metadata(),
                rustix::fs::statat(self.fd.as_fd(), name, AtFlags::SYMLINK_NOFOLLOW),
            ) {
                (Ok(open), Ok(named)) => {
                    open.nlink() > 0 && open.dev() == u64::from(named.st_dev) && open.ino() == u64::from(named.st_ino)
                }
                _ => false,
            }
        }

        /// Puts the complete file `tmp` in place of `target`, atomically: a
        /// reader of `target` sees the old file or the new one, never a mix
        /// or nothing.
        ///
        /// On Linux the two are exchanged (`renameat2` with
        /// `RENAME_EXCHANGE`) and the old one, now at `tmp`, is deleted. A
        /// plain rename over an existing file makes ext4 start writing the
        /// new file back at once, from the calling thread, and frees (and
        /// discards) the blocks the old one got that way: half the cost of a
        /// segment rotation was that. Only a file is swapped out (a directory
        /// planted at `target` makes the rename fail instead); where
        /// exchanging is not possible this renames.
        pub fn replace(&self, tmp: &str, target: &str) -> io::Result<()> {
            #[cfg(target_os = "linux")]
            if self.entry(target).is_ok_and(|e| e.is_file) {
                let exchanged = rustix::fs::renameat_with(
                    self.fd.as_fd(),
                    tmp,
                    self.fd.as_fd(),
                    target,
                    rustix::fs::RenameFlags::EXCHANGE,
                );
                if exchanged.is_ok() {
                    let _ = self.remove(tmp);
                    return Ok(());
                }
            }
            self.rename(tmp, target)
        }

        /// Makes renames and creations in the directory durable.
        pub fn sync(&self) -> io::Result<()> {
            Ok(rustix::fs::fsync(self.fd.as_fd())?)
        }

        /// Whether files written here cost less with their blocks reserved
        /// ahead of the writes ([`crate::platform::reserve_blocks`]): on
        /// ext4 only. Its delayed allocation otherwise reserves each block
        /// inside the write that first fills it. On XFS and Btrfs reserving
        /// ahead was measured to cost more, and on tmpfs it would allocate
        /// memory early (docs/performance.md).
        #[must_use]
        pub fn reserves_blocks_ahead(&self) -> bool {
            #[cfg(target_os = "linux")]
            {
                const EXT4_SUPER_MAGIC: i64 = 0xEF53;
                rustix::fs::fstatfs(self.fd.as_fd()).is_ok_and(|fs| i64::from(fs.f_type) == EXT4_SUPER_MAGIC)
            }
            #[cfg(not(target_os = "linux"))]
            {
                false
            }
        }
    }
}

#[cfg(not(unix))]
mod imp {
    use std::fs::{File, OpenOptions};
    use std::io;
    use std::path::Path;

    use super::{DirHandle, EntryInfo};
    use crate::platform;

    impl DirHandle {
        pub fn open(path: &Path) -> io::Result<DirHandle> {
            if !std::fs::metadata(path)?.is_dir() {
                return Err(io::Error::new(io::ErrorKind::InvalidInput, "not a directory"));
            }
            Ok(DirHandle { path: path.to_owned() })
        }

        pub fn create_new(&self, name: &str) -> io::Result<File> {
            platform::create_new(&self.path.join(name))
        }

        pub fn open_existing(&self, name: &str) -> io::Result<File> {
            platform::open_existing(&self.path.join(name))
        }

        pub fn open_read_only(&self, name: &str) -> io::Result<File> {
            platform::open_read_only(&self.path.join(name))
        }

        pub fn open_or_create(&self, name: &str) -> io::Result<File> {
            let path = self.path.join(name);
            if std::fs::symlink_metadata(&path).is_ok_and(|m| m.file_type().is_symlink()) {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    "refusing to follow a symbolic link",
                ));
            }
            OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(false)
                .open(path)
        }

        pub fn remove(&self, name: &str) -> io::Result<()> {
            std::fs::remove_file(self.path.join(name))
        }

        /// See the Unix version: nowhere else.
        #[must_use]
        pub fn reserves_blocks_ahead(&self) -> bool {
            false
        }

        pub fn rename(&self, from: &str, to: &str) -> io::Result<()> {
            std::fs::rename(self.path.join(from), self.path.join(to))
        }

        pub fn hard_link(&self, from: &str, to: &str) -> io::Result<()> {
            std::fs::hard_link(self.path.join(from), self.path.join(to))
        }

        pub fn link_out(&self, name: &str, to: &Path) -> io::Result<()> {
            std::fs::hard_link(self.path.join(name), to)
        }

        pub fn open_subdir(&self, name: &str) -> io::Result<DirHandle> {
            let path = self.path.join(name);
            match std::fs::create_dir(&path) {
                Err(e) if e.kind() != io::ErrorKind::AlreadyExists => return Err(e),
                _ => {}
            }
            DirHandle::open(&path)
        }

        pub fn link_into(&self, name: &str, other: &DirHandle, to: &str) -> io::Result<()> {
            std::fs::hard_link(self.path.join(name), other.path.join(to))
        }

        pub fn entry(&self, name: &str) -> io::Result<EntryInfo> {
            let m = std::fs::symlink_metadata(self.path.join(name))?;
            Ok(EntryInfo {
                is_file: m.file_type().is_file(),
                len: m.len(),
                links: platform::link_count(&m),
            })
        }

        pub fn names(&self) -> io::Result<Vec<String>> {
            let mut names = Vec::new();
            for entry in std::fs::read_dir(&self.path)? {
                if let Some(name) = entry?.file_name().to_str() {
                    names.push(name.to_owned());
                }
            }
            Ok(names)
        }

        #[must_use]
        pub fn is_named_by_path(&self) -> bool {
            self.path.is_dir()
        }

        #[must_use]
        pub fn still_names(&self, file: &File, name: &str) -> bool {
            platform::is_still_named(file, &self.path.join(name))
        }

        pub fn replace(&self, tmp: &str, target: &str) -> io::Result<()> {
            platform::replace(&self.path.join(tmp), &self.path.join(target))
        }

        pub fn sync(&self) -> io::Result<()> {
            platform::sync_dir(&self.path)
        }
    }
}

impl DirHandle {
    /// The path the directory was opened by, for messages.
    #[must_use]
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Creates `name` as a new file, removing whatever is there first (a
    /// file is removed, not emptied; a link is removed as a link, never
    /// followed). Files the ring owns but may find left at their names (by
    /// a crash, an earlier ring, or planted) are made this way.
    pub fn create_anew(&self, name: &str) -> io::Result<File> {
        // Usually nothing is there: no removal tried in vain.
        match self.create_new(name) {
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
            created => return created,
        }
        match self.remove(name) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
            _ => {}
        }
        self.create_new(name)
    }

    /// Replaces `name` with `contents` so that a concurrent reader sees the
    /// old file or the new one, never a mix: a temporary file beside it,
    /// then put in its place.
    pub fn replace_atomically(&self, name: &str, contents: &[u8], sync: bool) -> io::Result<()> {
        let tmp = format!(".{name}.tmp");
        // A leftover from a crash is ours.
        let mut f: File = self.create_anew(&tmp)?;
        f.write_all(contents)?;
        if sync {
            f.sync_data()?;
        }
        drop(f);
        self.replace(&tmp, name)?;
        if sync {
            self.sync()?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn operations_follow_the_directory_not_its_path() {
        let root = tempfile::tempdir().expect("tempdir");
        let (ring, moved, other) = (
            root.path().join("ring"),
            root.path().join("moved"),
            root.path().join("other"),
        );
        std::fs::create_dir(&ring).expect("mkdir");
        std::fs::create_dir(&other).expect("mkdir");
        std::fs::write(other.join("a"), b"precious").expect("write");
        let dir = DirHandle::open(&ring).expect("open");
        dir.create_new("a").expect("create").write_all(b"ring").expect("write");
        assert!(dir.is_named_by_path());
        // The path is swapped for a link to another directory.
        std::fs::rename(&ring, &moved).expect("move");
        #[cfg(unix)]
        std::os::unix::fs::symlink(&other, &ring).expect("symlink");
        assert!(!dir.is_named_by_path(), "the path names something else now");
        dir.replace_atomically("a", b"new", false).expect("replace");
        dir.remove("a").expect("remove");
        assert_eq!(std::fs::read(other.join("a")).expect("read"), b"precious");
        assert!(dir.entry("a").is_err() && !moved.join("a").exists());
    }

    #[test]
    fn only_regular_files_are_opened() {
        let root = tempfile::tempdir().expect("tempdir");
        let dir = DirHandle::open(root.path()).expect("open");
        std::fs::create_dir(root.path().join("d")).expect("mkdir");
        assert!(dir.open_existing("d").is_err());
        #[cfg(unix)]
        {
            std::os::unix::fs::symlink(root.path().join("d"), root.path().join("l")).expect("symlink");
            assert!(dir.open_read_only("l").is_err());
            let fifo = root.path().join("f");
            assert!(
                std::process::Command::new("mkfifo")
                    .arg(&fifo)
                    .status()
                    .is_ok_and(|s| s.success())
            );
            assert!(dir.open_read_only("f").is_err(), "never blocks on a FIFO");
            assert!(dir.create_new("l").is_err(), "a link is in the way");
        }
        assert_eq!(dir.names().expect("list").len(), if cfg!(unix) { 3 } else { 1 });
    }
}
