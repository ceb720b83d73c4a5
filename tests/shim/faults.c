/*
 * SPDX-License-Identifier: MPL-2.0
 *
 * LD_PRELOAD fault shim for the streambuffer tests: makes chosen calls on
 * files under one directory fail with a chosen errno (or write short), for
 * a window of time, as the kernel would. Built by tests/common at run time
 * with `cc`; nothing here is shipped.
 *
 * Environment:
 *   FAULT_DIR       only files whose path starts with this are affected
 *   FAULT_MATCH     ... and whose path contains this (optional)
 *   FAULT_CALLS     comma list: read pread write writev pwrite fdatasync
 *                   fsync ftruncate unlink (unlink and unlinkat) linkat
 *   FAULT_ERRNO     errno number to fail with (default EIO)
 *   FAULT_SHORT     1: write/writev write half of what was asked (of the
 *                   first buffer; one byte when one is asked), no error
 *   FAULT_AFTER_MS  window start, ms after the process loaded the shim (0)
 *   FAULT_FOR_MS    window length in ms (default: for ever)
 *   FAULT_COUNT     inject at most this many faults per call (default: no limit)
 *   FAULT_LOG       file to append one line per injected fault to
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

static long long start_ms;

static long long now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

__attribute__((constructor)) static void init(void) { start_ms = now_ms(); }

static const char *const CALLS[] = {"read", "pread", "write", "writev", "pwrite", "fdatasync",
                                     "fsync", "ftruncate", "unlink", "linkat"};
static int injected[sizeof CALLS / sizeof CALLS[0]];

static int *counter(const char *call) {
    for (size_t i = 0; i < sizeof CALLS / sizeof CALLS[0]; i++)
        if (strcmp(CALLS[i], call) == 0) return &injected[i];
    return &injected[0];
}

static int in_window(const char *call) {
    const char *count = getenv("FAULT_COUNT");
    if (count && __atomic_load_n(counter(call), __ATOMIC_SEQ_CST) >= atoi(count)) return 0;
    const char *after = getenv("FAULT_AFTER_MS");
    const char *len = getenv("FAULT_FOR_MS");
    long long t = now_ms() - start_ms;
    long long a = after ? atoll(after) : 0;
    if (t < a) return 0;
    return !len || t < a + atoll(len);
}

static int call_chosen(const char *call) {
    const char *calls = getenv("FAULT_CALLS");
    if (!calls) return 0;
    size_t n = strlen(call);
    for (const char *p = calls; (p = strstr(p, call)); p += n) {
        int starts = p == calls || p[-1] == ',';
        int ends = p[n] == '\0' || p[n] == ',';
        if (starts && ends) return 1;
    }
    return 0;
}

static int path_chosen(const char *path) {
    const char *dir = getenv("FAULT_DIR");
    const char *match = getenv("FAULT_MATCH");
    if (!dir || !path || strncmp(path, dir, strlen(dir)) != 0) return 0;
    return !match || strstr(path, match) != NULL;
}

static int fd_chosen(int fd) {
    char link[64], path[4096];
    snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
    ssize_t n = readlink(link, path, sizeof path - 1);
    if (n <= 0) return 0;
    path[n] = '\0';
    return path_chosen(path);
}

/* `path` as seen from directory `dirfd` (the *at calls): absolute. */
static const char *at_path(int dirfd, const char *path, char *buf, size_t len) {
    if (!path || path[0] == '/' || dirfd == AT_FDCWD) return path;
    char link[64], dir[4096];
    snprintf(link, sizeof link, "/proc/self/fd/%d", dirfd);
    ssize_t n = readlink(link, dir, sizeof dir - 1);
    if (n <= 0) return path;
    dir[n] = '\0';
    snprintf(buf, len, "%s/%s", dir, path);
    return buf;
}

static void note(const char *call, const char *what) {
    __atomic_add_fetch(counter(call), 1, __ATOMIC_SEQ_CST);
    const char *log = getenv("FAULT_LOG");
    if (!log) return;
    int fd = open(log, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0) return;
    char line[4200];
    int n = snprintf(line, sizeof line, "%s %s\n", call, what ? what : "");
    ssize_t (*real_write)(int, const void *, size_t) = dlsym(RTLD_NEXT, "write");
    if (n > 0 && real_write) (void)real_write(fd, line, (size_t)n);
    close(fd);
}

static int fail_errno(void) {
    const char *e = getenv("FAULT_ERRNO");
    return e ? atoi(e) : EIO;
}

