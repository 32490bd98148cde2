/*
 * powercut shim: an LD_PRELOAD library that records, for every file operation a process makes
 * under one directory (POWERCUT_ROOT), what it did and when it asked for durability, so that the
 * state a power cut would leave can be computed afterwards (harness/powercut/model.ts replays the
 * trace: only data that was fsynced and directory entries whose directory was fsynced survive).
 * This is the ALICE / CrashMonkey approach, at the C library boundary instead of a block device.
 *
 * Environment (read once at load, then removed so that children the process starts do not load
 * the shim):
 *   POWERCUT_ROOT        the directory whose files are modelled (absolute; other paths pass through)
 *   POWERCUT_TRACE       the trace file (outside the root), appended to
 *   POWERCUT_CTL         a UNIX socket path: a byte written to it cuts the power
 *   POWERCUT_AT_OP       cut the power before the Nth recorded operation instead (1-based)
 *   POWERCUT_MARK_FD     what the process writes to this descriptor (its stdout: 1) is recorded in
 *                        the trace, in order with the file operations: what it had reported at
 *                        each point of the trace is known
 *   POWERCUT_DROP_FSYNC  ':'-separated fnmatch patterns: fsync/fdatasync of a file or directory
 *                        opened under a matching path is answered 0 and NOT recorded, as if the
 *                        call had been deleted from the source (the mutation check)
 *
 * The cut: under the one lock every recorded operation holds (so no operation is half done and
 * half recorded), a CUT record is written and the process kills itself with SIGKILL.
 * Real fsyncs of modelled files are not made (the model decides what is durable; the disk's
 * actual durability does not matter to the test and the calls are slow).
 *
 * Intercepted: open/open64/openat/openat64/__open_2/__open64_2/__openat_2/__openat64_2/creat/
 * creat64, write/pwrite/pwrite64/writev/pwritev/pwritev64/pwritev2/pwritev64v2, ftruncate(64),
 * truncate(64), fsync, fdatasync, sync, syncfs, rename/renameat/renameat2, unlink/unlinkat/
 * remove/rmdir, mkdir/mkdirat, link/linkat, symlink/symlinkat, chmod/fchmod/fchmodat, close,
 * dup/dup2/dup3, mmap/mmap64 (shared writable mappings are flagged: their content is not traced),
 * fallocate/posix_fallocate, sendfile/copy_file_range and fopen for writing (flagged unsupported).
 * What is not intercepted (raw syscall(), io_uring) shows up in the model's self-check: at the cut
 * the model's view of the live files must equal the directory on disk.
 *
 * Trace records: u32 length of what follows, u8 op, then the op's fields (little endian;
 * strings are u32 length + bytes). See model.ts for the reader.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <fnmatch.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <unistd.h>

enum {
  OP_START = 1, OP_OPEN = 2, OP_WRITE = 3, OP_TRUNC = 4, OP_FSYNC = 5, OP_RENAME = 6, OP_UNLINK = 7,
  OP_RMDIR = 8, OP_MKDIR = 9, OP_LINK = 10, OP_SYNCALL = 11, OP_MMAP = 12, OP_CHMOD = 13,
  OP_UNSUPPORTED = 14, OP_CUT = 15, OP_DROPPED = 16, OP_MARK = 17
};

#define MAXFD 65536
struct fdinfo {
  uint8_t tracked, isdir, sync, drop;
  uint64_t ino, dev;
};
static struct fdinfo fdt[MAXFD];

static int active;
static char root[PATH_MAX];
static size_t rootlen;
static int tracefd = -1;
static uint64_t nops;
static uint64_t cut_at;
static int mark_fd = -1;
static char drop_patterns[4096];
static pthread_mutex_t lk = PTHREAD_MUTEX_INITIALIZER;

#define REAL(name) real_##name
#define DECL(ret, name, ...) static ret (*real_##name)(__VA_ARGS__)
DECL(int, open, const char *, int, ...);
DECL(int, open64, const char *, int, ...);
DECL(int, openat, int, const char *, int, ...);
DECL(int, openat64, int, const char *, int, ...);
DECL(int, __open_2, const char *, int);
DECL(int, __open64_2, const char *, int);
DECL(int, __openat_2, int, const char *, int);
DECL(int, __openat64_2, int, const char *, int);
DECL(int, creat, const char *, mode_t);
DECL(int, creat64, const char *, mode_t);
DECL(ssize_t, write, int, const void *, size_t);
DECL(ssize_t, pwrite, int, const void *, size_t, off_t);
DECL(ssize_t, pwrite64, int, const void *, size_t, off64_t);
DECL(ssize_t, writev, int, const struct iovec *, int);
DECL(ssize_t, pwritev, int, const struct iovec *, int, off_t);
DECL(ssize_t, pwritev64, int, const struct iovec *, int, off64_t);
DECL(ssize_t, pwritev2, int, const struct iovec *, int, off_t, int);
DECL(ssize_t, pwritev64v2, int, const struct iovec *, int, off64_t, int);
DECL(int, ftruncate, int, off_t);
DECL(int, ftruncate64, int, off64_t);
DECL(int, truncate, const char *, off_t);
DECL(int, truncate64, const char *, off64_t);
DECL(int, fsync, int);
DECL(int, fdatasync, int);
DECL(void, sync, void);
DECL(int, syncfs, int);
DECL(int, rename, const char *, const char *);
DECL(int, renameat, int, const char *, int, const char *);
DECL(int, renameat2, int, const char *, int, const char *, unsigned int);
DECL(int, unlink, const char *);
DECL(int, unlinkat, int, const char *, int);
DECL(int, remove, const char *);
DECL(int, rmdir, const char *);
DECL(int, mkdir, const char *, mode_t);
DECL(int, mkdirat, int, const char *, mode_t);
DECL(int, link, const char *, const char *);
DECL(int, linkat, int, const char *, int, const char *, int);
DECL(int, symlink, const char *, const char *);
DECL(int, symlinkat, const char *, int, const char *);
DECL(int, chmod, const char *, mode_t);
DECL(int, fchmod, int, mode_t);
DECL(int, fchmodat, int, const char *, mode_t, int);
DECL(int, close, int);
DECL(int, dup, int);
DECL(int, dup2, int, int);
DECL(int, dup3, int, int, int);
DECL(void *, mmap, void *, size_t, int, int, int, off_t);
DECL(void *, mmap64, void *, size_t, int, int, int, off64_t);
DECL(int, fallocate, int, int, off_t, off_t);
DECL(int, fallocate64, int, int, off64_t, off64_t);
DECL(int, posix_fallocate, int, off_t, off_t);
DECL(int, posix_fallocate64, int, off64_t, off64_t);
DECL(ssize_t, sendfile, int, int, off_t *, size_t);
DECL(ssize_t, sendfile64, int, int, off64_t *, size_t);
DECL(ssize_t, copy_file_range, int, off64_t *, int, off64_t *, size_t, unsigned int);
DECL(FILE *, fopen, const char *, const char *);
DECL(FILE *, fopen64, const char *, const char *);

#define RESOLVE(name) \
  do { \
    if (real_##name == NULL) real_##name = dlsym(RTLD_NEXT, #name); \
  } while (0)

/* ------------------------------------------------------------------ paths */

