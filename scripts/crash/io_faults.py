#!/usr/bin/env python3
"""I/O-error check for apikeyd (docs/RELIABILITY.md, D6 when the disk answers EIO).

Builds scripts/crash/faultfs.c with the system C compiler (the one cargo links with) and
starts the real binary with it preloaded, so that fsync, pwrite64 or pread64 on the
database's files fail with EIO while a control file exists. Then, fault by fault:

  sync, write  every write attempted (native, shard and applications creates, revokes by
               id, deletes by value) must answer 5xx: never 2xx, never 4xx, never a
               dropped connection; /healthz stays 200; every key still verifies exactly as
               before (a key whose revoke failed is still VALID); once the fault is gone,
               writes succeed again and the failed revokes, retried, take effect;
  read         verify may answer 5xx but never VALID for a revoked, deleted or unknown key;
               a write may fail 5xx, and one answered 2xx must last.

Finally the server is SIGKILLed, restarted without the library, and PRAGMA integrity_check,
the audit rules (storage_faults.check_db) and every acknowledged key are checked. Prints counts; exit status 0 when no
violation was found (with --expect-violations, the negative control: when false
acknowledgements were), 1 otherwise, 2 when the check itself could not run.
"""

import argparse
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time

sys.dont_write_bytecode = True  # no __pycache__ left in scripts/crash
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from harness import (DEFAULT_BINARY, VERIFY_EXPECT, Client, HarnessError,  # noqa: E402
                     Indeterminate, NotSent, Server, verify_code)
from storage_faults import Findings, check_db, unknown_keys  # noqa: E402

NEVER = "0001-01-01T00:00:00Z"


class Store:
    """What the check has seen acknowledged, and the calls it makes."""

    def __init__(self, port, root, f):
        self.client = Client(port, timeout=10)
        self.root = root
        self.f = f
        self.keys = []          # {"text", "id", "state"}
        self.app = None
        self.app_keys = 0       # applications-family keys acknowledged (not verified: counted)

    def call(self, what, method, path, body=None, headers=None):
        """(status, body), or (None, None) after recording a refused or dropped connection."""
        try:
            return self.client.call(method, path, body, headers)
        except (NotSent, Indeterminate) as e:
            self.f.violation("D6_connection_lost", "%s: %s" % (what, type(e).__name__))
            return None, None

    def root_header(self):
        return {"Authorization": "Bearer " + self.root}

    def writes(self):
        """One round of writes: (name, method, path, body, headers, on_success)."""
        active = [k for k in self.keys if k["state"] == "active"]
        ops = [
            ("native create", "POST", "/api/v1/keys", {"title": "io"}, self.root_header(), self.add_native),
            ("shard create", "POST", "/api-key", {"permissions": 3, "path": "/", "expiration_date": NEVER},
             {"x-user-api-key": self.root}, self.add_shard),
        ]
        if self.app:
            ops.append(("applications create", "POST", "/api/v1/applications/%s/api-keys" % self.app, {},
                        self.root_header(), self.add_app_key))
        if len(active) >= 2:
            victim, gone = active[0], active[1]
            ops.append(("revoke", "DELETE", "/api/v1/keys/%d" % victim["id"], None, self.root_header(),
                        lambda b, k=victim: k.update(state="revoked")))
            ops.append(("delete by value", "DELETE", "/api-key?value=" + gone["text"], None,
                        {"x-user-api-key": self.root}, lambda b, k=gone: k.update(state="deleted")))
        return ops

    def add_native(self, body):
        d = body["data"]
        self.keys.append({"text": d["api_key"], "id": d["id"], "state": "active"})

    def add_app_key(self, _body):
        self.app_keys += 1

    def add_shard(self, body):
        self.keys.append({"text": body["value"], "id": body["id"], "state": "active"})

    def check_reads(self, phase, unknown, allow_5xx):
        """Every key verifies as the model says (5xx allowed only if `allow_5xx`); unknown keys
        never VALID; /healthz 200."""
        for key in self.keys + [{"text": u, "id": None, "state": "unknown"} for u in unknown]:
            try:
                code = verify_code(self.client, key["text"])
            except (NotSent, Indeterminate) as e:
                self.f.violation("D6_connection_lost", "%s verify: %s" % (phase, type(e).__name__))
                continue
            want = VERIFY_EXPECT.get(key["state"], "NOT_FOUND")
            if code == want:
                self.f.count("%s: verify %s" % (phase, code))
            elif code.startswith("HTTP_5") and allow_5xx:
                self.f.count("%s: verify %s" % (phase, code))
            elif code == "VALID":
                self.f.violation("D6_valid_when_not", "%s: %s key id=%s verified VALID" % (phase, key["state"], key["id"]))
            else:
                self.f.violation("D6_verify_changed", "%s: %s key id=%s: %s, expected %s"
                                 % (phase, key["state"], key["id"], code, want))
        status, _ = self.call(phase + " healthz", "GET", "/healthz")
        if status != 200:
            self.f.violation("D6_unhealthy", "%s: /healthz answered %s" % (phase, status))


