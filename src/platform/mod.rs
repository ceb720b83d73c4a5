// SPDX-License-Identifier: MPL-2.0
//! The only place that knows about operating systems.
//!
//! Everything else in the crate is portable Rust. Each function here has a
//! Unix implementation and a fallback that is correct, if less capable, on
//! other systems (Windows: no directory fsync, which NTFS does not need; no
//! link count, so evicted files are deleted rather than reused).

mod dir;
#[cfg(target_os = "linux")]
mod gio_types;

pub use dir::DirHandle;

use std::fs::{File, OpenOptions};
use std::io;
use std::path::Path;

/// Permission bits for files the sink creates, before the umask applies.
#[cfg(unix)]
pub const FILE_MODE: u32 = 0o644;

/// Creates `path` for writing, failing if anything already exists there.
///
/// `create_new` maps to `O_CREAT | O_EXCL` (`CREATE_NEW` on Windows), which
/// refuses an existing file *and* a symbolic link, dangling or not, so a link
/// planted where a segment will go is never written through.
pub fn create_new(path: &Path) -> io::Result<File> {
    let mut opts = OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(FILE_MODE);
    }
    opts.open(path)
}

/// Puts the complete file `tmp` in place of `target` where there is no
/// directory handle to do it with ([`DirHandle::replace`] does it on Unix).
#[cfg(not(unix))]
pub fn replace(tmp: &Path, target: &Path) -> io::Result<()> {
    std::fs::rename(tmp, target)
}

/// Replaces `dir/name` with `contents` so that a concurrent reader sees either
/// the old or the new file, never a mix: [`DirHandle::replace_atomically`]
/// for a directory known by its path (a recording's).
pub fn replace_atomically(dir: &Path, name: &str, contents: &[u8], sync: bool) -> io::Result<()> {
    DirHandle::open(dir)?.replace_atomically(name, contents, sync)
}

/// Opens an existing regular file for reading and writing without following
/// a symbolic link in its last component. (The ring's writer opens its files
/// through a [`DirHandle`].)
#[cfg(any(test, not(unix)))]
pub fn open_existing(path: &Path) -> io::Result<File> {
    open_no_follow(path, OpenOptions::new().read(true).write(true))
}

/// Opens an existing file for reading only, without following a symbolic
/// link in its last component.
pub fn open_read_only(path: &Path) -> io::Result<File> {
    open_no_follow(path, OpenOptions::new().read(true))
}

/// Opens `path` with `opts`, refusing a symbolic link in its last component
/// (`O_NOFOLLOW`; elsewhere, checked first) and anything but a regular file.
///
/// The open never blocks (`O_NONBLOCK`): a FIFO planted where a file is
/// expected would otherwise hang the caller in `open` until a writer comes,
/// and SIGINT does not interrupt that. The flag changes nothing for a
/// regular file, which is all this returns.
fn open_no_follow(path: &Path, opts: &mut OpenOptions) -> io::Result<File> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK);
    }
    #[cfg(not(unix))]
    if std::fs::symlink_metadata(path)?.file_type().is_symlink() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "refusing to follow a symbolic link",
        ));
    }
    regular(opts.open(path)?)
}

/// Opens regular file `file` in directory `dirs` (each a plain name) under
/// `root`, following no symbolic link below `root`: every directory is
/// opened relative to the one before (`openat` with `O_NOFOLLOW`), so
/// nothing outside `root` is reached, however the names or the tree look.
/// For a server that hands out files of a tree.
#[cfg_attr(not(feature = "serve"), allow(dead_code))]
pub fn open_beneath(root: &Path, dirs: &[&str], file: &str) -> io::Result<File> {
    #[cfg(unix)]
    {
        use rustix::fs::{CWD, Mode, OFlags, openat};
        let dir_flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC;
        let mut dir = openat(CWD, root, dir_flags, Mode::empty())?;
        for name in dirs {
            dir = openat(&dir, *name, dir_flags | OFlags::NOFOLLOW, Mode::empty())?;
        }
        let flags = OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::CLOEXEC;
        regular(File::from(openat(&dir, file, flags, Mode::empty())?))
    }
    #[cfg(not(unix))]
    {
        let mut path = root.to_path_buf();
        for name in dirs {
            path.push(name);
            if std::fs::symlink_metadata(&path)?.file_type().is_symlink() {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    "refusing to follow a symbolic link",
                ));
            }
        }
        open_read_only(&path.join(file))
    }
}

