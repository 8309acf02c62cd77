#!/usr/bin/env python3
"""fsync-before-acknowledge check for apikeyd (docs/RELIABILITY.md, D1/D2/D3 under power loss).

Runs the release server under strace, makes N sequential acknowledged mutations (native
creates and revokes, alternating) on one keep-alive connection, and reads the trace:

  (a) between the previous acknowledgement's response write on the socket and this one's,
      an fsync/fdatasync of a file descriptor open on the database's -wal file returned 0;
  (b) stronger: the WAL frame holding this mutation's own audit row (found by the request
      id, which apikeyd stores in the audit row and returns in x-request-id) was written
      with pwrite64 BEFORE the response, and an fsync/fdatasync of the WAL returned 0
      after that write and before the response write.

(a) alone cannot tell "commit, then answer" from "answer, then commit" when a sequential
client's next request lands while the previous commit is still running; (b) can, which is
why the ack-before-commit build fails it. File descriptors are resolved from the traced
openat/close calls (fd numbers are reused). Prints "mutations=N violations=V"; exits 1 if
V > 0 (with --expect-violations: exits 0 only if V > 0), 2 if the check could not run.
"""

import argparse
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time

sys.dont_write_bytecode = True  # no __pycache__ left in scripts/crash
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import DEFAULT_BINARY, SERVER_ENV, Client, HarnessError, Indeterminate, NotSent  # noqa: E402

TRACE_CALLS = "openat,close,fsync,fdatasync,sendto,write,writev,pwrite64,recvfrom,read"
LINE = re.compile(r"^(\d+)\s+(\d\d:\d\d:\d\d\.\d+)\s+(.*)$")
RESUMED = re.compile(r"^<\.\.\. (\w+) resumed>(.*)$")
CALL = re.compile(r"^(\w+)\((.*)$", re.S)
RET = re.compile(r"\)\s+=\s+(-?\d+|\?)(?:\s.*)?$")
OPENAT = re.compile(r'^(?:AT_FDCWD|-?\d+), "((?:[^"\\]|\\.)*)"')
FIRST_FD = re.compile(r"^(\d+)")


def ensure_strace():
    path = shutil.which("strace")
    if path:
        return path
    if os.geteuid() == 0 and shutil.which("apt-get"):
        print("fsync_check: installing strace with apt-get", flush=True)
        env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
        subprocess.run(["apt-get", "update", "-qq"], check=True, env=env)
        subprocess.run(["apt-get", "install", "-y", "-qq", "--no-install-recommends", "strace"], check=True, env=env)
        return shutil.which("strace")
    return None


class Event:
    __slots__ = ("start", "end", "pid", "name", "args", "ret", "fd")

    def __init__(self, start, end, pid, name, args, ret):
        self.start = start
        self.end = end
        self.pid = pid
        self.name = name
        self.args = args
        self.ret = ret
        m = FIRST_FD.match(args)
        self.fd = int(m.group(1)) if m else None


def parse_trace(path):
    """Syscall events with the trace line numbers of their entry (start) and exit (end)."""
    events = []
    pending = {}
    with open(path, "r", errors="replace") as f:
        for idx, raw in enumerate(f):
            m = LINE.match(raw.rstrip("\n"))
            if not m:
                continue
            pid, body = int(m.group(1)), m.group(3)
            if body.startswith(("---", "+++")):
                continue
            r = RESUMED.match(body)
            if r:
                if pid not in pending:
                    continue
                start, text = pending.pop(pid)
                text = text + r.group(2)
            elif body.endswith("<unfinished ...>"):
                pending[pid] = (idx, body[: -len("<unfinished ...>")])
                continue
            else:
                start, text = idx, body
            c = CALL.match(text)
            if not c:
                continue
            ret = RET.search(text)
            events.append(Event(start, idx, pid, c.group(1), c.group(2), ret.group(1) if ret else None))
    events.sort(key=lambda e: e.start)
    return events


