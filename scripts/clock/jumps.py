#!/usr/bin/env python3
"""Clock-jump harness for apikeyd (docs/RELIABILITY.md, the one-way clock).

Runs the real release binary under libfaketime (Debian's `faketime`: LD_PRELOAD of
libfaketimeMT.so.1 with FAKETIME_TIMESTAMP_FILE, FAKETIME_NO_CACHE=1 and
FAKETIME_DONT_FAKE_MONOTONIC=1), and steps its wall clock while it serves by writing offsets
into the file: jumps drawn like Jepsen's time nemesis (bumps of +-2^2..2^18 ms, strobes that
flip between two offsets every few ms), steps of +-1 hour and +-1 day, and resets towards the
real clock. Meanwhile client threads create keys expiring 0.5-15 s ahead of the server's
clock, keys that never expire, log in with them (sessions of a few seconds, or cut at their
key's expiry), and verify keys and check sessions over and over; a "limited" client sends
bad keys in bursts from its own address to watch the failure limiter. Every so often the
server is killed (SIGKILL, or SIGTERM) by PID and started again on the same database with the
clock still stepped.

The harness keeps bounds on the server's clock: it can only be the real clock plus the
offset, or later (it never goes back and never stands still), and before any restart it is
exactly max(wall, previous + real time elapsed). Checked on every answer:

  revived       a key once answered EXPIRED, or a session once refused after its expiry, is
                accepted again (VALID / 200)   -- the promise; never skipped;
  late          a key (session) accepted although the server's clock is surely past its
                expiry (the lower bound is past it by 0.1 s);
  early         a key (session) refused as expired although the clock is surely before it
                (before a restart only: after one, the clock may rightly be anywhere between
                the wall clock and the highest time seen);
  limiter       a burst after >= 6 s of quiet is not let through 5 times then limited, or a
                burst 2.5 s after the last one is not let through twice then limited (a
                backward step must not lock a client out, a forward one must not refill it);
  5xx, panics   any 5xx answer; any "panicked" in the server's stderr.

Answers whose request overlaps a jump by less than 0.2 s are skipped for late/early (counted);
revivals are never skipped. Exit status 0 when nothing was found, 1 otherwise, 2 when the
harness could not run; prints `SKIPPED <why>` and exits 0 without libfaketime unless
APIKEYD_REQUIRE_FAKETIME=1.

Usage: python3 scripts/clock/jumps.py [--jumps 250] [--seed S] [--binary PATH]
"""

import argparse
import calendar
import collections
import json
import os
import random
import re
import shutil
import signal
import sys
import tempfile
import threading
import time

sys.dont_write_bytecode = True
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "crash"))
from harness import DEFAULT_BINARY, Client, HarnessError, Indeterminate, NotSent, Server  # noqa: E402

FAKETIME = "/usr/lib/x86_64-linux-gnu/faketime/libfaketimeMT.so.1"
MARGIN = 0.1           # s: how sure a bound must be before an answer is judged by it
JUMP_SKIP = 0.2        # s: answers this close to a jump are not judged late/early
JWT_TTL = 4            # s: the server's session lifetime
BURST, REFILL = 5, 1   # the failure limiter's budget per address
HOUR, DAY = 3600.0, 86400.0


def rfc3339(epoch):
    ms = int(round(epoch * 1000))
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ms // 1000)) + ".%03dZ" % (ms % 1000)


def parse_rfc3339(text):
    whole, frac = text.rstrip("Z").split(".")
    return calendar.timegm(time.strptime(whole, "%Y-%m-%dT%H:%M:%S")) + int(frac) / 1000.0


class ServerClock:
    """Bounds on the server's clock. All times are epoch seconds; `real` is this process's
    clock (not faked), `offset` what the file says."""

    def __init__(self):
        self.lock = threading.Lock()
        self.offset = 0.0
        self.low = time.time()     # the server's clock is at least this (at `at`)
        self.high = self.low       # and at most this
        self.at = time.monotonic()
        self.jumps = []            # monotonic times of every offset change

    def _advance(self):
        now = time.monotonic()
        dt, self.at = now - self.at, now
        wall = time.time() + self.offset
        self.low = max(self.low + dt, wall)
        self.high = max(self.high + dt, wall)

    def bounds(self):
        with self.lock:
            self._advance()
            return self.low, self.high

    def set_offset(self, offset):
        with self.lock:
            self._advance()
            self.offset = offset
            self.jumps.append(time.monotonic())
            self._advance()

    def restarted(self, floor):
        """After a restart the clock is somewhere in [max(wall, floor), high]."""
        with self.lock:
            self._advance()
            self.low = max(time.time() + self.offset, floor)

    def near_jump(self, t0, t1):
        with self.lock:
            return any(t0 - JUMP_SKIP <= j <= t1 + JUMP_SKIP for j in self.jumps[-50:])