/* Lexically normalise `p` (relative to dirfd or the cwd) into an absolute path. 0 on success. */
static int abspath(int dirfd, const char *p, char *out) {
  char tmp[PATH_MAX * 2];
  if (p == NULL) return -1;
  if (p[0] == '/') {
    if (strlen(p) >= sizeof tmp) return -1;
    strcpy(tmp, p);
  } else {
    char base[PATH_MAX];
    if (dirfd == AT_FDCWD) {
      if (getcwd(base, sizeof base) == NULL) return -1;
    } else {
      char link[64];
      snprintf(link, sizeof link, "/proc/self/fd/%d", dirfd);
      ssize_t n = readlink(link, base, sizeof base - 1);
      if (n < 0) return -1;
      base[n] = 0;
    }
    size_t bl = strlen(base), pl = strlen(p);
    if (bl + pl + 2 >= sizeof tmp) return -1;
    memcpy(tmp, base, bl);
    tmp[bl] = '/';
    memcpy(tmp + bl + 1, p, pl + 1);
  }
  /* collapse //, /./ and /../ */
  size_t o = 0;
  const char *s = tmp;
  while (*s) {
    while (*s == '/') s++;
    if (!*s) break;
    const char *e = strchr(s, '/');
    size_t n = e ? (size_t)(e - s) : strlen(s);
    if (n == 1 && s[0] == '.') {
    } else if (n == 2 && s[0] == '.' && s[1] == '.') {
      while (o > 0 && out[o - 1] != '/') o--;
      if (o > 0) o--;
    } else {
      if (o + n + 2 >= PATH_MAX) return -1;
      out[o++] = '/';
      memcpy(out + o, s, n);
      o += n;
    }
    s += n;
  }
  if (o == 0) out[o++] = '/';
  out[o] = 0;
  return 0;
}

static int under_root(const char *abs) {
  return active && strncmp(abs, root, rootlen) == 0 && (abs[rootlen] == 0 || abs[rootlen] == '/');
}

/* 1 and `out` filled if (dirfd, p) names something under the root */
static int tracked_path(int dirfd, const char *p, char *out) {
  if (!active) return 0;
  if (abspath(dirfd, p, out) != 0) return 0;
  return under_root(out);
}

/* ------------------------------------------------------------------ the trace */

struct rec {
  uint8_t buf[2 * PATH_MAX + 128];
  size_t n;
};

static void r_u8(struct rec *r, uint8_t v) { r->buf[r->n++] = v; }
static void r_u32(struct rec *r, uint32_t v) {
  memcpy(r->buf + r->n, &v, 4);
  r->n += 4;
}
static void r_u64(struct rec *r, uint64_t v) {
  memcpy(r->buf + r->n, &v, 8);
  r->n += 8;
}
static void r_str(struct rec *r, const char *s) {
  size_t l = strlen(s);
  r_u32(r, (uint32_t)l);
  memcpy(r->buf + r->n, s, l);
  r->n += l;
}
static void r_begin(struct rec *r, uint8_t op) {
  r->n = 4;
  r_u8(r, op);
}

static void die_trace(void) {
  static const char m[] = "powercut: cannot write the trace\n";
  REAL(write)(2, m, sizeof m - 1);
  _exit(99);
}

static void write_all(const struct iovec *iov, int cnt) {
  struct iovec v[64];
  if (cnt > 64) die_trace();
  memcpy(v, iov, sizeof(struct iovec) * (size_t)cnt);
  int i = 0;
  while (i < cnt) {
    ssize_t w = REAL(writev)(tracefd, v + i, cnt - i);
    if (w < 0) {
      if (errno == EINTR) continue;
      die_trace();
    }
    while (i < cnt && (size_t)w >= v[i].iov_len) w -= (ssize_t)v[i++].iov_len;
    if (i < cnt) {
      v[i].iov_base = (char *)v[i].iov_base + w;
      v[i].iov_len -= (size_t)w;
    }
  }
}

