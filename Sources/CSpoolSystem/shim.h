#ifndef SPOOL_SYSTEM_SHIM_H
#define SPOOL_SYSTEM_SHIM_H

#include <openssl/evp.h>
#include <sys/types.h>
#include <unistd.h>
#include <sys/syscall.h>

/// copy_file_range(2), which Glibc declares only under _GNU_SOURCE.
static inline ssize_t spool_copy_file_range(int fd_in, int fd_out, size_t len) {
    return (ssize_t)syscall(SYS_copy_file_range, fd_in, (void *)0, fd_out, (void *)0, len, 0u);
}

#endif