class Cred:
    """A key, with its expiry (epoch s or None), and maybe a session with its expiry."""

    def __init__(self, text, expires):
        self.text = text
        self.expires = expires
        self.key_expired_seen = False
        self.jwt = None
        self.jwt_expires = None
        self.jwt_expired_seen = False


class Findings:
    def __init__(self):
        self.lock = threading.Lock()
        self.counts = collections.Counter()
        self.violations = collections.Counter()
        self.notes = collections.defaultdict(list)

    def count(self, name, n=1):
        with self.lock:
            self.counts[name] += n

    def violation(self, kind, detail):
        with self.lock:
            self.violations[kind] += 1
            if len(self.notes[kind]) < 3:
                self.notes[kind].append(detail)


class Run:
    def __init__(self, args, server, clock, findings, rng):
        self.args = args
        self.server = server
        self.clock = clock
        self.f = findings
        self.rng = rng
        self.creds = []
        self.creds_lock = threading.Lock()
        self.stop = threading.Event()
        self.paused = threading.Event()   # set while the server restarts
        self.idle = threading.Semaphore(0)
        self.covered = 0.0                # the highest expiry the server reported passed
        self.addr = 0

    def address(self):
        """A fresh client address for each request that may fail authentication, so the main
        traffic never spends a budget (the limited client has its own)."""
        with self.creds_lock:
            self.addr += 1
            n = self.addr
        return "2001:db8::%x:%x" % (n >> 16, n & 0xFFFF)

    def root(self):
        return {"Authorization": "Bearer " + self.server.root_key}

    # ---- judging one answer ----

    def judge(self, cred, what, accepted, refused_for_expiry, expires, t0, t1, lo0, hi1):
        """`what` is "key" or "session"; `accepted` the answer let it in."""
        seen_attr = "key_expired_seen" if what == "key" else "jwt_expired_seen"
        if accepted and getattr(cred, seen_attr):
            self.f.violation("revived_" + what, "%s expiring %s accepted again after it was refused as expired"
                             % (what, rfc3339(expires)))
            return
        if refused_for_expiry:
            setattr(cred, seen_attr, True)
            with self.creds_lock:
                self.covered = max(self.covered, expires)
        if self.clock.near_jump(t0, t1):
            self.f.count("answers skipped within 0.2 s of a jump")
            return
        self.f.count("answers judged")
        if accepted and lo0 >= expires + MARGIN:
            self.f.violation("late_" + what, "%s expiring %s accepted, server clock >= %s"
                             % (what, rfc3339(expires), rfc3339(lo0)))
        if refused_for_expiry and hi1 < expires - MARGIN:
            self.f.violation("early_" + what, "%s expiring %s refused, server clock <= %s"
                             % (what, rfc3339(expires), rfc3339(hi1)))

    def call(self, client, *req, headers=None):
        status, body = client.call(*req, headers=headers)
        if status >= 500:
            self.f.violation("5xx", "%s %s -> %d %r" % (req[0], req[1], status, body))
        return status, body

    # ---- the load ----

    def create(self, client):
        lo, hi = self.clock.bounds()
        expiring = self.rng.random() < 0.75
        expires = hi + self.rng.uniform(0.5, 15.0) if expiring else None
        body = {"title": "clock"}
        if expires is not None:
            body["expires_at"] = rfc3339(expires)
            expires = int(round(expires * 1000)) / 1000.0
        status, data = self.call(client, "POST", "/api/v1/keys", body, headers=self.root())
        if status != 200:
            self.f.count("creates refused %d" % status)
            return
        cred = Cred(data["data"]["api_key"], expires)
        self.f.count("keys created (expiring)" if expiring else "keys created (never expiring)")
        if self.rng.random() < 0.6:
            st, data = self.call(client, "POST", "/api/clients/login", {"api_key": cred.text},
                                 headers={"X-Forwarded-For": self.address()})
            if st == 200:
                cred.jwt = data["data"]["token"]
                cred.jwt_expires = parse_rfc3339(data["data"]["expires_at"])
                self.f.count("sessions minted")
        with self.creds_lock:
            self.creds.append(cred)
            if len(self.creds) > 400:
                self.creds.pop(0)

    def check(self, client):
        with self.creds_lock:
            if not self.creds:
                return
            cred = self.rng.choice(self.creds)
        lo0, _ = self.clock.bounds()
        t0 = time.monotonic()
        status, data = self.call(client, "POST", "/api/v1/keys/verify", {"key": cred.text},
                                 headers={"X-Forwarded-For": self.address()})
        t1 = time.monotonic()
        _, hi1 = self.clock.bounds()
        if status != 200:
            self.f.count("verify answered %d" % status)
            return
        code = data["data"]["code"]
        self.f.count("verify %s" % code)
        if cred.expires is None:
            if code != "VALID":
                self.f.violation("never_expiring_key_refused", "verify said %s" % code)
        else:
            self.judge(cred, "key", code == "VALID", code == "EXPIRED", cred.expires, t0, t1, lo0, hi1)
        if cred.jwt is not None:
            lo0, _ = self.clock.bounds()
            t0 = time.monotonic()
            st, _ = self.call(client, "GET", "/auth?path=/",
                              headers={"Authorization": "Bearer " + cred.jwt, "X-Forwarded-For": self.address()})
            t1 = time.monotonic()
            _, hi1 = self.clock.bounds()
            self.f.count("session checks")
            if st in (200, 401):
                self.judge(cred, "session", st == 200, st == 401, cred.jwt_expires, t0, t1, lo0, hi1)

    def worker(self, wid):
        client = Client(self.server.port, timeout=10)
        rng = random.Random(self.args.seed * 31 + wid)
        try:
            while not self.stop.is_set():
                if self.paused.is_set():
                    client.close()
                    self.idle.release()
                    while self.paused.is_set() and not self.stop.is_set():
                        time.sleep(0.01)
                    client = Client(self.server.port, timeout=10)
                    continue
                try:
                    if rng.random() < 0.08:
                        self.create(client)
                    else:
                        self.check(client)
                except (NotSent, Indeterminate) as e:
                    if not self.paused.is_set():
                        self.f.violation("connection_failed", type(e).__name__)
                    client.close()
        finally:
            client.close()

    def limited(self):
        """Bursts of bad keys from one address: the failure limiter runs on the monotonic clock."""
        client = Client(self.server.port, timeout=10)
        bad = {"key": "sk-" + "0" * 49}
        hdr = {"X-Forwarded-For": "203.0.113.66"}
        plan = [(6.5, BURST), (2.5, 2)]   # (quiet before, expected NOT_FOUND answers)
        step = 0
        last = time.monotonic()
        try:
            while not self.stop.is_set():
                quiet, allowed = plan[step % 2]
                if time.monotonic() - last < quiet or self.paused.is_set():
                    time.sleep(0.05)
                    if self.paused.is_set():
                        # A restart starts a new limiter with every bucket full: a full burst
                        # is due at once.
                        while self.paused.is_set() and not self.stop.is_set():
                            time.sleep(0.01)
                        step, last = 0, time.monotonic() - plan[0][0]
                        client.close()
                        client = Client(self.server.port, timeout=10)
                    continue
                codes = []
                try:
                    for _ in range(allowed + 1):
                        status, data = self.call(client, "POST", "/api/v1/keys/verify", bad, headers=hdr)
                        codes.append(data["data"]["code"] if status == 200 else "HTTP_%d" % status)
                except (NotSent, Indeterminate):
                    # Only during a restart (the workers count any other failure).
                    client.close()
                    while self.paused.is_set() and not self.stop.is_set():
                        time.sleep(0.01)
                    client = Client(self.server.port, timeout=10)
                    step, last = 0, time.monotonic() - plan[0][0]
                    continue
                last = time.monotonic()
                want = ["NOT_FOUND"] * allowed + ["RATE_LIMITED"]
                if self.paused.is_set():
                    continue
                self.f.count("limiter bursts")
                if codes != want:
                    self.f.violation("limiter", "after %.1fs quiet: %s, wanted %s" % (quiet, codes, want))
                step += 1
        finally:
            client.close()


