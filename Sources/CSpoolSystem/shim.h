#ifndef SPOOL_SYSTEM_SHIM_H
#define SPOOL_SYSTEM_SHIM_H

#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <zlib.h>
#include <sys/xattr.h>
#include <sys/types.h>
#include <unistd.h>
#include <sys/syscall.h>
#include <sys/ioctl.h>
#include <fcntl.h>

/// copy_file_range(2), which Glibc declares only under _GNU_SOURCE.
static inline ssize_t spool_copy_file_range(int fd_in, int fd_out, size_t len) {
    return (ssize_t)syscall(SYS_copy_file_range, fd_in, (void *)0, fd_out, (void *)0, len, 0u);
}

/// Starts writing the dirty pages of `fd` to disk without waiting (sync_file_range(2) with
/// SYNC_FILE_RANGE_WRITE over the whole file), so a later fsync has little left to do.
static inline int spool_start_writeback(int fd) {
    return (int)syscall(SYS_sync_file_range, fd, (long long)0, (long long)0, 2u);
}

/// Sets ext2/3/4's "top of directory hierarchies" attribute (`chattr +T`) on a folder, so that
/// the block allocator spreads the folders made in it to block groups of their own. Returns 0,
/// or -1 where the filesystem has no such attribute (nothing changes then).
static inline int spool_mark_top_directory(const char *path) {
    int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) return -1;
    int flags = 0;
    int r = ioctl(fd, 0x80086601 /* FS_IOC_GETFLAGS */, &flags);
    if (r == 0 && !(flags & 0x00020000 /* FS_TOPDIR_FL */)) {
        flags |= 0x00020000;
        r = ioctl(fd, 0x40086602 /* FS_IOC_SETFLAGS */, &flags);
    }
    close(fd);
    return r;
}

/// The size of `fd`'s extended attribute name list (0: it has none), or -1.
static inline long spool_flistxattr_size(int fd) {
    return (long)syscall(SYS_flistxattr, fd, (char *)0, (size_t)0);
}

/// setxattr(2) on a path (for tests that need a file with extended attributes).
static inline int spool_setxattr(const char *path, const char *name, const char *value, size_t size) {
    return (int)syscall(SYS_setxattr, path, name, value, size, 0);
}

/// pipe2(2) with O_CLOEXEC, which Glibc declares only under _GNU_SOURCE.
static inline int spool_pipe_cloexec(int fds[2]) {
    return (int)syscall(SYS_pipe2, fds, O_CLOEXEC);
}

/// posix_spawn's flag for starting the child in a session of its own (a GNU extension).
static const short SPOOL_POSIX_SPAWN_SETSID = 0x80;

#endif