class FdTable:
    """fd -> path over time, from openat (valid from its exit) and close (until its entry)."""

    def __init__(self, events):
        self.spans = {}  # fd -> list of (from_idx, to_idx, path)
        open_now = {}
        for e in sorted(events, key=lambda e: e.end if e.name == "openat" else e.start):
            if e.name == "openat" and e.ret not in (None, "?") and int(e.ret) >= 0:
                m = OPENAT.match(e.args)
                if m:
                    fd = int(e.ret)
                    self._close(open_now, fd, e.end)
                    open_now[fd] = (e.end, m.group(1))
            elif e.name == "close" and e.fd is not None:
                self._close(open_now, e.fd, e.start)
        for fd in list(open_now):
            self._close(open_now, fd, float("inf"))

    def _close(self, open_now, fd, at):
        if fd in open_now:
            since, path = open_now.pop(fd)
            self.spans.setdefault(fd, []).append((since, at, path))

    def path(self, fd, at):
        for since, until, path in self.spans.get(fd, ()):
            if since <= at <= until:
                return path
        return None


def response_index(events):
    """x-request-id -> the first response write carrying it."""
    out = {}
    rid = re.compile(r"x-request-id: (req_[0-9A-Za-z]+)")
    for e in events:
        if e.name in ("sendto", "write", "writev") and '"HTTP/1.' in e.args[:80]:
            m = rid.search(e.args)
            if m and m.group(1) not in out:
                out[m.group(1)] = e
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--binary", default=DEFAULT_BINARY)
    ap.add_argument("--mutations", type=int, default=200)
    ap.add_argument("--expect-violations", action="store_true",
                    help="negative control: exit 0 only if violations were found")
    ap.add_argument("--keep", action="store_true", help="keep the trace and database")
    args = ap.parse_args()

    binary = os.path.abspath(args.binary)
    if not os.access(binary, os.X_OK):
        print("fsync_check: no executable at %s" % binary, file=sys.stderr)
        return 2
    strace = ensure_strace()
    if not strace:
        print("fsync_check: strace is not installed and could not be installed", file=sys.stderr)
        return 2
    tmp = tempfile.mkdtemp(prefix="apikeyd-fsync-")
    db = os.path.join(tmp, "keys.db")
    wal = db + "-wal"
    trace = os.path.join(tmp, "trace.txt")
    log_path = os.path.join(tmp, "server.log")
    env = dict(os.environ)
    env.update(SERVER_ENV)
    print("fsync check: binary=%s mutations=%d dir=%s" % (binary, args.mutations, tmp), flush=True)

    log = open(log_path, "wb")
    tracer = subprocess.Popen(
        [strace, "-f", "-tt", "-s", "65536", "-e", "trace=" + TRACE_CALLS, "-o", trace,
         binary, "serve", "--db", db, "--bind", "127.0.0.1:0"],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=log, env=env)
    log.close()
    server_pid = None
    results = []  # (kind, request id, status)
    try:
        port = root = None
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and port is None:
            text = open(log_path, errors="replace").read()
            m = re.search(r"root key: (sk-\S+)", text)
            root = m.group(1) if m else root
            m = re.search(r"listening on 127\.0\.0\.1:(\d+)", text)
            if m:
                port = int(m.group(1))
            elif tracer.poll() is not None:
                raise HarnessError("server under strace exited: %s" % text[-2000:])
            else:
                time.sleep(0.05)
        if port is None or root is None:
            raise HarnessError("server under strace did not start (log %s)" % log_path)
        children = open("/proc/%d/task/%d/children" % (tracer.pid, tracer.pid)).read().split()
        if len(children) != 1:
            raise HarnessError("cannot find the traced server's PID: %r" % children)
        server_pid = int(children[0])

        client = Client(port, timeout=30)
        auth = {"Authorization": "Bearer " + root}
        last_id = None
        for i in range(args.mutations):
            if last_id is None:
                req, kind = ("POST", "/api/v1/keys", {"title": "fsync"}, auth), "create"
            else:
                req, kind = ("DELETE", "/api/v1/keys/%d" % last_id, None, auth), "revoke"
            try:
                status, body = client.call(*req)
            except (NotSent, Indeterminate) as e:
                raise HarnessError("mutation %d failed: %s" % (i, e))
            if status != 200:
                raise HarnessError("mutation %d (%s) answered %d: %r" % (i, kind, status, body))
            rid = client.last_headers.get("x-request-id")
            results.append((kind, rid, status))
            last_id = body["data"]["id"] if kind == "create" else None
        client.close()
    except HarnessError as e:
        print("fsync_check error: %s" % e, file=sys.stderr)
        return 2
    finally:
        if server_pid is not None:
            try:
                os.kill(server_pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
        try:
            tracer.wait(timeout=30)
        except subprocess.TimeoutExpired:
            for pid in (server_pid, tracer.pid):
                if pid is not None:
                    try:
                        os.kill(pid, signal.SIGKILL)
                    except ProcessLookupError:
                        pass
            tracer.wait(timeout=10)

    events = parse_trace(trace)
    fds = FdTable(events)
    wal_real = os.path.realpath(wal)

    def on_wal(e, at):
        p = fds.path(e.fd, at) if e.fd is not None else None
        return p is not None and (p == wal or os.path.realpath(p) == wal_real)

    syncs = [e for e in events if e.name in ("fsync", "fdatasync") and e.ret == "0" and on_wal(e, e.start)]
    frame_writes = [e for e in events if e.name in ("pwrite64", "write") and on_wal(e, e.start)]
    responses = response_index(events)

    viol_a = viol_b = missing = 0
    notes = []
    prev = None
    for n, (kind, rid, _status) in enumerate(results, 1):
        resp = responses.get(rid)
        if resp is None:
            missing += 1
            notes.append("#%d %s %s: response write not found in the trace" % (n, kind, rid))
            continue
        lo = prev.start if prev is not None else -1
        # (a) a WAL sync completed between the previous acknowledgement and this one.
        if not any(lo < s.end < resp.start for s in syncs):
            viol_a += 1
            notes.append("#%d %s %s: no WAL fsync between the previous acknowledgement and this one"
                         % (n, kind, rid))
        # (b) this mutation's own WAL frame was written, then synced, before its acknowledgement.
        own = next((w for w in frame_writes if rid in w.args), None)
        if own is None or own.start > resp.start:
            viol_b += 1
            notes.append("#%d %s %s: its audit row reached the WAL %s its acknowledgement"
                         % (n, kind, rid, "never (in the trace)" if own is None else "only AFTER"))
        elif not any(own.end < s.start and s.end < resp.start for s in syncs):
            viol_b += 1
            notes.append("#%d %s %s: its WAL frame was written but not fsynced before its acknowledgement"
                         % (n, kind, rid))
        prev = resp
    violations = viol_a + viol_b + missing
    print("trace: %d syscalls, %d WAL fsync/fdatasync, %d WAL frame writes, %d HTTP responses"
          % (len(events), len(syncs), len(frame_writes), len(responses)))
    print("  (a) no WAL sync between consecutive acknowledgements: %d" % viol_a)
    print("  (b) own WAL frame not written+synced before its acknowledgement: %d" % viol_b)
    print("  acknowledgements not found in the trace: %d" % missing)
    for note in notes[:10]:
        print("    " + note)
    print("mutations=%d violations=%d" % (len(results), violations))
    if args.keep or (violations and not args.expect_violations):
        print("kept %s" % tmp)
    else:
        shutil.rmtree(tmp, ignore_errors=True)
    if args.expect_violations:
        return 0 if violations > 0 else 1
    return 0 if violations == 0 and len(results) == args.mutations else 1


if __name__ == "__main__":
    sys.exit(main())
