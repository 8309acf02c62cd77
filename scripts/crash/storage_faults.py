#!/usr/bin/env python3
"""Storage-fault check for apikeyd (docs/RELIABILITY.md, D1 and D6 when the disk fills).

Called by storage_faults.sh, which prepares the fault:
  --mode tmpfs   the database lives on a tiny tmpfs (ENOSPC when it fills);
  --mode ulimit  the server runs with RLIMIT_FSIZE (SIGXFSZ ignored, so writes past the
                 limit fail with EFBIG), used where mounting is not allowed.

Fills the store with creates until writes fail, then checks:
  - no false acknowledgement: every create answered 2xx verifies VALID, while full and
    after restarts;
  - failing writes are answered 5xx, never 2xx and never a dropped connection;
  - the process stays up: /healthz 200, existing keys still verify (VALID / REVOKED),
    an unknown well-formed key never verifies VALID;
  - a revoke attempted while full either fails 5xx (key still VALID) or succeeds 2xx
    (key REVOKED): never 2xx with the key still VALID;
  - after a restart on the full store, and after space is freed, the same holds,
    PRAGMA integrity_check is ok and the audit log matches the keys.
"""

import argparse
import os
import random
import resource
import signal
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
import shutil

sys.dont_write_bytecode = True  # no __pycache__ left in scripts/crash
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (AUDIT_CHECKS, DEFAULT_BINARY, Client, HarnessError, Indeterminate,  # noqa: E402
                     NotSent, Server, verify_code)

FILL_SECONDS = 60          # longest fill
FAILS_TO_STOP = 200        # consecutive failed creates that mean "full"
TITLE = "f" * 200          # the longest title: fills faster


class Findings:
    def __init__(self):
        self.counts = {}
        self.violations = {}
        self.notes = []

    def count(self, name, n=1):
        self.counts[name] = self.counts.get(name, 0) + n

    def violation(self, kind, detail):
        self.violations[kind] = self.violations.get(kind, 0) + 1
        if len(self.notes) < 20:
            self.notes.append("%s: %s" % (kind, detail))


def unknown_keys(binary, n):
    """Well-formed keys this database has never seen: minted into a scratch database."""
    with tempfile.TemporaryDirectory(prefix="apikeyd-unknown-") as d:
        out = subprocess.run([binary, "keys", "seed", "--db", os.path.join(d, "x.db"), "--count", str(n)],
                             check=True, capture_output=True, text=True,
                             env=dict(os.environ, RUST_LOG="error")).stdout
    keys = [w for w in out.split() if w.startswith("sk-")]
    if len(keys) < n:
        raise HarnessError("could not mint unknown keys: %r" % out[:200])
    return keys[:n]


