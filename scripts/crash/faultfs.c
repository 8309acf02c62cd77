/* I/O-error injection for scripts/crash/io_faults.py (docs/RELIABILITY.md, D6).
 *
 * Loaded into apikeyd with LD_PRELOAD. SQLite (bundled, dynamically linked against libc)
 * reads and writes its files with pread64/pwrite64 and syncs them with fsync; this library
 * wraps those three. While a control file exists, a call on a file whose path starts with
 * $FAULTFS_PATH (the database, hence also its -wal and -shm files) fails with EIO:
 *
 *   $FAULTFS_DIR/fail-sync    fsync fails
 *   $FAULTFS_DIR/fail-write   pwrite64 fails
 *   $FAULTFS_DIR/fail-read    pread64 fails
 *
 * Every other file descriptor (sockets, logs) is left alone. Test-only: never shipped.
 * Build: cc -shared -fPIC -O2 -o faultfs.so faultfs.c -ldl
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <unistd.h>

/* Whether `fd` names one of the database's files and the control file `name` exists. */
static int faulty(int fd, const char *name) {
    const char *dir = getenv("FAULTFS_DIR");
    const char *prefix = getenv("FAULTFS_PATH");
    if (dir == NULL || prefix == NULL) {
        return 0;
    }
    char control[PATH_MAX];
    if (snprintf(control, sizeof control, "%s/%s", dir, name) >= (int)sizeof control) {
        return 0;
    }
    if (access(control, F_OK) != 0) {
        return 0;
    }
    char link[64];
    char target[PATH_MAX];
    snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
    ssize_t n = readlink(link, target, sizeof target - 1);
    if (n < 0) {
        return 0;
    }
    target[n] = '\0';
    return strncmp(target, prefix, strlen(prefix)) == 0;
}

int fsync(int fd) {
    static int (*real)(int);
    if (real == NULL) {
        real = (int (*)(int))dlsym(RTLD_NEXT, "fsync");
    }
    if (faulty(fd, "fail-sync")) {
        errno = EIO;
        return -1;
    }
    return real(fd);
}

ssize_t pwrite64(int fd, const void *buf, size_t count, off_t offset) {
    static ssize_t (*real)(int, const void *, size_t, off_t);
    if (real == NULL) {
        real = (ssize_t (*)(int, const void *, size_t, off_t))dlsym(RTLD_NEXT, "pwrite64");
    }
    if (faulty(fd, "fail-write")) {
        errno = EIO;
        return -1;
    }
    return real(fd, buf, count, offset);
}

ssize_t pread64(int fd, void *buf, size_t count, off_t offset) {
    static ssize_t (*real)(int, void *, size_t, off_t);
    if (real == NULL) {
        real = (ssize_t (*)(int, void *, size_t, off_t))dlsym(RTLD_NEXT, "pread64");
    }
    if (faulty(fd, "fail-read")) {
        errno = EIO;
        return -1;
    }
    return real(fd, buf, count, offset);
}