def jump_plan(rng, clock, run, args, findings):
    """The nemesis: applies jumps until `args.jumps` offset changes were made, restarting the
    server every `args.restart_every` of them."""
    done = 0
    since_restart = 0
    while done < args.jumps:
        kind = rng.choices(["bump", "strobe", "hour", "day", "reset"], [60, 15, 10, 5, 10])[0]
        off = clock.offset
        if abs(off) > 2 * DAY:
            kind = "reset"
        if kind == "bump":
            clock.set_offset(off + rng.choice([-1, 1]) * (2 ** rng.randint(2, 18)) / 1000.0)
            write_offset(args.file, clock.offset)
            done += 1
        elif kind == "strobe":
            delta = (2 ** rng.randint(2, 18)) / 1000.0
            period = rng.uniform(0.01, 0.2)
            end = time.monotonic() + rng.uniform(0.2, 1.0)
            base = off
            flips = 0
            while time.monotonic() < end and done < args.jumps:
                target = base + delta if flips % 2 == 0 else base
                clock.set_offset(target)
                write_offset(args.file, target)
                flips += 1
                done += 1
                time.sleep(period)
            findings.count("strobe flips", flips)
        elif kind in ("hour", "day"):
            step = HOUR if kind == "hour" else DAY
            clock.set_offset(off + rng.choice([-1, 1]) * step)
            write_offset(args.file, clock.offset)
            done += 1
        else:
            clock.set_offset(0.0)
            write_offset(args.file, 0.0)
            done += 1
        findings.count("jumps: " + kind)
        since_restart += 1
        time.sleep(rng.uniform(0.05, args.gap))
        if since_restart >= args.restart_every and done < args.jumps:
            since_restart = 0
            restart(run, clock, findings, rng)
    return done


