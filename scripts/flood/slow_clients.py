#!/usr/bin/env python3
"""Slow and greedy clients against the real binary (docs/RELIABILITY.md, sections 15 and 16):

1. stalled bodies: N connections from 127.0.0.1 each send a verify head with
   `Content-Length: 1000` and one byte of body, then nothing. Meanwhile a legitimate client
   (from 127.0.0.2, a fresh connection each time, every 0.5 s) verifies a valid key. Run
   twice: with the per-address cap off, so the stalled connections take every slot they
   can, and with the default cap. Prints how many stalled connections were answered 408 (or
   503) and closed, when, and what the legitimate client got. Then, on a server of its own,
   a keep-alive connection that sent one request and then half of a second head: when is
   it cut?
2. pipelining: C clients each send R pipelined `GET /openapi.json` and never read (and a
   slow reader: 64 KiB every 0.5 s); prints the server's resident memory before, at its
   peak, and after the clients leave.

Every server is started on 127.0.0.1 by this script and stopped by its PID. A binary that
lacks an option (an older build) is run without it, and the output says so.
  python3 scripts/flood/slow_clients.py --binary target/release/apikeyd
"""
import argparse
import json
import os
import resource
import selectors
import signal
import socket
import statistics
import subprocess
import tempfile
import threading
import time

VERIFY = "POST /api/v1/keys/verify HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"


def rss_mib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