/// Calls `changed`, on a thread of its own, each time something in
/// directory `dir` is written, created, renamed or removed (Linux: inotify;
/// elsewhere every 100 ms), until it returns `false` or the directory goes.
/// For waiting on a writer's progress without polling it.
#[cfg_attr(not(feature = "serve"), allow(dead_code))]
pub fn watch_dir(dir: &Path, mut changed: impl FnMut() -> bool + Send + 'static) -> io::Result<()> {
    #[cfg(target_os = "linux")]
    {
        use rustix::fs::inotify::{self, CreateFlags, ReadFlags, WatchFlags};
        let fd = inotify::init(CreateFlags::CLOEXEC)?;
        let flags = WatchFlags::MODIFY
            | WatchFlags::CLOSE_WRITE
            | WatchFlags::CREATE
            | WatchFlags::MOVED_TO
            | WatchFlags::MOVED_FROM
            | WatchFlags::DELETE
            | WatchFlags::DELETE_SELF;
        inotify::add_watch(&fd, dir, flags)?;
        std::thread::Builder::new()
            .name("streambuffer-watch".into())
            .spawn(move || {
                let mut buf = [std::mem::MaybeUninit::<u8>::uninit(); 4096];
                loop {
                    let mut reader = inotify::Reader::new(&fd, &mut buf);
                    // One blocking read, then what else it brought.
                    let mut gone = match reader.next() {
                        Ok(event) => event.events().contains(ReadFlags::IGNORED),
                        Err(_) => true,
                    };
                    while !reader.is_buffer_empty() {
                        match reader.next() {
                            Ok(event) => gone |= event.events().contains(ReadFlags::IGNORED),
                            Err(_) => break,
                        }
                    }
                    if !changed() || gone {
                        return;
                    }
                }
            })?;
        Ok(())
    }
    #[cfg(not(target_os = "linux"))]
    {
        let dir = dir.to_path_buf();
        std::thread::Builder::new()
            .name("streambuffer-watch".into())
            .spawn(move || {
                while dir.is_dir() && changed() {
                    std::thread::sleep(std::time::Duration::from_millis(100));
                }
            })?;
        Ok(())
    }
}

/// `file` if it is a regular file, else an error saying it is not.
pub(crate) fn regular(file: File) -> io::Result<File> {
    if file.metadata()?.is_file() {
        Ok(file)
    } else {
        Err(io::Error::new(io::ErrorKind::InvalidInput, "not a regular file"))
    }
}

/// Reads what is left of `file`, refusing more than `max_len` bytes.
pub fn read_to_end_bounded(file: File, max_len: u64) -> io::Result<Vec<u8>> {
    use std::io::Read as _;
    let mut data = Vec::new();
    file.take(max_len.saturating_add(1)).read_to_end(&mut data)?;
    if data.len() as u64 > max_len {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("larger than {max_len} bytes"),
        ));
    }
    Ok(data)
}

/// Bytes available to an unprivileged writer on the filesystem holding
/// `dir` (`statvfs`, `GetDiskFreeSpaceExW`: `fs4` asks each system its own
/// way), or `None` when it cannot be told.
#[must_use]
pub fn free_space(dir: &Path) -> Option<u64> {
    fs4::available_space(dir).ok()
}

/// CPU time the calling thread has used (`CLOCK_THREAD_CPUTIME_ID`), or
/// `None` where the platform cannot tell: what a worker thread reports it
/// cost.
#[must_use]
#[cfg_attr(not(feature = "archive"), allow(dead_code))]
pub fn thread_cpu_time() -> Option<std::time::Duration> {
    #[cfg(unix)]
    {
        let t = rustix::time::clock_gettime(rustix::time::ClockId::ThreadCPUTime);
        Some(std::time::Duration::new(
            u64::try_from(t.tv_sec).ok()?,
            u32::try_from(t.tv_nsec).ok()?,
        ))
    }
    #[cfg(not(unix))]
    None
}