def fill(port, root, f, threads=4):
    """Creates until FAILS_TO_STOP creates in a row fail (or FILL_SECONDS pass)."""
    acked = []
    lock = threading.Lock()
    state = {"consecutive_fail": 0, "first_fail_at": None}
    deadline = time.monotonic() + FILL_SECONDS
    started = time.monotonic()

    def run():
        c = Client(port, timeout=10)
        try:
            while time.monotonic() < deadline:
                with lock:
                    if state["consecutive_fail"] >= FAILS_TO_STOP:
                        return
                try:
                    status, body = c.call("POST", "/api/v1/keys", {"title": TITLE},
                                          {"Authorization": "Bearer " + root})
                except NotSent as e:
                    f.violation("D6_connection_refused_during_fill", str(e))
                    time.sleep(0.1)
                    continue
                except Indeterminate as e:
                    f.violation("D6_connection_dropped_during_fill", str(e))
                    continue
                with lock:
                    if 200 <= status < 300:
                        acked.append(body["data"]["api_key"])
                        f.count("fill: create 2xx")
                        if state["consecutive_fail"]:
                            f.count("fill: create 2xx after a failure")
                        state["consecutive_fail"] = 0
                    else:
                        f.count("fill: create %d" % status)
                        state["consecutive_fail"] += 1
                        if state["first_fail_at"] is None:
                            state["first_fail_at"] = len(acked)
                        if status < 500:
                            f.violation("D6_failed_write_not_5xx", "create answered %d: %r" % (status, body))
        finally:
            c.close()

    ts = [threading.Thread(target=run, daemon=True) for _ in range(threads)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(timeout=FILL_SECONDS + 30)
    full = state["consecutive_fail"] >= FAILS_TO_STOP
    return acked, full, time.monotonic() - started, state["first_fail_at"]


def check_keys(port, phase, acked, revoked, unknown, f, server):
    """Verify every acknowledged key, the revoked ones and the unknown ones."""
    c = Client(port, timeout=10)
    try:
        for _ in range(3):
            status, _ = c.call("GET", "/healthz")
            if status != 200:
                f.violation("D6_healthz", "%s: /healthz %d" % (phase, status))
        f.count("%s: healthz ok" % phase)
        bad = 0
        for k in acked:
            code = verify_code(c, k)
            if code != "VALID":
                bad += 1
                f.violation("D1_false_ack", "%s: acknowledged key verifies %s" % (phase, code))
        f.count("%s: acked keys verified" % phase, len(acked))
        for k in revoked:
            code = verify_code(c, k)
            if code != "REVOKED":
                f.violation("D2_revoked_key" if code == "VALID" else "STATE_revoked_key_code",
                            "%s: revoked key verifies %s" % (phase, code))
        for k in unknown:
            code = verify_code(c, k)
            if code == "VALID":
                f.violation("D6_unknown_key_valid", "%s: unknown key verifies VALID" % phase)
            elif code != "NOT_FOUND":
                f.count("%s: unknown key answered %s" % (phase, code))
        f.count("%s: unknown keys checked" % phase, len(unknown))
    except (NotSent, Indeterminate) as e:
        f.violation("D6_not_serving", "%s: %s" % (phase, e))
    finally:
        c.close()
    if not server.alive():
        f.violation("D6_process_died", phase)


def check_db(db, f, phase):
    conn = sqlite3.connect("file:%s?mode=ro" % db, uri=True, timeout=10)
    try:
        res = [r[0] for r in conn.execute("PRAGMA integrity_check").fetchall()]
        if res != ["ok"]:
            f.violation("D4_integrity", "%s: %s" % (phase, res[:3]))
        else:
            f.count("%s: integrity_check ok" % phase)
        for kind, sql in AUDIT_CHECKS:
            n = len(conn.execute(sql).fetchall())
            if n:
                f.violation(kind, "%s: %d rows" % (phase, n))
    finally:
        conn.close()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--mode", choices=("tmpfs", "ulimit"), required=True)
    ap.add_argument("--dir", required=True, help="directory for the database (the tmpfs mount point)")
    ap.add_argument("--grow", default="", help="shell command that frees space (tmpfs mode)")
    ap.add_argument("--fsize", type=int, default=2 * 1024 * 1024, help="ulimit mode: RLIMIT_FSIZE in bytes")
    ap.add_argument("--binary", default=DEFAULT_BINARY)
    args = ap.parse_args()

    binary = os.path.abspath(args.binary)
    db = os.path.join(args.dir, "keys.db")
    logdir = tempfile.mkdtemp(prefix="apikeyd-faults-log-")
    f = Findings()

    def limited():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # EFBIG instead of death
        resource.setrlimit(resource.RLIMIT_FSIZE, (args.fsize, args.fsize))

    fault = limited if args.mode == "ulimit" else None
    server = Server(binary, db, logdir, preexec=fault)
    if args.mode == "tmpfs":
        print("storage faults: fault = database on a 2 MiB tmpfs at %s (ENOSPC when full)" % args.dir)
    else:
        print("storage faults: fault = RLIMIT_FSIZE %d bytes with SIGXFSZ ignored (EFBIG); "
              "the fallback where a tmpfs cannot be mounted" % args.fsize)
    rc = 0
    try:
        server.start()
        root = server.root_key
        unknown = unknown_keys(binary, 10)
        c = Client(server.port)
        # Some keys revoked before the fault, to check REVOKED is still answered while full.
        revoked = []
        for _ in range(5):
            _, body = c.call("POST", "/api/v1/keys", {"title": "pre"}, {"Authorization": "Bearer " + root})
            k = body["data"]
            status, _ = c.call("DELETE", "/api/v1/keys/%d" % k["id"], None, {"Authorization": "Bearer " + root})
            if status != 200:
                raise HarnessError("baseline revoke answered %d" % status)
            revoked.append(k["api_key"])
        c.close()

        acked, full, secs, first_fail = fill(server.port, root, f)
        print("fill: %d creates acknowledged in %.1fs; first failure after %s acknowledged; store full: %s"
              % (len(acked), secs, first_fail, full), flush=True)
        if not full:
            f.violation("CHECK_never_full", "writes never started failing")

        # While full: more writes must fail 5xx; a revoke must be all-or-nothing.
        c = Client(server.port)
        for _ in range(20):
            try:
                status, body = c.call("POST", "/api/v1/keys", {"title": "late"}, {"Authorization": "Bearer " + root})
            except (NotSent, Indeterminate) as e:
                f.violation("D6_connection_dropped_while_full", str(e))
                continue
            f.count("full: create %d" % status)
            if 200 <= status < 300:
                acked.append(body["data"]["api_key"])
            elif status < 500:
                f.violation("D6_failed_write_not_5xx", "create answered %d" % status)
        for key in random.Random(1).sample(acked, min(5, len(acked))):
            st, body = c.call("POST", "/api/v1/keys/verify", {"key": key})
            kid = body["data"]["key_id"]
            try:
                status, _ = c.call("DELETE", "/api/v1/keys/%d" % kid, None, {"Authorization": "Bearer " + root})
            except (NotSent, Indeterminate) as e:
                f.violation("D6_connection_dropped_while_full", str(e))
                continue
            f.count("full: revoke %d" % status)
            code = verify_code(c, key)
            if 200 <= status < 300:
                acked.remove(key)
                revoked.append(key)
                if code != "REVOKED":
                    f.violation("D2_revoke_acked_not_honoured", "verify says %s" % code)
            else:
                if status < 500:
                    f.violation("D6_failed_write_not_5xx", "revoke answered %d" % status)
                if code != "VALID":
                    f.violation("STATE_failed_revoke_changed_key", "verify says %s" % code)
        c.close()
        check_keys(server.port, "while full", acked, revoked, unknown, f, server)

        # Restart on the still-full store.
        server.stop()
        try:
            server.start()
            f.count("restart on full store: started")
            check_keys(server.port, "restarted full", acked, revoked, unknown, f, server)
            server.stop()
        except HarnessError as e:
            f.count("restart on full store: refused to start")
            print("restart on the full store failed: %s" % str(e).splitlines()[0])

        # Free space, restart, check everything, and show writes work again.
        if args.mode == "tmpfs" and args.grow:
            subprocess.run(args.grow, shell=True, check=True)
        else:
            server.preexec = None
        server.start()
        check_db(db, f, "after freeing space")
        check_keys(server.port, "after freeing space", acked, revoked, unknown, f, server)
        c = Client(server.port)
        status, body = c.call("POST", "/api/v1/keys", {"title": "after"}, {"Authorization": "Bearer " + root})
        f.count("after freeing space: create %d" % status)
        if status == 200 and verify_code(c, body["data"]["api_key"]) != "VALID":
            f.violation("D1_false_ack", "after freeing space")
        c.close()
        server.stop()
    except HarnessError as e:
        print("storage_faults error: %s" % e, file=sys.stderr)
        rc = 2
    finally:
        server.kill()

    for name in sorted(f.counts):
        print("  %s: %d" % (name, f.counts[name]))
    nviol = sum(f.violations.values())
    errors = []
    for p in sorted(os.listdir(logdir)):
        for line in open(os.path.join(logdir, p), errors="replace"):
            if "ERROR" in line or "error" in line:
                errors.append(line.strip())
    if errors:
        print("  server error lines: %d, e.g. %s" % (len(errors), errors[0][:200]))
    print("violations=%d (%s)" % (nviol, ", ".join("%s=%d" % kv for kv in sorted(f.violations.items())) or "none"))
    for n in f.notes:
        print("    " + n)
    if nviol == 0 and rc == 0:
        shutil.rmtree(logdir, ignore_errors=True)
    else:
        print("  server logs kept in %s" % logdir)
    return rc or (1 if nviol else 0)


if __name__ == "__main__":
    sys.exit(main())