/* Emit a record; `data` (optional) is appended after the fixed fields as u32 length + bytes, from iovecs. */
static void r_emit(struct rec *r, const struct iovec *data, int dcnt, size_t dlen) {
  struct iovec v[64];
  int k = 0;
  if (data != NULL && dcnt > 60) {
    /* many small buffers: one copy */
    char *flat = malloc(dlen);
    if (flat == NULL) die_trace();
    size_t at = 0;
    for (int i = 0; i < dcnt && at < dlen; i++) {
      size_t l = data[i].iov_len < dlen - at ? data[i].iov_len : dlen - at;
      memcpy(flat + at, data[i].iov_base, l);
      at += l;
    }
    struct iovec one = {flat, dlen};
    r_emit(r, &one, 1, dlen);
    free(flat);
    return;
  }
  if (data != NULL) r_u32(r, (uint32_t)dlen);
  uint32_t len = (uint32_t)(r->n - 4 + (data != NULL ? dlen : 0));
  memcpy(r->buf, &len, 4);
  v[k].iov_base = r->buf;
  v[k++].iov_len = r->n;
  size_t left = dlen;
  for (int i = 0; data != NULL && i < dcnt && left > 0 && k < 64; i++) {
    size_t l = data[i].iov_len < left ? data[i].iov_len : left;
    if (l == 0) continue;
    v[k].iov_base = data[i].iov_base;
    v[k++].iov_len = l;
    left -= l;
  }
  if (left > 0) die_trace();
  write_all(v, k);
}

static void cut_now(void) {
  /* called with the lock held: nothing is half done */
  struct rec r;
  r_begin(&r, OP_CUT);
  r_u64(&r, nops);
  r_emit(&r, NULL, 0, 0);
  kill(getpid(), SIGKILL);
  for (;;) pause();
}

static void lock(void) {
  pthread_mutex_lock(&lk);
  nops++;
  if (cut_at != 0 && nops >= cut_at) cut_now();
}
static void unlock(void) { pthread_mutex_unlock(&lk); }

static void rec_simple_path(uint8_t op, const char *p) {
  struct rec r;
  r_begin(&r, op);
  r_str(&r, p);
  r_emit(&r, NULL, 0, 0);
}

static void rec_unsupported(const char *what, const char *p) {
  struct rec r;
  char m[PATH_MAX + 64];
  snprintf(m, sizeof m, "%s %s", what, p);
  r_begin(&r, OP_UNSUPPORTED);
  r_str(&r, m);
  r_emit(&r, NULL, 0, 0);
}

static int drop_match(const char *abs) {
  if (drop_patterns[0] == 0) return 0;
  char pats[sizeof drop_patterns];
  strcpy(pats, drop_patterns);
  char *save = NULL;
  for (char *p = strtok_r(pats, ":", &save); p != NULL; p = strtok_r(NULL, ":", &save)) {
    if (fnmatch(p, abs, 0) == 0) return 1;
  }
  return 0;
}

/* ------------------------------------------------------------------ fd table */

/* the fd still refers to the inode it was opened on (a stale entry would misattribute writes) */
static int fd_live(int fd) {
  if (fd < 0 || fd >= MAXFD || !fdt[fd].tracked) return 0;
  struct stat st;
  if (fstat(fd, &st) != 0 || st.st_ino != fdt[fd].ino || st.st_dev != fdt[fd].dev) {
    fdt[fd].tracked = 0;
    return 0;
  }
  return 1;
}

static int quick_tracked(int fd) { return active && fd >= 0 && fd < MAXFD && fdt[fd].tracked; }

static void after_open(int fd, const char *abs, int flags, mode_t mode) {
  if (fd < 0) return;
  struct stat st;
  if (fstat(fd, &st) != 0) return;
  if (fd >= MAXFD) {
    rec_unsupported("fd beyond the table", abs);
    return;
  }
  fdt[fd].tracked = 1;
  fdt[fd].isdir = S_ISDIR(st.st_mode) ? 1 : 0;
  fdt[fd].sync = (flags & O_DSYNC) ? 1 : 0;
  fdt[fd].drop = (uint8_t)drop_match(abs);
  fdt[fd].ino = st.st_ino;
  fdt[fd].dev = st.st_dev;
  struct rec r;
  r_begin(&r, OP_OPEN);
  r_u64(&r, st.st_ino);
  r_u32(&r, (uint32_t)flags);
  r_u32(&r, (uint32_t)mode);
  r_u8(&r, fdt[fd].isdir);
  r_str(&r, abs);
  r_emit(&r, NULL, 0, 0);
}

static void rec_write(int fd, const struct iovec *iov, int cnt, size_t n, off64_t off) {
  struct rec r;
  r_begin(&r, OP_WRITE);
  r_u64(&r, fdt[fd].ino);
  r_u64(&r, (uint64_t)off);
  r_emit(&r, iov, cnt, n);
  if (fdt[fd].sync) {
    r_begin(&r, OP_FSYNC);
    r_u64(&r, fdt[fd].ino);
    r_u8(&r, 2);
    r_emit(&r, NULL, 0, 0);
  }
}

static void rec_fsync_rwf(int fd, int flags) {
#ifdef RWF_DSYNC
  if (flags & (RWF_DSYNC | RWF_SYNC)) {
    struct rec r;
    r_begin(&r, OP_FSYNC);
    r_u64(&r, fdt[fd].ino);
    r_u8(&r, 2);
    r_emit(&r, NULL, 0, 0);
  }
#else
  (void)fd;
  (void)flags;
#endif
}