/// Whether the open `file` has been deleted from its directory (its last
/// link removed), so that writing to it only fills an invisible file.
/// Always `false` where the platform cannot tell.
#[must_use]
pub fn is_unlinked(file: &File) -> bool {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        file.metadata().is_ok_and(|m| m.nlink() == 0)
    }
    #[cfg(not(unix))]
    {
        let _ = file;
        false
    }
}

/// Reserves disk blocks for `len` bytes of `file` from `offset` without
/// changing its size (`fallocate` with `FALLOC_FL_KEEP_SIZE`): readers see
/// the same file, and cutting it to its length releases what was not used.
/// Fails where the system or the filesystem cannot do it.
pub fn reserve_blocks(file: &File, offset: u64, len: u64) -> io::Result<()> {
    #[cfg(target_os = "linux")]
    {
        Ok(rustix::fs::fallocate(
            file,
            rustix::fs::FallocateFlags::KEEP_SIZE,
            offset,
            len,
        )?)
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = (file, offset, len);
        Err(io::Error::from(io::ErrorKind::Unsupported))
    }
}

/// Reads at `offset` without moving the file's cursor; returns the bytes read.
pub fn read_at(file: &File, buf: &mut [u8], offset: u64) -> io::Result<usize> {
    #[cfg(unix)]
    {
        std::os::unix::fs::FileExt::read_at(file, buf, offset)
    }
    #[cfg(windows)]
    {
        std::os::windows::fs::FileExt::seek_read(file, buf, offset)
    }
}

/// Writes all of `buf` at `offset` without moving the file's cursor.
pub fn write_all_at(file: &File, buf: &[u8], offset: u64) -> io::Result<()> {
    #[cfg(unix)]
    {
        std::os::unix::fs::FileExt::write_all_at(file, buf, offset)
    }
    #[cfg(windows)]
    {
        let mut done = 0;
        while done < buf.len() {
            match std::os::windows::fs::FileExt::seek_write(file, &buf[done..], offset + done as u64) {
                Ok(0) => return Err(io::Error::from(io::ErrorKind::WriteZero)),
                Ok(n) => done += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }
}

/// Names (hard links) the file has; `None` where the platform cannot tell
/// (then nothing that depends on a file having no other name, such as
/// writing over an evicted segment a recording may have linked, is done).
#[must_use]
pub fn link_count(meta: &std::fs::Metadata) -> Option<u64> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        Some(meta.nlink())
    }
    #[cfg(not(unix))]
    {
        let _ = meta;
        None
    }
}

/// What identifies an open file on its filesystem (device and inode on
/// Unix): while the file is open its inode cannot be given to another, so
/// a path whose entry has the same identity names this very file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileId {
    #[cfg(unix)]
    dev: u64,
    #[cfg(unix)]
    ino: u64,
}

/// The identity of the open `file`, where the platform has one.
#[must_use]
pub fn file_id(file: &File) -> Option<FileId> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        file.metadata().ok().map(|m| FileId {
            dev: m.dev(),
            ino: m.ino(),
        })
    }
    #[cfg(not(unix))]
    {
        let _ = file;
        None
    }
}

/// [`is_still_named`] for a file whose identity `id` was taken when it was
/// opened: one look at the path instead of two, for readers that ask often.
#[must_use]
pub fn still_names(path: &Path, file: &File, id: Option<FileId>) -> bool {
    #[cfg(unix)]
    if let Some(id) = id {
        use std::os::unix::fs::MetadataExt;
        return std::fs::symlink_metadata(path).is_ok_and(|m| m.dev() == id.dev && m.ino() == id.ino);
    }
    #[cfg(not(unix))]
    let _ = id;
    is_still_named(file, path)
}

/// Whether `path` still names the open `file`: false once the file was
/// deleted, renamed away or replaced (say, reused for another segment).
/// Where the platform cannot compare files, whether it was deleted.
#[must_use]
pub fn is_still_named(file: &File, path: &Path) -> bool {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        match (file.metadata(), std::fs::symlink_metadata(path)) {
            (Ok(open), Ok(named)) => open.nlink() > 0 && open.dev() == named.dev() && open.ino() == named.ino(),
            _ => false,
        }
    }
    #[cfg(not(unix))]
    {
        !is_unlinked(file) && path.exists()
    }
}