class Server:
    def __init__(self, binary, db, args):
        self.err = tempfile.NamedTemporaryFile(prefix="apikeyd-err-", delete=False)
        env = {k: v for k, v in os.environ.items() if not k.startswith("APIKEYD_")}
        env["RUST_LOG"] = "warn"
        self.proc = subprocess.Popen([binary, "serve", "--db", db, "--bind", "127.0.0.1:0", *args],
                                     stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=self.err, env=env)
        deadline = time.monotonic() + 60
        self.port = None
        while time.monotonic() < deadline and self.port is None:
            time.sleep(0.05)
            for line in open(self.err.name, errors="replace"):
                if line.startswith("listening on "):
                    self.port = int(line.rsplit(":", 1)[1])
            if self.proc.poll() is not None:
                raise SystemExit(f"server exited: {open(self.err.name).read()}")
        if self.port is None:
            self.stop()
            raise SystemExit("server did not start")
        self.pid = self.proc.pid

    def stop(self):
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                os.kill(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        os.unlink(self.err.name)


def supports(binary, flag):
    out = subprocess.run([binary, "serve", "--help"], capture_output=True, text=True).stdout
    return flag in out


def read_status(sock, timeout):
    """First status code read on sock, or None."""
    sock.settimeout(timeout)
    data = b""
    try:
        while b"\r\n" not in data:
            chunk = sock.recv(4096)
            if not chunk:
                break
            data += chunk
    except OSError:
        pass
    try:
        return int(data.split(b" ")[1]) if data.startswith(b"HTTP/1.1 ") else None
    except (IndexError, ValueError):
        return None


def legitimate(port, key, duration, out):
    """A verify on a fresh connection from 127.0.0.2 every 0.5 s."""
    body = json.dumps({"key": key}).encode()
    request = (VERIFY + f"Content-Length: {len(body)}\r\n\r\n").encode() + body
    end = time.monotonic() + duration
    t0 = time.monotonic()
    while time.monotonic() < end:
        start = time.monotonic()
        code = "no answer"
        try:
            s = socket.socket()
            s.settimeout(3)
            s.bind(("127.0.0.2", 0))
            s.connect(("127.0.0.1", port))
            s.sendall(request)
            data = b""
            while b'"code"' not in data:
                chunk = s.recv(65536)
                if not chunk:
                    break
                data += chunk
            if b'"code":"VALID"' in data:
                code = "VALID"
            elif data:
                code = data.split(b"\r\n")[0].decode(errors="replace")
            s.close()
        except OSError as e:
            code = type(e).__name__
        out.append((start - t0, code, time.monotonic() - start))
        time.sleep(max(0.0, 0.5 - (time.monotonic() - start)))


def second_head(port, out):
    """One answered request on a keep-alive connection, then half a head: when is it cut?"""
    s = socket.socket()
    s.bind(("127.0.0.3", 0))
    s.connect(("127.0.0.1", port))
    s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
    read_status(s, 5)
    t = time.monotonic()
    s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
    s.settimeout(60)
    try:
        while s.recv(4096):
            pass
        out.append(time.monotonic() - t)
    except TimeoutError:
        pass  # still open
    except OSError:
        out.append(time.monotonic() - t)  # reset


def stalled_bodies(binary, db, key, n, hold, cap):
    args, note = [], "no per-address cap in this binary"
    if supports(binary, "--max-connections-per-address"):
        args, note = ([], "default per-address cap") if cap else (["--max-connections-per-address", "0"], "per-address cap off")
    server = Server(binary, db, args)
    print(f"stalled bodies, {note}: {n} connections from 127.0.0.1 send a verify head with "
          f"Content-Length: 1000 and 1 byte")
    legit = []
    threads = [threading.Thread(target=legitimate, args=(server.port, key, hold, legit), daemon=True)]
    stall = (VERIFY + "Content-Length: 1000\r\n\r\n{").encode()
    socks, failed = [], 0
    t0 = time.monotonic()
    for _ in range(n):
        try:
            s = socket.create_connection(("127.0.0.1", server.port), timeout=2)
            s.sendall(stall)
            s.setblocking(False)
            socks.append(s)
        except OSError:
            failed += 1
    opened = time.monotonic() - t0
    for t in threads:
        t.start()
    sel = selectors.DefaultSelector()
    status, closed = {}, {}
    for s in socks:
        sel.register(s, selectors.EVENT_READ)
    end = time.monotonic() + hold
    while time.monotonic() < end and len(closed) < len(socks):
        for k, _ in sel.select(0.2):
            s = k.fileobj
            try:
                data = s.recv(4096)
            except OSError:
                data = b""
            if data and s not in status and data.startswith(b"HTTP/1.1 "):
                status[s] = data.split(b" ")[1].decode()
            if not data:
                closed[s] = time.monotonic() - t0
                sel.unregister(s)
    threads[0].join()
    codes = {}
    for s in socks:
        codes[status.get(s, "none")] = codes.get(status.get(s, "none"), 0) + 1
    times = sorted(closed.values())
    when = (f"closed after min {times[0]:.1f} s, median {statistics.median(times):.1f} s, max {times[-1]:.1f} s"
            if times else "none closed")
    print(f"  opened {len(socks)} in {opened:.1f} s ({failed} could not connect); answers {codes}; "
          f"closed by the server {len(closed)} of {len(socks)} ({when}); still open after {hold:.0f} s: "
          f"{len(socks) - len(closed)}")
    ok = [x for x in legit if x[1] == "VALID"]
    lat = sorted(x[2] for x in ok)
    first = f", first at {ok[0][0]:.1f} s" if ok else ""
    others = {}
    for x in legit:
        if x[1] != "VALID":
            others[x[1]] = others.get(x[1], 0) + 1
    print(f"  legitimate verifies (fresh connection every 0.5 s from 127.0.0.2, 3 s timeout): "
          f"{len(ok)} of {len(legit)} VALID{first}"
          + (f", latency p50 {statistics.median(lat) * 1000:.1f} ms max {lat[-1] * 1000:.1f} ms" if lat else "")
          + (f"; others {others}" if others else ""))
    for s in socks:
        s.close()
    server.stop()


def stalled_second_head(binary, db):
    server = Server(binary, db, [])
    cut = []
    t = threading.Thread(target=second_head, args=(server.port, cut), daemon=True)
    t.start()
    t.join(65)
    print("keep-alive connection that sent one request, then half of a second head: "
          + (f"closed after {cut[0]:.1f} s" if cut else "still open after 60 s"))
    server.stop()


def pipelining(binary, db, clients, requests, duration, slow_read=0):
    server = Server(binary, db, [])
    pid = server.pid
    for _ in range(5):
        s = socket.create_connection(("127.0.0.1", server.port))
        s.sendall(b"GET /openapi.json HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        while s.recv(65536):
            pass
        s.close()
    before = rss_mib(pid)
    payload = b"GET /openapi.json HTTP/1.1\r\nHost: x\r\n\r\n" * requests
    socks = []
    for _ in range(clients):
        s = socket.create_connection(("127.0.0.1", server.port))
        if slow_read:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        s.setblocking(False)
        socks.append([s, 0, 0])
    t0 = time.monotonic()
    peak, next_read = before, 0.0
    while time.monotonic() - t0 < duration:
        for entry in socks:
            s, sent, _ = entry
            if sent < len(payload):
                try:
                    entry[1] += s.send(payload[sent:])
                except BlockingIOError:
                    pass
                except OSError:
                    entry[1] = len(payload)
        if slow_read and time.monotonic() - t0 >= next_read:
            next_read += 0.5
            for entry in socks:
                try:
                    entry[2] += len(entry[0].recv(slow_read))
                except (BlockingIOError, OSError):
                    pass
        peak = max(peak, rss_mib(pid))
        time.sleep(0.01)
    unsent = sum(len(payload) - e[1] for e in socks)
    read = sum(e[2] for e in socks)
    for e in socks:
        e[0].close()
    time.sleep(2)
    after = rss_mib(pid)
    what = f"reading {slow_read} B every 0.5 s" if slow_read else "never reading"
    print(f"pipelining, {clients} clients x {requests} GET /openapi.json, {what}, {duration:.0f} s: "
          f"RSS before {before:.1f} MiB, peak {peak:.1f} MiB, growth {peak - before:.1f} MiB, "
          f"after the clients left {after:.1f} MiB; request bytes still unsent {unsent}"
          + (f"; answer bytes read {read}" if slow_read else ""))
    server.stop()


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--binary", default="target/release/apikeyd")
    p.add_argument("--stall", type=int, default=8400, help="stalled-body connections")
    p.add_argument("--hold", type=float, default=25, help="seconds to watch them")
    p.add_argument("--clients", default="20,100", help="never-reading pipeliners, comma-separated runs")
    p.add_argument("--requests", type=int, default=2000)
    p.add_argument("--duration", type=float, default=10)
    p.add_argument("--only", choices=["stall", "pipeline"])
    a = p.parse_args()
    d = tempfile.mkdtemp(prefix="apikeyd-slow-")
    db = os.path.join(d, "k.db")
    key = subprocess.run([a.binary, "keys", "seed", "--db", db, "--count", "1"], capture_output=True,
                         text=True, check=True).stdout.split()[0]
    print(f"binary {a.binary}; open files limit (ulimit -n) {resource.getrlimit(resource.RLIMIT_NOFILE)[0]}")
    if a.only in (None, "stall"):
        stalled_bodies(a.binary, db, key, a.stall, a.hold, cap=False)
        if supports(a.binary, "--max-connections-per-address"):
            stalled_bodies(a.binary, db, key, a.stall, a.hold, cap=True)
        stalled_second_head(a.binary, db)
    if a.only in (None, "pipeline"):
        for c in (int(x) for x in a.clients.split(",")):
            pipelining(a.binary, db, c, a.requests, a.duration)
        pipelining(a.binary, db, 100, 4000, a.duration, slow_read=65536)
    for f in os.listdir(d):
        os.unlink(os.path.join(d, f))
    os.rmdir(d)


if __name__ == "__main__":
    main()
