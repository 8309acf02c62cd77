#!/usr/bin/env python3
"""powerfs: a pass-through FUSE file system that can cut the power (docs/RELIABILITY.md).

Mounted over a backing directory, it passes every call through to the backing files and
journals every change that is not yet durable:

  - a write or truncate of a file is durable once that file is fsynced (fsync or fdatasync);
    until then the journal holds the write (its offset and bytes, in order, with a global
    sequence number) and, for every 512-byte sector it overwrote, the sector's last synced
    contents;
  - a created, renamed or removed directory entry is durable once its directory is fsynced
    (a removed file is kept aside, in `<backing>.grave/`, until then).

On command it cuts the power, by one of three models of what a disk may have kept of the
writes it was never told to make durable:

  all      every unsynced write is lost;
  prefix   the disk wrote in order and stopped: a random prefix of all unsynced writes (one
           global order across files) survives, and the next write is torn at a 512-byte
           sector boundary (some of its leading sectors made it);
  sectors  any subset of the unsynced sectors survives (each sector kept with a probability
           drawn per cut), and a grown file keeps either its synced or its current size;

and in every model an entry whose directory was not fsynced since it changed is undone:
a created file disappears, a removed one comes back, a rename is reversed. A cut first
freezes the file system (every later change blocks, then fails with EIO: nothing written
after the cut instant can reach the disk), the caller kills its processes, then the model is
applied to the backing files and the journal is dropped; the caller unmounts and mounts again.

It can also arm a placed cut: "freeze inside the N-th fsync of the file whose name ends with
S" (that fsync never returns, so whatever it was to make durable is not), and it counts
fsyncs per file.

What it cannot show: a disk that acknowledges a flush it did not do (a FUSE file system sits
above the page cache and the block layer; the backing files live on a disk that never loses
power), reordering *across* an fsync, metadata-only losses (mode, times), or what the kernel
does after a failed writeback.

Usage (as root, /dev/fuse and libfuse3 needed; the daemon needs mfusepy, see ensure_python):
  powerfs.py serve BACKING MOUNTPOINT --control SOCKET [--ignore-fsync]
The control socket takes one JSON object per line and answers one per line:
  {"cmd": "ping"} | {"cmd": "stats"} | {"cmd": "freeze"}
  {"cmd": "arm", "suffix": "-wal", "nth": 7}  {"cmd": "wait_trigger", "timeout": 5}
  {"cmd": "cut", "model": "all|prefix|sectors", "seed": 1}
`Mount` below is the client the crash harness uses (Python standard library only).
"""

import errno
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time

SECTOR = 512
MODELS = ("all", "prefix", "sectors")
# A file's journal past this many unsynced writes keeps its sectors but forgets their order
# (the -shm file is never fsynced); the prefix model then treats that file as "all".
MAX_OPS_PER_FILE = 50_000
# A change blocked by a freeze gives up after this long even if no cut comes (EIO).
FROZEN_WAIT_LIMIT = 60.0

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
VENV = os.path.join(REPO, "scripts", ".venv")
VENV_PYTHON = os.path.join(VENV, "bin", "python")
REQUIREMENT = "mfusepy>=3.1,<4"


# --------------------------------------------------------------------------- journal


class FileJournal:
    """What one file has changed since it was last fsynced."""

    __slots__ = ("synced_size", "size", "captured", "ops", "overflow")

    def __init__(self, synced_size, size):
        self.synced_size = synced_size  # the size a power cut would leave without the journal
        self.size = size                # the size now
        self.captured = {}              # sector -> its last synced bytes (short at the end)
        self.ops = []                   # (seq, "w", offset, bytes) | (seq, "t", size, None)
        self.overflow = False

    def dirty(self):
        return bool(self.ops) or self.overflow or self.size != self.synced_size or bool(self.captured)

    def capture(self, fd, start, end):
        """Keeps the synced contents of the sectors in [start, end) before they change."""
        end = min(end, self.synced_size)
        if start >= end:
            return
        first, last = start // SECTOR, (end - 1) // SECTOR
        missing = [s for s in range(first, last + 1) if s not in self.captured]
        if not missing:
            return
        lo, hi = missing[0], missing[-1]
        old = os.pread(fd, (hi - lo + 1) * SECTOR, lo * SECTOR)
        for s in missing:
            # Any sector not captured yet still holds exactly its synced bytes.
            chunk = old[(s - lo) * SECTOR:(s - lo + 1) * SECTOR]
            limit = self.synced_size - s * SECTOR
            self.captured[s] = chunk[:limit]

    def record(self, op):
        if self.overflow:
            return
        if len(self.ops) >= MAX_OPS_PER_FILE:
            self.ops = []
            self.overflow = True
            return
        self.ops.append(op)

    def synced(self, size):
        self.synced_size = size
        self.size = size
        self.captured = {}
        self.ops = []
        self.overflow = False

    def restore_synced(self, fd):
        """Puts the file back to its synced image."""
        for s, data in self.captured.items():
            os.pwrite(fd, data, s * SECTOR)
        os.ftruncate(fd, self.synced_size)