/// Creates `dir`, readable by its owner only (where the platform has
/// modes): what a reader caches may not be for every user of the machine.
pub fn create_private_dir(dir: &Path) -> io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        std::fs::DirBuilder::new().mode(0o700).create(dir)
    }
    #[cfg(not(unix))]
    {
        std::fs::DirBuilder::new().create(dir)
    }
}

/// Whether process `pid` still runs (where that cannot be known: yes, so
/// that nothing of it is removed).
pub fn process_exists(pid: u32) -> bool {
    #[cfg(unix)]
    {
        let Ok(pid) = libc::pid_t::try_from(pid) else {
            return true;
        };
        // SAFETY: signal 0 only checks that the process exists.
        let alive = unsafe { libc::kill(pid, 0) } == 0;
        alive || io::Error::last_os_error().raw_os_error() != Some(libc::ESRCH)
    }
    #[cfg(not(unix))]
    {
        let _ = pid;
        true
    }
}

/// Makes a rename or a file creation in `dir` durable.
#[cfg(not(unix))]
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    #[cfg(unix)]
    {
        File::open(dir)?.sync_all()
    }
    #[cfg(not(unix))]
    {
        let _ = dir;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn create_new_refuses_existing_files_and_symlinks() {
        let dir = tempfile::tempdir().expect("tempdir");
        let target = dir.path().join("target");
        std::fs::write(&target, b"precious").expect("write");
        assert_eq!(
            create_new(&target).map(|_| ()).map_err(|e| e.kind()),
            Err(io::ErrorKind::AlreadyExists)
        );
        #[cfg(unix)]
        {
            let link = dir.path().join("link");
            std::os::unix::fs::symlink(&target, &link).expect("symlink");
            assert!(create_new(&link).is_err());
            assert!(open_existing(&link).is_err());
            let dangling = dir.path().join("dangling");
            std::os::unix::fs::symlink(dir.path().join("nowhere"), &dangling).expect("symlink");
            assert!(create_new(&dangling).is_err());
            assert!(!dir.path().join("nowhere").exists());
        }
        assert_eq!(std::fs::read(&target).expect("read"), b"precious");
    }

    #[test]
    fn free_space_is_reported() {
        let dir = tempfile::tempdir().expect("tempdir");
        assert!(free_space(dir.path()).is_some_and(|b| b > 0));
        assert_eq!(free_space(&dir.path().join("missing")), None);
    }

    #[test]
    fn a_directory_in_the_way_is_left_alone() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir_all(dir.path().join("p.m3u8").join("inner")).expect("mkdir");
        assert!(replace_atomically(dir.path(), "p.m3u8", b"x", false).is_err());
        assert!(dir.path().join("p.m3u8").join("inner").is_dir());
    }

    #[test]
    fn replaces_atomically_without_following_links() {
        let dir = tempfile::tempdir().expect("tempdir");
        replace_atomically(dir.path(), "p.m3u8", b"one", false).expect("write");
        replace_atomically(dir.path(), "p.m3u8", b"two", true).expect("write");
        assert_eq!(std::fs::read(dir.path().join("p.m3u8")).expect("read"), b"two");
        replace_atomically(dir.path(), "p.m3u8", b"two and a half", false).expect("write");
        assert_eq!(
            std::fs::read(dir.path().join("p.m3u8")).expect("read"),
            b"two and a half"
        );
        // Nothing is left beside it: not the temporary, not the old file.
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .expect("list")
            .map(|e| e.expect("entry").file_name())
            .collect();
        assert_eq!(names, ["p.m3u8"]);
        #[cfg(unix)]
        {
            let victim = dir.path().join("victim");
            std::fs::write(&victim, b"keep").expect("write");
            std::os::unix::fs::symlink(&victim, dir.path().join(".p.m3u8.tmp")).expect("symlink");
            replace_atomically(dir.path(), "p.m3u8", b"three", false).expect("write");
            assert_eq!(std::fs::read(&victim).expect("read"), b"keep");
        }
    }
}