def write_offset(path, offset):
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write("%+.3f\n" % offset)
    os.replace(tmp, path)


def restart(run, clock, findings, rng):
    run.paused.set()
    for _ in range(run.args.threads):
        run.idle.acquire(timeout=15)
    how = rng.choice(["SIGKILL", "SIGKILL", "SIGTERM"])
    if how == "SIGKILL":
        run.server.kill()
    else:
        run.server.stop()
    run.server.start()
    with run.creds_lock:
        covered = run.covered
    clock.restarted(covered)
    findings.count("restarts (%s)" % how)
    run.paused.clear()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--jumps", type=int, default=250, help="clock offset changes to make (default 250)")
    ap.add_argument("--seed", type=int, default=None)
    ap.add_argument("--binary", default=DEFAULT_BINARY)
    ap.add_argument("--threads", type=int, default=4)
    ap.add_argument("--gap", type=float, default=0.6, help="longest pause between jumps, s")
    ap.add_argument("--restart-every", type=int, default=15, help="jumps (a strobe counts once) between restarts")
    ap.add_argument("--keep", action="store_true")
    args = ap.parse_args()
    args.seed = args.seed if args.seed is not None else random.randrange(1 << 30)
    if not os.path.exists(FAKETIME):
        why = "%s is missing (Debian package faketime)" % FAKETIME
        if os.environ.get("APIKEYD_REQUIRE_FAKETIME", "") not in ("", "0"):
            print("jumps: %s, but APIKEYD_REQUIRE_FAKETIME is set" % why, file=sys.stderr)
            return 2
        print("SKIPPED clock-jump harness: %s (set APIKEYD_REQUIRE_FAKETIME=1 to fail instead)" % why)
        return 0
    binary = os.path.abspath(args.binary)
    if not os.access(binary, os.X_OK):
        print("jumps: no executable at %s (cargo build --release first)" % binary, file=sys.stderr)
        return 2
    rng = random.Random(args.seed)
    tmp = tempfile.mkdtemp(prefix="apikeyd-clock-")
    args.file = os.path.join(tmp, "faketime")
    write_offset(args.file, 0.0)
    env = {
        "LD_PRELOAD": FAKETIME, "FAKETIME_TIMESTAMP_FILE": args.file, "FAKETIME_NO_CACHE": "1",
        "FAKETIME_DONT_FAKE_MONOTONIC": "1", "APIKEYD_JWT_TTL": str(JWT_TTL),
        "APIKEYD_AUTH_FAILURE_BURST": str(BURST), "APIKEYD_AUTH_FAILURE_RATE": str(REFILL),
        "APIKEYD_TRUSTED_PROXIES": "127.0.0.1",
    }
    server = Server(binary, os.path.join(tmp, "keys.db"), tmp, env=env)
    clock = ServerClock()
    findings = Findings()
    started = time.monotonic()
    print("clock-jump harness: binary=%s jumps=%d seed=%d dir=%s" % (binary, args.jumps, args.seed, tmp), flush=True)
    run = None
    try:
        server.start()
        root = server.root_key
        if not root:
            raise HarnessError("no root key printed")
        server.env["APIKEYD_ROOT_KEY"] = root
        run = Run(args, server, clock, findings, rng)
        threads = [threading.Thread(target=run.worker, args=(i,), daemon=True) for i in range(args.threads)]
        threads.append(threading.Thread(target=run.limited, daemon=True))
        for t in threads:
            t.start()
        done = jump_plan(rng, clock, run, args, findings)
        time.sleep(1.0)
        run.stop.set()
        for t in threads:
            t.join(timeout=30)
        server.stop()
    except HarnessError as e:
        print("harness error: %s" % e, file=sys.stderr)
        server.kill()
        return 2
    finally:
        if run is not None:
            run.stop.set()
        server.kill()
    panics = 0
    for name in sorted(os.listdir(tmp)):
        if name.startswith("server-"):
            with open(os.path.join(tmp, name), errors="replace") as f:
                text = f.read()
            n = text.count("panicked")
            panics += n
            if n:
                findings.notes["panic"].append(re.sub(r"\s+", " ", text[text.index("panicked") - 80:][:300]))
    if panics:
        findings.violations["panic"] += panics
    elapsed = time.monotonic() - started
    c = findings.counts
    print("TOTAL jumps=%d seed=%d elapsed=%.1fs" % (done, args.seed, elapsed))
    print("  jumps by kind: %s (strobe flips %d)" % (
        ", ".join("%s=%d" % (k[7:], v) for k, v in sorted(c.items()) if k.startswith("jumps: ")), c["strobe flips"]))
    print("  restarts: %s" % (", ".join("%s=%d" % (k[10:-1], v) for k, v in sorted(c.items())
                                        if k.startswith("restarts")) or "none"))
    print("  keys created: expiring=%d never-expiring=%d; sessions minted=%d; session checks=%d"
          % (c["keys created (expiring)"], c["keys created (never expiring)"], c["sessions minted"],
             c["session checks"]))
    print("  verify answers: %s" % ", ".join("%s=%d" % (k[7:], v) for k, v in sorted(c.items())
                                             if k.startswith("verify ")))
    print("  answers judged=%d, skipped within 0.2 s of a jump=%d; limiter bursts checked=%d"
          % (c["answers judged"], c["answers skipped within 0.2 s of a jump"], c["limiter bursts"]))
    print("  expired keys or sessions revived: %d; 5xx: %d; panics: %d"
          % (findings.violations["revived_key"] + findings.violations["revived_session"],
             findings.violations["5xx"], panics))
    nviol = sum(findings.violations.values())
    print("  violations=%d (%s)" % (nviol, ", ".join("%s=%d" % kv for kv in sorted(findings.violations.items()))
                                    or "none"))
    for kind in sorted(findings.notes):
        for note in findings.notes[kind][:3]:
            print("    %s: %s" % (kind, note))
    if nviol == 0 and not args.keep:
        shutil.rmtree(tmp, ignore_errors=True)
    else:
        print("  kept %s" % tmp)
    if done < args.jumps:
        print("RESULT TOO FEW JUMPS: %d < %d" % (done, args.jumps))
        return 1
    print("RESULT %s" % ("OK" if nviol == 0 else "VIOLATIONS"))
    return 0 if nviol == 0 else 1


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, lambda s, f: sys.exit(128 + s))
    sys.exit(main())