def replay(fd, op, upto=None):
    """Applies one journaled op to fd (a write cut to its first `upto` bytes if given)."""
    _seq, kind, arg, data = op
    if kind == "t":
        os.ftruncate(fd, arg)
    elif upto is None:
        os.pwrite(fd, data, arg)
    elif upto > 0:
        os.pwrite(fd, data[:upto], arg)


def torn_length(offset, length, rng):
    """How much of a write at `offset` survives a tear at a sector boundary: a whole number
    of the sectors it covers (fewer than all of them)."""
    cuts = [b - offset for b in range((offset // SECTOR + 1) * SECTOR, offset + length, SECTOR)]
    choices = [0] + cuts  # 0 = nothing of it; never the whole write
    return rng.choice(choices)


# --------------------------------------------------------------------------- file system


def build_fs_class():
    import mfusepy as fuse  # only the daemon needs it

    class PowerFS(fuse.Operations):
        use_ns = True

        def __init__(self, root, ignore_fsync=False):
            self.root = os.path.realpath(root)
            self.grave = self.root + ".grave"
            os.makedirs(self.grave, exist_ok=True)
            self.ignore_fsync = ignore_fsync
            self.cond = threading.Condition()
            self.files = {}        # backing path -> FileJournal
            self.fh_key = {}       # open fd -> backing path
            self.sync_fds = set()  # fds opened O_SYNC/O_DSYNC
            self.entries = []      # undurable entry changes, oldest first
            self.seq = 0
            self.graves = 0
            self.frozen = False
            self.released = False
            self.fsyncs = {}       # backing path -> fsync calls (files and directories)
            self.armed = None      # {"suffix", "nth", "seen"}
            self.trigger = None
            self.cuts = 0

        # ---- helpers (cond held) ----

        def full(self, path):
            return os.path.join(self.root, path.lstrip("/"))

        def gate(self):
            """Blocks a change while frozen; once the cut is applied it fails with EIO."""
            deadline = time.monotonic() + FROZEN_WAIT_LIMIT
            while self.frozen and not self.released and time.monotonic() < deadline:
                self.cond.wait(0.5)
            if self.frozen:
                raise fuse.FuseOSError(errno.EIO)

        def journal(self, key, fd):
            j = self.files.get(key)
            if j is None:
                size = os.fstat(fd).st_size
                j = self.files[key] = FileJournal(size, size)
            return j

        def next_seq(self):
            self.seq += 1
            return self.seq

        def entry(self, kind, dirs, **info):
            info.update(kind=kind, dirs=set(dirs), seq=self.next_seq())
            self.entries.append(info)

        def bury(self, key):
            """Moves a backing file aside (its removal may be undone); returns where."""
            self.graves += 1
            grave = os.path.join(self.grave, "%d" % self.graves)
            os.rename(key, grave)
            if key in self.files:
                self.files[grave] = self.files.pop(key)
            for fd, k in self.fh_key.items():
                if k == key:
                    self.fh_key[fd] = grave
            return grave

        def move_key(self, old, new):
            if old in self.files:
                self.files[new] = self.files.pop(old)
            for fd, k in self.fh_key.items():
                if k == old:
                    self.fh_key[fd] = new

        def count_sync(self, key):
            self.fsyncs[key] = self.fsyncs.get(key, 0) + 1
            a = self.armed
            if a is not None and key.endswith(a["suffix"]):
                a["seen"] += 1
                if a["seen"] >= a["nth"]:
                    self.armed = None
                    self.frozen = True
                    self.trigger = {"file": os.path.basename(key), "nth": a["seen"], "at": time.time()}
                    self.cond.notify_all()
                    self.gate()  # never returns normally: the cut comes, then EIO

        def init_with_config(self, conn, config):
            # Every change passes through this mount: a changed mtime seen on getattr need not
            # drop the file's page cache (FUSE_CAP_AUTO_INVAL_DATA), which would send SQLite's
            # reads of pages it has just written back to this process.
            if conn is not None:
                conn.want &= ~(1 << 12)

        # ---- reads and metadata ----

        def getattr(self, path, fh=None):
            st = os.fstat(fh) if fh is not None else os.lstat(self.full(path))
            keys = ("st_mode", "st_nlink", "st_uid", "st_gid", "st_size", "st_blocks", "st_ino")
            out = {k: getattr(st, k) for k in keys}
            out.update(st_atime=st.st_atime_ns, st_mtime=st.st_mtime_ns, st_ctime=st.st_ctime_ns)
            return out

        def access(self, path, amode):
            if not os.access(self.full(path), amode):
                raise fuse.FuseOSError(errno.EACCES)
            return 0

        def readdir(self, path, fh):
            return [".", ".."] + os.listdir(self.full(path))

        def statfs(self, path):
            sv = os.statvfs(self.full(path))
            return {k: getattr(sv, k) for k in ("f_bavail", "f_bfree", "f_blocks", "f_bsize", "f_favail",
                                                 "f_ffree", "f_files", "f_flag", "f_frsize", "f_namemax")}

        def read(self, path, size, offset, fh):
            return os.pread(fh, size, offset)

        def chmod(self, path, mode):
            os.chmod(self.full(path), mode)
            return 0

        def chown(self, path, uid, gid):
            os.chown(self.full(path), uid, gid)
            return 0

        def utimens(self, path, times=None):
            os.utime(self.full(path), ns=times)
            return 0

        # ---- opening ----

        def open(self, path, flags):
            key = self.full(path)
            trunc = flags & os.O_TRUNC
            fd = os.open(key, flags & ~(os.O_APPEND | os.O_TRUNC | os.O_CREAT | os.O_EXCL))
            with self.cond:
                self.fh_key[fd] = key
                if flags & (os.O_SYNC | os.O_DSYNC):
                    self.sync_fds.add(fd)
                if trunc:
                    try:
                        self.gate()
                        self._truncate(key, fd, 0)
                    except BaseException:
                        self.fh_key.pop(fd, None)
                        os.close(fd)
                        raise
            return fd

        def create(self, path, mode, flags=os.O_RDWR):
            key = self.full(path)
            with self.cond:
                self.gate()
                existed = os.path.lexists(key)
                fd = os.open(key, (flags | os.O_CREAT) & ~(os.O_APPEND | os.O_TRUNC), mode)
                self.fh_key[fd] = key
                if flags & (os.O_SYNC | os.O_DSYNC):
                    self.sync_fds.add(fd)
                if not existed:
                    self.files[key] = FileJournal(0, 0)
                    self.entry("create", [os.path.dirname(key)], path=key)
                elif flags & os.O_TRUNC:
                    self._truncate(key, fd, 0)
            return fd

        def flush(self, path, fh):
            return 0

        def release(self, path, fh):
            with self.cond:
                self.fh_key.pop(fh, None)
                self.sync_fds.discard(fh)
            os.close(fh)
            return 0

        # ---- changes ----

        def write(self, path, data, offset, fh):
            with self.cond:
                self.gate()
                key = self.fh_key.get(fh) or self.full(path)
                j = self.journal(key, fh)
                end = offset + len(data)
                j.capture(fh, offset, end)
                j.record((self.next_seq(), "w", offset, bytes(data)))
                n = os.pwrite(fh, data, offset)
                j.size = max(j.size, end)
                if fh in self.sync_fds and not self.ignore_fsync:
                    j.synced(os.fstat(fh).st_size)
                return n

        def _truncate(self, key, fd, length):
            j = self.journal(key, fd)
            j.capture(fd, (length // SECTOR) * SECTOR, max(j.size, j.synced_size))
            j.record((self.next_seq(), "t", length, None))
            os.ftruncate(fd, length)
            j.size = length

        def truncate(self, path, length, fh=None):
            key = self.full(path)
            with self.cond:
                self.gate()
                fd = os.open(key, os.O_RDWR)
                try:
                    self._truncate(key, fd, length)
                finally:
                    os.close(fd)
            return 0

        def fsync(self, path, datasync, fh):
            with self.cond:
                self.gate()
                key = self.fh_key.get(fh) or self.full(path)
                self.count_sync(key)
                if not self.ignore_fsync:
                    j = self.files.get(key)
                    if j is not None:
                        j.synced(os.fstat(fh).st_size)
            return 0

        def fsyncdir(self, path, datasync, fh):
            with self.cond:
                self.gate()
                key = self.full(path).rstrip("/") or "/"
                self.count_sync(key)
                if not self.ignore_fsync:
                    for e in self.entries:
                        e["dirs"].discard(key)
                    self.entries = [e for e in self.entries if e["dirs"]]
            return 0

        def unlink(self, path):
            key = self.full(path)
            with self.cond:
                self.gate()
                grave = self.bury(key)
                self.entry("unlink", [os.path.dirname(key)], path=key, grave=grave)
            return 0

        def rename(self, old, new):
            src, dst = self.full(old), self.full(new)
            with self.cond:
                self.gate()
                grave = self.bury(dst) if os.path.lexists(dst) else None
                os.rename(src, dst)
                self.move_key(src, dst)
                self.entry("rename", {os.path.dirname(src), os.path.dirname(dst)}, src=src, dst=dst, grave=grave)
            return 0

        def mkdir(self, path, mode):
            key = self.full(path)
            with self.cond:
                self.gate()
                os.mkdir(key, mode)
                self.entry("mkdir", [os.path.dirname(key)], path=key)
            return 0

        def rmdir(self, path):
            key = self.full(path)
            with self.cond:
                self.gate()
                mode = os.stat(key).st_mode & 0o7777
                os.rmdir(key)
                self.entry("rmdir", [os.path.dirname(key)], path=key, mode=mode)
            return 0

        # ---- control ----

        def control(self, req):
            cmd = req.get("cmd")
            with self.cond:
                if cmd == "ping":
                    return {"ok": True}
                if cmd == "stats":
                    return {"ok": True, "fsyncs": {os.path.relpath(k, self.root): n for k, n in self.fsyncs.items()},
                            "dirty": {os.path.relpath(k, self.root): len(j.ops) for k, j in self.files.items()
                                      if j.dirty()},
                            "entries": len(self.entries), "frozen": self.frozen}
                if cmd == "arm":
                    self.armed = {"suffix": req["suffix"], "nth": int(req["nth"]), "seen": 0}
                    self.trigger = None
                    return {"ok": True}
                if cmd == "freeze":
                    self.frozen = True
                    self.armed = None
                    return {"ok": True}
                if cmd == "wait_trigger":
                    deadline = time.monotonic() + float(req.get("timeout", 5))
                    while self.trigger is None and time.monotonic() < deadline:
                        self.cond.wait(max(0.0, min(0.5, deadline - time.monotonic())))
                    return {"ok": True, "trigger": self.trigger}
                if cmd == "cut":
                    return self.cut(req.get("model", "all"), req.get("seed"))
            return {"ok": False, "error": "unknown command %r" % cmd}

        def cut(self, model, seed):
            """Applies a power-cut model to the backing files (cond held)."""
            if model not in MODELS:
                return {"ok": False, "error": "unknown model %r" % model}
            rng = random.Random(seed)
            self.frozen = True
            self.armed = None
            self.cuts += 1
            report = {"ok": True, "model": model, "files": {}, "entries_undone": [], "trigger": self.trigger}
            cut_seq = None
            if model == "prefix":
                seqs = [op[0] for j in self.files.values() for op in j.ops]
                cut_seq = rng.choice(seqs) if seqs else None
            p_keep = rng.random()
            for key, j in list(self.files.items()):
                if not j.dirty() or not os.path.exists(key):
                    continue
                fd = os.open(key, os.O_RDWR)
                try:
                    stats = self.apply_file(fd, j, model, cut_seq, p_keep, rng)
                finally:
                    os.close(fd)
                stats.update(synced_size=j.synced_size, size=j.size, unsynced_ops=len(j.ops), overflow=j.overflow)
                report["files"][os.path.relpath(key, self.root)] = stats
            # Entries, in every model: a change whose directory was not fsynced since is undone,
            # newest first.
            for e in reversed(self.entries):
                report["entries_undone"].append(self.undo_entry(e))
            self.files = {}
            self.entries = []
            self.released = True
            self.cond.notify_all()
            return report

        def apply_file(self, fd, j, model, cut_seq, p_keep, rng):
            """Returns {"undone_ops", "sectors_reverted", "final_size"}."""
            if model == "all" or (model == "prefix" and j.overflow):
                j.restore_synced(fd)
                return {"undone_ops": len(j.ops) if j.ops else int(j.overflow), "sectors_reverted": len(j.captured),
                        "final_size": j.synced_size}
            if model == "prefix":
                keep = [op for op in j.ops if cut_seq is None or op[0] < cut_seq]
                torn = [op for op in j.ops if op[0] == cut_seq]
                j.restore_synced(fd)
                for op in keep:
                    replay(fd, op)
                kept_bytes = None
                if torn and torn[0][1] == "w":
                    _s, _k, off, data = torn[0]
                    kept_bytes = torn_length(off, len(data), rng)
                    replay(fd, torn[0], kept_bytes)
                undone = len(j.ops) - len(keep)
                return {"undone_ops": undone, "sectors_reverted": None, "torn_kept_bytes": kept_bytes,
                        "final_size": os.fstat(fd).st_size}
            # sectors: any subset of the changed sectors, either size.
            touched = set(j.captured)
            for op in j.ops:
                if op[1] == "w":
                    touched.update(range(op[2] // SECTOR, (op[2] + len(op[3]) - 1) // SECTOR + 1))
            final = rng.choice([j.synced_size, j.size]) if j.size != j.synced_size else j.size
            os.ftruncate(fd, max(j.size, j.synced_size))
            reverted = 0
            for s in sorted(touched):
                if rng.random() < p_keep:
                    continue
                old = j.captured.get(s)
                if old is None:
                    if s * SECTOR >= j.synced_size:
                        old = b""  # never synced: the disk holds whatever it held, zeros here
                    else:
                        continue   # unchanged synced sector (overflowed journal): nothing to revert
                new = os.pread(fd, SECTOR, s * SECTOR)
                want = old + bytes(SECTOR - len(old)) if len(old) < SECTOR else old
                if new != want[:len(new)]:
                    reverted += 1
                os.pwrite(fd, want[:max(len(new), len(old))], s * SECTOR)
            os.ftruncate(fd, final)
            return {"undone_ops": None, "sectors_reverted": reverted, "sectors_touched": len(touched),
                    "p_keep": round(p_keep, 3), "final_size": final}

        def undo_entry(self, e):
            kind = e["kind"]
            try:
                if kind == "create":
                    if os.path.lexists(e["path"]):
                        os.unlink(e["path"])
                    return "create %s" % os.path.relpath(e["path"], self.root)
                if kind == "unlink":
                    os.rename(e["grave"], e["path"])
                    return "unlink %s" % os.path.relpath(e["path"], self.root)
                if kind == "rename":
                    os.rename(e["dst"], e["src"])
                    if e["grave"]:
                        os.rename(e["grave"], e["dst"])
                    return "rename %s" % os.path.relpath(e["dst"], self.root)
                if kind == "mkdir":
                    shutil.rmtree(e["path"], ignore_errors=True)
                    return "mkdir %s" % os.path.relpath(e["path"], self.root)
                if kind == "rmdir":
                    os.mkdir(e["path"], e["mode"])
                    return "rmdir %s" % os.path.relpath(e["path"], self.root)
            except OSError as err:
                return "%s %s: %s" % (kind, e, err)
            return kind

    return fuse, PowerFS


def serve_control(fs, path):
    if os.path.exists(path):
        os.unlink(path)
    srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    srv.bind(path)
    srv.listen(8)

    def handle(conn):
        with conn, conn.makefile("rwb") as f:
            for line in f:
                try:
                    reply = fs.control(json.loads(line))
                except Exception as e:  # noqa: BLE001 - the answer says what went wrong
                    reply = {"ok": False, "error": "%s: %s" % (type(e).__name__, e)}
                f.write((json.dumps(reply) + "\n").encode())
                f.flush()

    def loop():
        while True:
            conn, _ = srv.accept()
            threading.Thread(target=handle, args=(conn,), daemon=True).start()

    threading.Thread(target=loop, daemon=True).start()


def serve(argv):
    import argparse
    ap = argparse.ArgumentParser(prog="powerfs.py serve")
    ap.add_argument("backing")
    ap.add_argument("mountpoint")
    ap.add_argument("--control", required=True)
    ap.add_argument("--ignore-fsync", action="store_true",
                    help="negative control: fsync succeeds but makes nothing durable")
    args = ap.parse_args(argv)
    fuse, PowerFS = build_fs_class()
    fs = PowerFS(args.backing, ignore_fsync=args.ignore_fsync)
    serve_control(fs, args.control)
    # kernel_cache: every change passes through this one mount, so the page cache may be kept
    # across opens (see init_with_config for the rest).
    fuse.FUSE(fs, args.mountpoint, foreground=True, fsname="powerfs", kernel_cache=True)
    return 0


# --------------------------------------------------------------------------- client


def prerequisites():
    """None when a power-loss run can work here, else why not."""
    if not os.path.exists("/dev/fuse"):
        return "/dev/fuse is missing"
    if os.geteuid() != 0:
        return "mounting needs root"
    if not (shutil.which("fusermount3") or os.path.exists("/usr/lib/x86_64-linux-gnu/libfuse3.so.3")):
        return "libfuse3 is not installed (Debian package fuse3)"
    return None


def ensure_python():
    """The interpreter the daemon runs under: scripts/.venv, with mfusepy installed on first
    use (as scripts/schemathesis.sh installs schemathesis). Raises RuntimeError if it fails."""
    probe = [VENV_PYTHON, "-c", "import mfusepy"]
    if os.path.exists(VENV_PYTHON) and subprocess.run(probe, capture_output=True).returncode == 0:
        return VENV_PYTHON
    if not os.path.exists(VENV_PYTHON):
        subprocess.run([sys.executable, "-m", "venv", VENV], check=True)
    out = subprocess.run([VENV_PYTHON, "-m", "pip", "install", "--quiet", REQUIREMENT], capture_output=True, text=True)
    if out.returncode != 0 or subprocess.run(probe, capture_output=True).returncode != 0:
        raise RuntimeError("could not install %s into %s: %s" % (REQUIREMENT, VENV, out.stderr[-500:]))
    return VENV_PYTHON


class Mount:
    """One powerfs mount in `workdir` (backing files in workdir/disk, mounted at workdir/mnt),
    its daemon started and stopped by PID."""

    def __init__(self, workdir, python, ignore_fsync=False):
        self.python = python
        self.disk = os.path.join(workdir, "disk")
        self.mnt = os.path.join(workdir, "mnt")
        self.sock = os.path.join(workdir, "powerfs.sock")
        self.log_path = os.path.join(workdir, "powerfs.log")
        self.ignore_fsync = ignore_fsync
        self.proc = None
        self.conn = None
        os.makedirs(self.disk, exist_ok=True)
        os.makedirs(self.mnt, exist_ok=True)

    def mount(self, timeout=15.0):
        if self.proc is not None:
            raise RuntimeError("already mounted")
        if os.path.exists(self.sock):
            os.unlink(self.sock)
        cmd = [self.python, os.path.abspath(__file__), "serve", self.disk, self.mnt, "--control", self.sock]
        if self.ignore_fsync:
            cmd.append("--ignore-fsync")
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=log)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                self.proc = None
                raise RuntimeError("powerfs exited at start; see %s" % self.log_path)
            if os.path.ismount(self.mnt) and os.path.exists(self.sock):
                try:
                    if self.request(cmd="ping").get("ok"):
                        return
                except OSError:
                    pass
            time.sleep(0.02)
        self.unmount()
        raise RuntimeError("powerfs did not mount within %.0fs; see %s" % (timeout, self.log_path))

    def request(self, **req):
        if self.conn is None:
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.settimeout(120)
            s.connect(self.sock)
            self.conn = (s, s.makefile("rwb"))
        s, f = self.conn
        try:
            f.write((json.dumps(req) + "\n").encode())
            f.flush()
            line = f.readline()
        except OSError:
            self.close_control()
            raise
        if not line:
            self.close_control()
            raise OSError("powerfs closed its control socket")
        return json.loads(line)

    def close_control(self):
        if self.conn is not None:
            s, f = self.conn
            for c in (f, s):
                try:
                    c.close()
                except OSError:
                    pass
            self.conn = None

    def unmount(self, timeout=15.0):
        """Unmounts and waits for the daemon's PID; SIGTERM, then a lazy unmount, if it hangs."""
        self.close_control()
        if self.proc is None:
            return
        deadline = time.monotonic() + timeout
        tool = ["fusermount3", "-u", self.mnt] if shutil.which("fusermount3") else ["umount", self.mnt]
        while time.monotonic() < deadline and self.proc.poll() is None:
            if os.path.ismount(self.mnt):
                subprocess.run(tool, capture_output=True)
            try:
                self.proc.wait(timeout=0.2)
            except subprocess.TimeoutExpired:
                pass
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                os.kill(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=5)
        if os.path.ismount(self.mnt):
            subprocess.run(["umount", "-l", self.mnt], capture_output=True)
        self.proc = None


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "serve":
        sys.exit(serve(sys.argv[2:]))
    print(__doc__)
    sys.exit(2)