static int short_writes(void) {
    const char *s = getenv("FAULT_SHORT");
    return s && s[0] == '1';
}

#define REAL(ret, name, ...) \
    static ret (*real_##name)(__VA_ARGS__); \
    if (!real_##name) real_##name = dlsym(RTLD_NEXT, #name)

#define FD_FAULT(call, fd) (call_chosen(call) && in_window(call) && fd_chosen(fd))

ssize_t read(int fd, void *buf, size_t count) {
    REAL(ssize_t, read, int, void *, size_t);
    if (FD_FAULT("read", fd)) { note("read", NULL); errno = fail_errno(); return -1; }
    return real_read(fd, buf, count);
}

ssize_t pread64(int fd, void *buf, size_t count, off_t offset) {
    REAL(ssize_t, pread64, int, void *, size_t, off_t);
    if (FD_FAULT("pread", fd)) { note("pread", NULL); errno = fail_errno(); return -1; }
    return real_pread64(fd, buf, count, offset);
}

ssize_t write(int fd, const void *buf, size_t count) {
    REAL(ssize_t, write, int, const void *, size_t);
    if (FD_FAULT("write", fd)) {
        note("write", NULL);
        if (short_writes()) return real_write(fd, buf, count > 1 ? count / 2 : count);
        errno = fail_errno();
        return -1;
    }
    return real_write(fd, buf, count);
}

ssize_t writev(int fd, const struct iovec *iov, int iovcnt) {
    REAL(ssize_t, writev, int, const struct iovec *, int);
    if (FD_FAULT("writev", fd)) {
        note("writev", NULL);
        if (short_writes() && iovcnt > 0) {
            size_t len = iov[0].iov_len > 1 ? iov[0].iov_len / 2 : iov[0].iov_len;
            struct iovec half = {iov[0].iov_base, len};
            return real_writev(fd, &half, 1);
        }
        errno = fail_errno();
        return -1;
    }
    return real_writev(fd, iov, iovcnt);
}

ssize_t pwrite64(int fd, const void *buf, size_t count, off_t offset) {
    REAL(ssize_t, pwrite64, int, const void *, size_t, off_t);
    if (FD_FAULT("pwrite", fd)) { note("pwrite", NULL); errno = fail_errno(); return -1; }
    return real_pwrite64(fd, buf, count, offset);
}

int fdatasync(int fd) {
    REAL(int, fdatasync, int);
    if (FD_FAULT("fdatasync", fd)) { note("fdatasync", NULL); errno = fail_errno(); return -1; }
    return real_fdatasync(fd);
}

int fsync(int fd) {
    REAL(int, fsync, int);
    if (FD_FAULT("fsync", fd)) { note("fsync", NULL); errno = fail_errno(); return -1; }
    return real_fsync(fd);
}

int ftruncate64(int fd, off_t length) {
    REAL(int, ftruncate64, int, off_t);
    if (FD_FAULT("ftruncate", fd)) { note("ftruncate", NULL); errno = fail_errno(); return -1; }
    return real_ftruncate64(fd, length);
}

int ftruncate(int fd, off_t length) {
    REAL(int, ftruncate, int, off_t);
    if (FD_FAULT("ftruncate", fd)) { note("ftruncate", NULL); errno = fail_errno(); return -1; }
    return real_ftruncate(fd, length);
}

int unlink(const char *path) {
    REAL(int, unlink, const char *);
    if (call_chosen("unlink") && in_window("unlink") && path_chosen(path)) {
        note("unlink", path); errno = fail_errno(); return -1;
    }
    return real_unlink(path);
}

int unlinkat(int dirfd, const char *path, int flags) {
    REAL(int, unlinkat, int, const char *, int);
    char full[8192];
    const char *p = at_path(dirfd, path, full, sizeof full);
    if (call_chosen("unlink") && in_window("unlink") && path_chosen(p)) {
        note("unlink", p); errno = fail_errno(); return -1;
    }
    return real_unlinkat(dirfd, path, flags);
}

int linkat(int olddirfd, const char *oldpath, int newdirfd, const char *newpath, int flags) {
    REAL(int, linkat, int, const char *, int, const char *, int);
    char full[8192];
    const char *p = at_path(newdirfd, newpath, full, sizeof full);
    if (call_chosen("linkat") && in_window("linkat") && path_chosen(p)) {
        note("linkat", p); errno = fail_errno(); return -1;
    }
    return real_linkat(olddirfd, oldpath, newdirfd, newpath, flags);
}