def write_round(store, phase, must_fail):
    """Runs one round of writes. With `must_fail`, each must answer 5xx; otherwise 2xx is
    applied to the model, 5xx counted, and anything else is a violation."""
    for name, method, path, body, headers, on_success in store.writes():
        status, answer = store.call("%s %s" % (phase, name), method, path, body, headers)
        if status is None:
            continue
        store.f.count("%s: %s %d" % (phase, name, status))
        if 200 <= status < 300:
            if must_fail:
                store.f.violation("D6_false_ack", "%s: %s answered %d" % (phase, name, status))
            on_success(answer)
        elif status < 500:
            store.f.violation("D6_failed_write_not_5xx", "%s: %s answered %d: %r" % (phase, name, status, answer))


def build_library(tmp):
    cc = shutil.which("cc") or shutil.which("gcc")
    if cc is None:
        raise HarnessError("no C compiler (cc) to build faultfs.c")
    so = os.path.join(tmp, "faultfs.so")
    subprocess.run([cc, "-shared", "-fPIC", "-O2", "-Wall", "-Werror", "-o", so,
                    os.path.join(HERE, "faultfs.c"), "-ldl"], check=True)
    return so


def key_rows(db):
    conn = sqlite3.connect("file:%s?mode=ro" % db, uri=True, timeout=10)
    try:
        return conn.execute("SELECT count(*) FROM api_keys").fetchone()[0]
    finally:
        conn.close()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--binary", default=DEFAULT_BINARY)
    ap.add_argument("--rounds", type=int, default=10, help="write rounds per fault (default 10)")
    ap.add_argument("--expect-violations", action="store_true",
                    help="negative control (the ack-before-commit build): exit 0 only if false "
                         "acknowledgements (D6_false_ack) were found")
    args = ap.parse_args()
    binary = os.path.abspath(args.binary)
    if not os.access(binary, os.X_OK):
        print("io_faults: no executable at %s (cargo build --release first)" % binary, file=sys.stderr)
        return 2
    tmp = tempfile.mkdtemp(prefix="apikeyd-io-")
    ctl = os.path.join(tmp, "ctl")
    os.mkdir(ctl)
    db = os.path.join(tmp, "keys.db")
    f = Findings()
    server = None
    started = time.monotonic()
    try:
        so = build_library(tmp)
        server = Server(binary, db, tmp, env={"LD_PRELOAD": so, "FAULTFS_DIR": ctl, "FAULTFS_PATH": db})
        server.start()
        store = Store(server.port, server.root_key, f)
        status, body = store.call("application", "POST", "/api/v1/applications", {"name": "io"}, store.root_header())
        if status != 201:
            raise HarnessError("could not create an application: %s %r" % (status, body))
        store.app = body["id"]
        unknown = unknown_keys(binary, 5)
        for _ in range(args.rounds):
            write_round(store, "baseline", must_fail=False)
        if f.violations or not store.keys:
            raise HarnessError("writes fail without any fault: %r" % f.notes)
        store.check_reads("baseline", unknown, allow_5xx=False)

        for fault in ("sync", "write"):
            control = os.path.join(ctl, "fail-" + fault)
            open(control, "w").close()
            for _ in range(args.rounds):
                write_round(store, "fail-" + fault, must_fail=True)
            store.check_reads("fail-" + fault, unknown, allow_5xx=False)
            if not server.alive():
                raise HarnessError("server died under fail-%s" % fault)
            os.remove(control)
            phase = "after fail-" + fault
            for _ in range(args.rounds):
                write_round(store, phase, must_fail=False)
            if not any(k.startswith(phase + ":") and k.endswith(" 200") for k in f.counts):
                f.violation("D6_no_recovery", "%s: no write succeeded" % phase)
            store.check_reads(phase, unknown, allow_5xx=False)

        control = os.path.join(ctl, "fail-read")
        open(control, "w").close()
        store.check_reads("fail-read", unknown, allow_5xx=True)
        for _ in range(args.rounds):
            write_round(store, "fail-read", must_fail=False)
        store.check_reads("fail-read", unknown, allow_5xx=True)
        if not server.alive():
            raise HarnessError("server died under fail-read")
        os.remove(control)
        store.check_reads("after fail-read", unknown, allow_5xx=False)

        store.client.close()
        server.kill()
        server = Server(binary, db, tmp)
        server.start()
        check_db(db, f, "after kill -9 and restart")
        rows = key_rows(db)
        store.client = Client(server.port, timeout=10)
        store.check_reads("after kill -9 and restart", unknown, allow_5xx=False)
        store.client.close()
        server.stop()
    except HarnessError as e:
        print("io_faults: %s" % e, file=sys.stderr)
        return 2
    finally:
        if server is not None:
            server.kill()

    print("io faults: EIO from fsync, pwrite64, pread64 on the database files (LD_PRELOAD %s)"
          % os.path.join("scripts", "crash", "faultfs.c"))
    phases = {}
    for name, n in f.counts.items():  # in the order first seen
        phase, what = name.split(": ", 1)
        phases.setdefault(phase, []).append("%s=%d" % (what, n))
    for phase, counts in phases.items():
        print("  %s: %s" % (phase, ", ".join(counts)))
    acked = len(store.keys) + store.app_keys
    print("  acknowledged keys=%d (native and shard: %s; applications: %d); elapsed %.1fs"
          % (acked, ", ".join("%s=%d" % (s, sum(1 for k in store.keys if k["state"] == s))
                              for s in ("active", "revoked", "deleted")), store.app_keys, time.monotonic() - started))
    # Allowed either way (a 5xx is not an acknowledgement), but worth knowing: after an
    # fsync failed, the WAL may hold the unsynced transaction until a later write overwrites it.
    print("  key rows after restart=%d: the root key, the acknowledged keys, and %d created by a"
          " write answered 5xx" % (rows, rows - acked - 1))
    nviol = sum(f.violations.values())
    print("  violations=%d (%s)" % (nviol, ", ".join("%s=%d" % kv for kv in sorted(f.violations.items())) or "none"))
    for note in f.notes:
        print("    " + note)
    if nviol == 0 or args.expect_violations:
        shutil.rmtree(tmp, ignore_errors=True)
    else:
        print("  kept %s" % tmp)
    if args.expect_violations:
        found = f.violations.get("D6_false_ack", 0)
        print("RESULT negative control %s: %d false acknowledgements detected"
              % ("OK" if found else "FAILED", found))
        return 0 if found else 1
    print("RESULT %s" % ("OK" if nviol == 0 else "VIOLATIONS"))
    return 0 if nviol == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