/* ------------------------------------------------------------------ control */

static void *ctl_thread(void *arg) {
  int s = (int)(intptr_t)arg;
  for (;;) {
    int c = accept4(s, NULL, NULL, SOCK_CLOEXEC);
    if (c < 0) {
      if (errno == EINTR) continue;
      return NULL;
    }
    char b;
    ssize_t n = read(c, &b, 1);
    if (n == 1) {
      pthread_mutex_lock(&lk);
      cut_now();
    }
    REAL(close)(c);
  }
}

static void atfork_prepare(void) { pthread_mutex_lock(&lk); }
static void atfork_parent(void) { pthread_mutex_unlock(&lk); }
static void atfork_child(void) {
  pthread_mutex_init(&lk, NULL);
  active = 0; /* the child is about to exec something else: it is not the modelled process */
}

__attribute__((constructor)) static void powercut_init(void) {
  RESOLVE(open); RESOLVE(open64); RESOLVE(openat); RESOLVE(openat64); RESOLVE(__open_2); RESOLVE(__open64_2);
  RESOLVE(__openat_2); RESOLVE(__openat64_2); RESOLVE(creat); RESOLVE(creat64); RESOLVE(write); RESOLVE(pwrite);
  RESOLVE(pwrite64); RESOLVE(writev); RESOLVE(pwritev); RESOLVE(pwritev64); RESOLVE(pwritev2); RESOLVE(pwritev64v2);
  RESOLVE(ftruncate); RESOLVE(ftruncate64); RESOLVE(truncate); RESOLVE(truncate64); RESOLVE(fsync); RESOLVE(fdatasync);
  RESOLVE(sync); RESOLVE(syncfs); RESOLVE(rename); RESOLVE(renameat); RESOLVE(renameat2); RESOLVE(unlink);
  RESOLVE(unlinkat); RESOLVE(remove); RESOLVE(rmdir); RESOLVE(mkdir); RESOLVE(mkdirat); RESOLVE(link); RESOLVE(linkat);
  RESOLVE(symlink); RESOLVE(symlinkat); RESOLVE(chmod); RESOLVE(fchmod); RESOLVE(fchmodat); RESOLVE(close); RESOLVE(dup);
  RESOLVE(dup2); RESOLVE(dup3); RESOLVE(mmap); RESOLVE(mmap64); RESOLVE(fallocate); RESOLVE(fallocate64);
  RESOLVE(posix_fallocate); RESOLVE(posix_fallocate64); RESOLVE(sendfile); RESOLVE(sendfile64);
  RESOLVE(copy_file_range); RESOLVE(fopen); RESOLVE(fopen64);

  const char *rt = getenv("POWERCUT_ROOT");
  const char *tr = getenv("POWERCUT_TRACE");
  if (rt == NULL || tr == NULL) return;
  if (realpath(rt, root) == NULL) {
    fprintf(stderr, "powercut: POWERCUT_ROOT %s: %s\n", rt, strerror(errno));
    _exit(98);
  }
  rootlen = strlen(root);
  int fd = REAL(open)(tr, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
  if (fd < 0) die_trace();
  tracefd = fcntl(fd, F_DUPFD_CLOEXEC, 1000);
  if (tracefd < 0) tracefd = fd;
  else REAL(close)(fd);
  const char *at = getenv("POWERCUT_AT_OP");
  if (at != NULL) cut_at = strtoull(at, NULL, 10);
  const char *mf = getenv("POWERCUT_MARK_FD");
  if (mf != NULL) mark_fd = atoi(mf);
  const char *dp = getenv("POWERCUT_DROP_FSYNC");
  if (dp != NULL && strlen(dp) < sizeof drop_patterns) strcpy(drop_patterns, dp);
  const char *ctl = getenv("POWERCUT_CTL");
  if (ctl != NULL && strlen(ctl) < sizeof(((struct sockaddr_un *)0)->sun_path)) {
    int s = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_un a;
    memset(&a, 0, sizeof a);
    a.sun_family = AF_UNIX;
    strcpy(a.sun_path, ctl);
    REAL(unlink)(ctl);
    pthread_t t;
    if (s < 0 || bind(s, (struct sockaddr *)&a, sizeof a) != 0 || listen(s, 4) != 0 ||
        pthread_create(&t, NULL, ctl_thread, (void *)(intptr_t)s) != 0) {
      fprintf(stderr, "powercut: control socket %s: %s\n", ctl, strerror(errno));
      _exit(98);
    }
    pthread_detach(t);
  }
  pthread_atfork(atfork_prepare, atfork_parent, atfork_child);
  struct rec r;
  r_begin(&r, OP_START);
  r_u32(&r, (uint32_t)getpid());
  r_str(&r, root);
  r_emit(&r, NULL, 0, 0);
  unsetenv("LD_PRELOAD");
  unsetenv("POWERCUT_ROOT");
  unsetenv("POWERCUT_TRACE");
  unsetenv("POWERCUT_CTL");
  unsetenv("POWERCUT_AT_OP");
  unsetenv("POWERCUT_DROP_FSYNC");
  unsetenv("POWERCUT_MARK_FD");
  active = 1;
}

/* ------------------------------------------------------------------ open */

static int do_open(int dirfd, const char *p, int flags, mode_t mode, int which) {
  char abs[PATH_MAX];
  int t = tracked_path(dirfd, p, abs);
  if (t) lock();
  int fd;
  switch (which) {
    case 0: RESOLVE(open); fd = REAL(open)(p, flags, mode); break;
    case 1: RESOLVE(open64); fd = REAL(open64)(p, flags, mode); break;
    case 2: RESOLVE(openat); fd = REAL(openat)(dirfd, p, flags, mode); break;
    default: RESOLVE(openat64); fd = REAL(openat64)(dirfd, p, flags, mode); break;
  }
  if (t) {
    int e = errno;
    if (fd >= 0 && (flags & O_TMPFILE) == O_TMPFILE) rec_unsupported("O_TMPFILE", abs);
    else after_open(fd, abs, flags, mode);
    unlock();
    errno = e;
  } else if (fd >= 0 && fd < MAXFD) {
    fdt[fd].tracked = 0;
  }
  return fd;
}

static mode_t va_mode(int flags, va_list ap) {
  return (flags & O_CREAT) || (flags & O_TMPFILE) == O_TMPFILE ? (mode_t)va_arg(ap, int) : 0;
}

int open(const char *p, int flags, ...) {
  va_list ap;
  va_start(ap, flags);
  mode_t m = va_mode(flags, ap);
  va_end(ap);
  return do_open(AT_FDCWD, p, flags, m, 0);
}
int open64(const char *p, int flags, ...) {
  va_list ap;
  va_start(ap, flags);
  mode_t m = va_mode(flags, ap);
  va_end(ap);
  return do_open(AT_FDCWD, p, flags, m, 1);
}
int openat(int d, const char *p, int flags, ...) {
  va_list ap;
  va_start(ap, flags);
  mode_t m = va_mode(flags, ap);
  va_end(ap);
  return do_open(d, p, flags, m, 2);
}
int openat64(int d, const char *p, int flags, ...) {
  va_list ap;
  va_start(ap, flags);
  mode_t m = va_mode(flags, ap);
  va_end(ap);
  return do_open(d, p, flags, m, 3);
}
int __open_2(const char *p, int flags) { return do_open(AT_FDCWD, p, flags, 0, 0); }
int __open64_2(const char *p, int flags) { return do_open(AT_FDCWD, p, flags, 0, 1); }
int __openat_2(int d, const char *p, int flags) { return do_open(d, p, flags, 0, 2); }
int __openat64_2(int d, const char *p, int flags) { return do_open(d, p, flags, 0, 3); }
int creat(const char *p, mode_t m) { return do_open(AT_FDCWD, p, O_CREAT | O_WRONLY | O_TRUNC, m, 0); }
int creat64(const char *p, mode_t m) { return do_open(AT_FDCWD, p, O_CREAT | O_WRONLY | O_TRUNC, m, 1); }

static FILE *do_fopen(const char *p, const char *mode, int is64) {
  char abs[PATH_MAX];
  if (tracked_path(AT_FDCWD, p, abs) && strpbrk(mode, "wa+") != NULL) {
    lock();
    rec_unsupported("fopen for writing", abs);
    unlock();
  }
  if (is64) {
    RESOLVE(fopen64);
    return REAL(fopen64)(p, mode);
  }
  RESOLVE(fopen);
  return REAL(fopen)(p, mode);
}
FILE *fopen(const char *p, const char *mode) { return do_fopen(p, mode, 0); }
FILE *fopen64(const char *p, const char *mode) { return do_fopen(p, mode, 1); }

/* ------------------------------------------------------------------ writes */

static void rec_mark(const struct iovec *iov, int cnt, size_t n) {
  struct rec r;
  r_begin(&r, OP_MARK);
  r_emit(&r, iov, cnt, n);
}

ssize_t write(int fd, const void *b, size_t n) {
  RESOLVE(write);
  if (active && fd == mark_fd) {
    lock();
    ssize_t w = REAL(write)(fd, b, n);
    int e = errno;
    if (w > 0) {
      struct iovec v = {(void *)b, (size_t)w};
      rec_mark(&v, 1, (size_t)w);
    }
    unlock();
    errno = e;
    return w;
  }
  if (!quick_tracked(fd)) return REAL(write)(fd, b, n);
  lock();
  if (!fd_live(fd)) {
    unlock();
    return REAL(write)(fd, b, n);
  }
  ssize_t w = REAL(write)(fd, b, n);
  int e = errno;
  if (w > 0) {
    struct iovec v = {(void *)b, (size_t)w};
    rec_write(fd, &v, 1, (size_t)w, lseek(fd, 0, SEEK_CUR) - w);
  }
  unlock();
  errno = e;
  return w;
}

static ssize_t do_pwrite(int fd, const void *b, size_t n, off64_t off) {
  RESOLVE(pwrite64);
  if (!quick_tracked(fd)) return REAL(pwrite64)(fd, b, n, off);
  lock();
  if (!fd_live(fd)) {
    unlock();
    return REAL(pwrite64)(fd, b, n, off);
  }
  ssize_t w = REAL(pwrite64)(fd, b, n, off);
  int e = errno;
  if (w > 0) {
    struct iovec v = {(void *)b, (size_t)w};
    rec_write(fd, &v, 1, (size_t)w, off);
  }
  unlock();
  errno = e;
  return w;
}
ssize_t pwrite(int fd, const void *b, size_t n, off_t off) { return do_pwrite(fd, b, n, off); }
ssize_t pwrite64(int fd, const void *b, size_t n, off64_t off) { return do_pwrite(fd, b, n, off); }

ssize_t writev(int fd, const struct iovec *iov, int cnt) {
  RESOLVE(writev);
  if (active && fd == mark_fd) {
    lock();
    ssize_t w = REAL(writev)(fd, iov, cnt);
    int e = errno;
    if (w > 0) rec_mark(iov, cnt, (size_t)w);
    unlock();
    errno = e;
    return w;
  }
  if (!quick_tracked(fd)) return REAL(writev)(fd, iov, cnt);
  lock();
  if (!fd_live(fd)) {
    unlock();
    return REAL(writev)(fd, iov, cnt);
  }
  ssize_t w = REAL(writev)(fd, iov, cnt);
  int e = errno;
  if (w > 0) rec_write(fd, iov, cnt, (size_t)w, lseek(fd, 0, SEEK_CUR) - w);
  unlock();
  errno = e;
  return w;
}

static ssize_t do_pwritev(int fd, const struct iovec *iov, int cnt, off64_t off, int flags) {
  RESOLVE(pwritev64v2);
  if (!quick_tracked(fd)) return REAL(pwritev64v2)(fd, iov, cnt, off, flags);
  lock();
  if (!fd_live(fd)) {
    unlock();
    return REAL(pwritev64v2)(fd, iov, cnt, off, flags);
  }
  ssize_t w = REAL(pwritev64v2)(fd, iov, cnt, off, flags);
  int e = errno;
  if (w > 0) {
    rec_write(fd, iov, cnt, (size_t)w, off == -1 ? lseek(fd, 0, SEEK_CUR) - w : off);
    rec_fsync_rwf(fd, flags);
  }
  unlock();
  errno = e;
  return w;
}
ssize_t pwritev(int fd, const struct iovec *iov, int cnt, off_t off) { return do_pwritev(fd, iov, cnt, off, 0); }
ssize_t pwritev64(int fd, const struct iovec *iov, int cnt, off64_t off) { return do_pwritev(fd, iov, cnt, off, 0); }
ssize_t pwritev2(int fd, const struct iovec *iov, int cnt, off_t off, int flags) { return do_pwritev(fd, iov, cnt, off, flags); }
ssize_t pwritev64v2(int fd, const struct iovec *iov, int cnt, off64_t off, int flags) { return do_pwritev(fd, iov, cnt, off, flags); }

static int do_ftruncate(int fd, off64_t len) {
  RESOLVE(ftruncate64);
  if (!quick_tracked(fd)) return REAL(ftruncate64)(fd, len);
  lock();
  if (!fd_live(fd)) {
    unlock();
    return REAL(ftruncate64)(fd, len);
  }
  int rc = REAL(ftruncate64)(fd, len);
  int e = errno;
  if (rc == 0) {
    struct rec r;
    r_begin(&r, OP_TRUNC);
    r_u64(&r, fdt[fd].ino);
    r_u64(&r, (uint64_t)len);
    r_emit(&r, NULL, 0, 0);
  }
  unlock();
  errno = e;
  return rc;
}
int ftruncate(int fd, off_t len) { return do_ftruncate(fd, len); }
int ftruncate64(int fd, off64_t len) { return do_ftruncate(fd, len); }

static int do_truncate(const char *p, off64_t len) {
  RESOLVE(truncate64);
  char abs[PATH_MAX];
  if (!tracked_path(AT_FDCWD, p, abs)) return REAL(truncate64)(p, len);
  lock();
  int rc = REAL(truncate64)(p, len);
  int e = errno;
  struct stat st;
  if (rc == 0 && stat(p, &st) == 0) {
    struct rec r;
    r_begin(&r, OP_TRUNC);
    r_u64(&r, st.st_ino);
    r_u64(&r, (uint64_t)len);
    r_emit(&r, NULL, 0, 0);
  }
  unlock();
  errno = e;
  return rc;
}
int truncate(const char *p, off_t len) { return do_truncate(p, len); }
int truncate64(const char *p, off64_t len) { return do_truncate(p, len); }

static int do_fallocate(int fd, int mode, off64_t off, off64_t len, int posix) {
  if (quick_tracked(fd)) {
    lock();
    if (fd_live(fd)) rec_unsupported("fallocate", "");
    unlock();
  }
  if (posix) {
    RESOLVE(posix_fallocate64);
    return REAL(posix_fallocate64)(fd, off, len);
  }
  RESOLVE(fallocate64);
  return REAL(fallocate64)(fd, mode, off, len);
}
int fallocate(int fd, int mode, off_t off, off_t len) { return do_fallocate(fd, mode, off, len, 0); }
int fallocate64(int fd, int mode, off64_t off, off64_t len) { return do_fallocate(fd, mode, off, len, 0); }
int posix_fallocate(int fd, off_t off, off_t len) { return do_fallocate(fd, 0, off, len, 1); }
int posix_fallocate64(int fd, off64_t off, off64_t len) { return do_fallocate(fd, 0, off, len, 1); }

static void flag_unsupported_fd(int fd, const char *what) {
  if (!quick_tracked(fd)) return;
  lock();
  if (fd_live(fd)) rec_unsupported(what, "");
  unlock();
}
ssize_t sendfile(int out, int in, off_t *off, size_t n) {
  RESOLVE(sendfile);
  flag_unsupported_fd(out, "sendfile into a modelled file");
  return REAL(sendfile)(out, in, off, n);
}
ssize_t sendfile64(int out, int in, off64_t *off, size_t n) {
  RESOLVE(sendfile64);
  flag_unsupported_fd(out, "sendfile into a modelled file");
  return REAL(sendfile64)(out, in, off, n);
}
ssize_t copy_file_range(int in, off64_t *ioff, int out, off64_t *ooff, size_t n, unsigned int flags) {
  RESOLVE(copy_file_range);
  flag_unsupported_fd(out, "copy_file_range into a modelled file");
  return REAL(copy_file_range)(in, ioff, out, ooff, n, flags);
}

/* ------------------------------------------------------------------ durability */

static int do_fsync(int fd, int data) {
  if (!quick_tracked(fd)) {
    if (data) {
      RESOLVE(fdatasync);
      return REAL(fdatasync)(fd);
    }
    RESOLVE(fsync);
    return REAL(fsync)(fd);
  }
  lock();
  if (!fd_live(fd)) {
    unlock();
    if (data) return REAL(fdatasync)(fd);
    return REAL(fsync)(fd);
  }
  struct rec r;
  r_begin(&r, fdt[fd].drop ? OP_DROPPED : OP_FSYNC);
  r_u64(&r, fdt[fd].ino);
  r_u8(&r, (uint8_t)data);
  r_emit(&r, NULL, 0, 0);
  unlock();
  return 0;
}
int fsync(int fd) { return do_fsync(fd, 0); }
int fdatasync(int fd) { return do_fsync(fd, 1); }

void sync(void) {
  RESOLVE(sync);
  if (active) {
    lock();
    struct rec r;
    r_begin(&r, OP_SYNCALL);
    r_emit(&r, NULL, 0, 0);
    unlock();
  }
  REAL(sync)();
}
int syncfs(int fd) {
  RESOLVE(syncfs);
  if (active) {
    lock();
    struct rec r;
    r_begin(&r, OP_SYNCALL);
    r_emit(&r, NULL, 0, 0);
    unlock();
  }
  return REAL(syncfs)(fd);
}

/* ------------------------------------------------------------------ names */

static int do_rename(int od, const char *o, int nd, const char *n, unsigned int flags, int which) {
  char ao[PATH_MAX], an[PATH_MAX];
  int to = tracked_path(od, o, ao), tn = tracked_path(nd, n, an);
  if (to || tn) lock();
  int rc;
  switch (which) {
    case 0: RESOLVE(rename); rc = REAL(rename)(o, n); break;
    case 1: RESOLVE(renameat); rc = REAL(renameat)(od, o, nd, n); break;
    default: RESOLVE(renameat2); rc = REAL(renameat2)(od, o, nd, n, flags); break;
  }
  if (to || tn) {
    int e = errno;
    if (rc == 0) {
      if (to && tn) {
        struct rec r;
        r_begin(&r, OP_RENAME);
        r_u32(&r, flags);
        r_str(&r, ao);
        r_str(&r, an);
        r_emit(&r, NULL, 0, 0);
      } else {
        rec_unsupported("rename across the root", to ? ao : an);
      }
    }
    unlock();
    errno = e;
  }
  return rc;
}
int rename(const char *o, const char *n) { return do_rename(AT_FDCWD, o, AT_FDCWD, n, 0, 0); }
int renameat(int od, const char *o, int nd, const char *n) { return do_rename(od, o, nd, n, 0, 1); }
int renameat2(int od, const char *o, int nd, const char *n, unsigned int f) { return do_rename(od, o, nd, n, f, 2); }

/* which: 0 unlink, 1 rmdir, 2 remove (either), 3 unlinkat */
static int do_unlink(int d, const char *p, int flags, int which) {
  char abs[PATH_MAX];
  int t = tracked_path(d, p, abs);
  int isdir = which == 1 || (which == 3 && (flags & AT_REMOVEDIR));
  if (t && which == 2) {
    struct stat st;
    isdir = lstat(p, &st) == 0 && S_ISDIR(st.st_mode);
  }
  if (t) lock();
  int rc;
  switch (which) {
    case 0: RESOLVE(unlink); rc = REAL(unlink)(p); break;
    case 1: RESOLVE(rmdir); rc = REAL(rmdir)(p); break;
    case 2: RESOLVE(remove); rc = REAL(remove)(p); break;
    default: RESOLVE(unlinkat); rc = REAL(unlinkat)(d, p, flags); break;
  }
  if (t) {
    int e = errno;
    if (rc == 0) rec_simple_path(isdir ? OP_RMDIR : OP_UNLINK, abs);
    unlock();
    errno = e;
  }
  return rc;
}
int unlink(const char *p) { return do_unlink(AT_FDCWD, p, 0, 0); }
int rmdir(const char *p) { return do_unlink(AT_FDCWD, p, 0, 1); }
int remove(const char *p) { return do_unlink(AT_FDCWD, p, 0, 2); }
int unlinkat(int d, const char *p, int flags) { return do_unlink(d, p, flags, 3); }

static int do_mkdir(int d, const char *p, mode_t m, int at) {
  char abs[PATH_MAX];
  int t = tracked_path(d, p, abs);
  if (t) lock();
  int rc;
  if (at) {
    RESOLVE(mkdirat);
    rc = REAL(mkdirat)(d, p, m);
  } else {
    RESOLVE(mkdir);
    rc = REAL(mkdir)(p, m);
  }
  if (t) {
    int e = errno;
    struct stat st;
    if (rc == 0 && stat(abs, &st) == 0) {
      struct rec r;
      r_begin(&r, OP_MKDIR);
      r_u64(&r, st.st_ino);
      r_u32(&r, (uint32_t)m);
      r_str(&r, abs);
      r_emit(&r, NULL, 0, 0);
    }
    unlock();
    errno = e;
  }
  return rc;
}
int mkdir(const char *p, mode_t m) { return do_mkdir(AT_FDCWD, p, m, 0); }
int mkdirat(int d, const char *p, mode_t m) { return do_mkdir(d, p, m, 1); }

static int do_link(int od, const char *o, int nd, const char *n, int flags, int at) {
  char ao[PATH_MAX], an[PATH_MAX];
  int to = tracked_path(od, o, ao), tn = tracked_path(nd, n, an);
  if (to || tn) lock();
  int rc;
  if (at) {
    RESOLVE(linkat);
    rc = REAL(linkat)(od, o, nd, n, flags);
  } else {
    RESOLVE(link);
    rc = REAL(link)(o, n);
  }
  if (to || tn) {
    int e = errno;
    if (rc == 0) {
      if (to && tn) {
        struct rec r;
        r_begin(&r, OP_LINK);
        r_str(&r, ao);
        r_str(&r, an);
        r_emit(&r, NULL, 0, 0);
      } else {
        rec_unsupported("link across the root", to ? ao : an);
      }
    }
    unlock();
    errno = e;
  }
  return rc;
}
int link(const char *o, const char *n) { return do_link(AT_FDCWD, o, AT_FDCWD, n, 0, 0); }
int linkat(int od, const char *o, int nd, const char *n, int f) { return do_link(od, o, nd, n, f, 1); }

static int do_symlink(const char *target, int d, const char *p, int at) {
  char abs[PATH_MAX];
  int t = tracked_path(d, p, abs);
  if (t) lock();
  int rc;
  if (at) {
    RESOLVE(symlinkat);
    rc = REAL(symlinkat)(target, d, p);
  } else {
    RESOLVE(symlink);
    rc = REAL(symlink)(target, p);
  }
  if (t) {
    int e = errno;
    if (rc == 0) rec_unsupported("symlink", abs);
    unlock();
    errno = e;
  }
  return rc;
}
int symlink(const char *target, const char *p) { return do_symlink(target, AT_FDCWD, p, 0); }
int symlinkat(const char *target, int d, const char *p) { return do_symlink(target, d, p, 1); }

static void rec_chmod(uint64_t ino, mode_t m) {
  struct rec r;
  r_begin(&r, OP_CHMOD);
  r_u64(&r, ino);
  r_u32(&r, (uint32_t)m);
  r_emit(&r, NULL, 0, 0);
}

static int do_chmod(int d, const char *p, mode_t m, int flags, int at) {
  char abs[PATH_MAX];
  int t = tracked_path(d, p, abs);
  if (t) lock();
  int rc;
  if (at) {
    RESOLVE(fchmodat);
    rc = REAL(fchmodat)(d, p, m, flags);
  } else {
    RESOLVE(chmod);
    rc = REAL(chmod)(p, m);
  }
  if (t) {
    int e = errno;
    struct stat st;
    if (rc == 0 && stat(abs, &st) == 0) rec_chmod(st.st_ino, m);
    unlock();
    errno = e;
  }
  return rc;
}
int chmod(const char *p, mode_t m) { return do_chmod(AT_FDCWD, p, m, 0, 0); }
int fchmodat(int d, const char *p, mode_t m, int flags) { return do_chmod(d, p, m, flags, 1); }
int fchmod(int fd, mode_t m) {
  RESOLVE(fchmod);
  if (!quick_tracked(fd)) return REAL(fchmod)(fd, m);
  lock();
  int rc = REAL(fchmod)(fd, m);
  int e = errno;
  if (rc == 0 && fd_live(fd)) rec_chmod(fdt[fd].ino, m);
  unlock();
  errno = e;
  return rc;
}

/* ------------------------------------------------------------------ descriptors */

int close(int fd) {
  RESOLVE(close);
  if (!quick_tracked(fd)) return REAL(close)(fd);
  lock();
  fdt[fd].tracked = 0;
  int rc = REAL(close)(fd);
  int e = errno;
  unlock();
  errno = e;
  return rc;
}

static void copy_fd(int from, int to) {
  if (to < 0 || to >= MAXFD) return;
  if (from >= 0 && from < MAXFD && fdt[from].tracked) fdt[to] = fdt[from];
  else fdt[to].tracked = 0;
}
int dup(int fd) {
  RESOLVE(dup);
  int rc = REAL(dup)(fd);
  if (rc >= 0 && active) copy_fd(fd, rc);
  return rc;
}
int dup2(int fd, int fd2) {
  RESOLVE(dup2);
  int rc = REAL(dup2)(fd, fd2);
  if (rc >= 0 && active) copy_fd(fd, rc);
  return rc;
}
int dup3(int fd, int fd2, int flags) {
  RESOLVE(dup3);
  int rc = REAL(dup3)(fd, fd2, flags);
  if (rc >= 0 && active) copy_fd(fd, rc);
  return rc;
}

static void note_mmap(int fd, int prot, int flags) {
  if (!quick_tracked(fd) || !(flags & MAP_SHARED) || !(prot & PROT_WRITE)) return;
  lock();
  if (fd_live(fd)) {
    struct rec r;
    r_begin(&r, OP_MMAP);
    r_u64(&r, fdt[fd].ino);
    r_emit(&r, NULL, 0, 0);
  }
  unlock();
}
void *mmap(void *a, size_t l, int prot, int flags, int fd, off_t off) {
  RESOLVE(mmap);
  note_mmap(fd, prot, flags);
  return REAL(mmap)(a, l, prot, flags, fd, off);
}
void *mmap64(void *a, size_t l, int prot, int flags, int fd, off64_t off) {
  RESOLVE(mmap64);
  note_mmap(fd, prot, flags);
  return REAL(mmap64)(a, l, prot, flags, fd, off);
}
