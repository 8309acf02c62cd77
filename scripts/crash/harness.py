#!/usr/bin/env python3
"""Crash-consistency harness for apikeyd (docs/RELIABILITY.md, promises D1-D4 and D7).

Starts the real binary on a temporary database, runs concurrent clients doing creates
(native, shard, applications and clients families), revokes (native by id, applications
family, and `apikeyd keys revoke` in another process on the same file) and deletes (shard by
value, clients family one by one and in bulk), SIGKILLs the server by PID at a random
moment, restarts it on the same database and checks what survived against what the
clients saw acknowledged:

  D1  every create answered 2xx still verifies VALID, unless a later revoke/delete
      was acknowledged (or an indeterminate one turned out to have happened);
  D2  once a revoke answered 2xx the key never verifies VALID again (checked at once,
      during the run, on a fresh connection, and after every restart);
  D3  the same for deletes;
  D4  PRAGMA integrity_check is ok after every crash, and the audit log matches the keys
      (every key has one 'create' row, every revoked/deleted key its 'revoke'/'delete'
      row, no 'revoke'/'delete' row for a change that is not there) and the applications
      (one 'create_application' row each, naming no key);
  D7  a retried revoke answers 200 again, a retried delete 404, and no change is audited
      twice.

Some native keys are created with an expiry a few seconds ahead: once it has passed they
must verify EXPIRED (never VALID), before and after crashes. Some keys of every family are
logged in with (POST /api/clients/login); the session JWT must pass GET /auth exactly while
its key would verify VALID, and fail from the request after its key's revoke or delete was
acknowledged, or after its key expired. Checks within 0.1 s of an expiry are skipped.

A request whose connection failed after it was sent is "indeterminate": it is neither
acknowledged nor refused, and its key's fate is learnt from the database after restart.
Requests that could not even connect were never sent and are not counted.

Python 3 standard library only. Exit status: 0 when no violation was found (or, with
--expect-violations, when at least one was: the negative control), 1 otherwise, 2 when
the harness itself could not run.
"""

import argparse
import calendar
import collections
import hashlib
import http.client
import json
import os
import random
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time

sys.dont_write_bytecode = True  # powerfs is imported from here: no __pycache__ left in scripts/crash

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
DEFAULT_BINARY = os.path.join(REPO, "target", "release", "apikeyd")
NEVER = "0001-01-01T00:00:00Z"

# Environment for every server start: quiet logs, and a failure budget large enough that
# verifying thousands of revoked keys from 127.0.0.1 is never answered RATE_LIMITED.
SERVER_ENV = {
    "RUST_LOG": "warn",
    "APIKEYD_AUTH_FAILURE_BURST": "1000000",
    "APIKEYD_AUTH_FAILURE_RATE": "1000000",
}


class HarnessError(Exception):
    """The harness could not do its job (not a finding about the server)."""


class NotSent(Exception):
    """The request never left: the connection could not be opened."""


class Indeterminate(Exception):
    """The request was (possibly) sent but no complete response came back."""


# --------------------------------------------------------------------------- server


class Server:
    """One apikeyd process at a time on one database file; stopped only by its PID."""

    def __init__(self, binary, db, logdir, env=None, preexec=None):
        self.binary = binary
        self.preexec = preexec
        self.db = db
        self.logdir = logdir
        self.env = dict(os.environ)
        self.env.update(SERVER_ENV)
        self.env.update(env or {})
        self.proc = None
        self.port = None
        self.root_key = None
        self.starts = 0

    def start(self, timeout=20.0):
        if self.proc is not None:
            raise HarnessError("server already running")
        self.starts += 1
        log_path = os.path.join(self.logdir, "server-%04d.log" % self.starts)
        log = open(log_path, "wb")
        try:
            self.proc = subprocess.Popen(
                [self.binary, "serve", "--db", self.db, "--bind", "127.0.0.1:0"],
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=log, env=self.env,
                preexec_fn=self.preexec,
            )
        finally:
            log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with open(log_path, "r", errors="replace") as f:
                text = f.read()
            m = re.search(r"root key: (sk-\S+)", text)
            if m:
                self.root_key = m.group(1)
            m = re.search(r"listening on 127\.0\.0\.1:(\d+)", text)
            if m:
                self.port = int(m.group(1))
                return log_path
            rc = self.proc.poll()
            if rc is not None:
                self.proc = None
                raise HarnessError("server exited at start (status %s); log %s:\n%s"
                                   % (rc, log_path, text[-2000:]))
            time.sleep(0.02)
        self.kill()
        raise HarnessError("server did not listen within %.0fs; log %s" % (timeout, log_path))

    @property
    def pid(self):
        return self.proc.pid if self.proc else None

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def send_kill(self):
        """SIGKILL by PID without waiting (a process stuck in a frozen file system dies only
        once the file system answers)."""
        if self.proc is not None and self.proc.returncode is None:
            try:
                os.kill(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass

    def kill(self):
        """SIGKILL by PID and reap."""
        if self.proc is None:
            return
        self.send_kill()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            raise HarnessError("server PID %d did not die after SIGKILL" % self.proc.pid)
        self.proc = None

    def stop(self):
        """SIGTERM by PID, SIGKILL after 5 s."""
        if self.proc is None:
            return
        try:
            os.kill(self.proc.pid, signal.SIGTERM)
            self.proc.wait(timeout=5)
            self.proc = None
        except ProcessLookupError:
            self.proc = None
        except subprocess.TimeoutExpired:
            self.kill()


# --------------------------------------------------------------------------- client


class Client:
    """One keep-alive HTTP/1.1 connection. call() raises NotSent or Indeterminate."""

    def __init__(self, port, timeout=5.0):
        self.port = port
        self.timeout = timeout
        self.conn = None
        self.last_headers = {}

    def close(self):
        if self.conn is not None:
            try:
                self.conn.close()
            except OSError:
                pass
            self.conn = None

    def call(self, method, path, body=None, headers=None):
        if self.conn is None:
            conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=self.timeout)
            try:
                conn.connect()
            except OSError as e:
                raise NotSent(e)
            self.conn = conn
        hdrs = {}
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            hdrs["Content-Type"] = "application/json"
        hdrs.update(headers or {})
        try:
            self.conn.request(method, path, body=data, headers=hdrs)
            resp = self.conn.getresponse()
            raw = resp.read()
        except (OSError, http.client.HTTPException) as e:
            self.close()
            raise Indeterminate(e)
        self.last_headers = {k.lower(): v for k, v in resp.getheaders()}
        if resp.will_close:
            self.close()
        try:
            parsed = json.loads(raw) if raw else None
        except ValueError:
            parsed = None
        return resp.status, parsed


def verify_code(client, key):
    """The verify code for `key` (raises NotSent/Indeterminate; 'HTTP_<status>' if not 200)."""
    status, body = client.call("POST", "/api/v1/keys/verify", {"key": key})
    if status != 200 or not isinstance(body, dict):
        return "HTTP_%d" % status
    data = body.get("data") or {}
    code = data.get("code")
    if data.get("valid") is True and code != "VALID":
        return "VALID_BUT_" + str(code)
    return code


def session_status(client, jwt):
    """GET /auth with a session JWT: 200 while its key is good for "/", 401 after."""
    status, _ = client.call("GET", "/auth?path=/", None, {"Authorization": "Bearer " + jwt})
    return status


def rfc3339(epoch):
    ms = int(round(epoch * 1000))
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ms // 1000)) + ".%03dZ" % (ms % 1000)


def parse_rfc3339(text):
    """Epoch seconds of the server's own "YYYY-MM-DDTHH:MM:SS.mmmZ"."""
    whole, frac = text.rstrip("Z").split(".")
    return calendar.timegm(time.strptime(whole, "%Y-%m-%dT%H:%M:%S")) + int(frac) / 1000.0


def expected_code(state, expires, t0, t1):
    """What verify must say for a key in `state` that expires at `expires` (epoch seconds, or
    None), asked between t0 and t1; None when the call straddles the expiry."""
    want = VERIFY_EXPECT.get(state)
    if want != "VALID" or expires is None:
        return want
    if t0 >= expires + EXPIRY_MARGIN:
        return "EXPIRED"
    if t1 <= expires - EXPIRY_MARGIN:
        return "VALID"
    return None


def key_hash(text):
    return hashlib.sha256(text.encode()).digest()


# --------------------------------------------------------------------------- model


class Key:
    __slots__ = ("text", "hash", "id", "uuid", "family", "app", "state", "touched", "flagged",
                 "expires", "jwt", "jwt_expires", "owner", "rotated")

    def __init__(self, text, family, id_=None, uuid=None, app=None, expires=None):
        self.text = text
        self.expires = expires  # epoch seconds, or None for never
        self.jwt = None         # a session JWT minted from this key, if one was
        self.jwt_expires = None  # the expires_at its login advertised, epoch seconds
        self.owner = None        # the owner an acknowledged update set ("?" after an indeterminate one)
        self.rotated = False     # an acknowledged rotation replaced it (it works until its new expiry)
        self.hash = key_hash(text)
        self.id = id_
        self.uuid = uuid
        self.family = family
        self.app = app
        # active | disabled | revoked | deleted (acknowledged, or learnt from the database)
        # | maybe_revoked | maybe_deleted | maybe_disabled | maybe_enabled (indeterminate)
        # | busy (in flight)
        self.state = "active"
        self.touched = True
        # Set once a violation has been reported for this key: it is reported once only and
        # no longer relied on (a lost key would otherwise be reported after every restart).
        self.flagged = False


FAMILIES = ("native", "shard", "app", "clients")
# Which families each mutation can target (what identifier the create response gave us).
TARGETS = {
    "revoke_native": ("native", "shard"),      # DELETE /api/v1/keys/{id}: needs the numeric id
    "revoke_cli": ("native", "shard"),         # `apikeyd keys revoke ID` in another process
    "revoke_app": ("app",),                    # DELETE /api/v1/applications/{app}/api-keys/{uuid}
    "delete_shard": FAMILIES,                  # DELETE /api-key?value=
    "delete_clients": FAMILIES,                # DELETE /api/clients/api-keys/{uuid}
    "delete_bulk": FAMILIES,                   # DELETE /api/clients/api-keys/bulk, two at once
    # The lifecycle calls (PATCH /api/v1/keys/{id}, POST .../rotate), on keys with an id.
    "disable": ("native", "shard"),
    "update": ("native", "shard"),
    "rotate": ("native", "shard"),
    "enable": ("disabled",),                   # a key an acknowledged disable turned off
}
LIFECYCLE = ("disable", "enable", "update", "rotate")
# A rotation's grace, seconds: the old key then verifies EXPIRED, checked like an expiry.
GRACE_RANGE = (0.5, 3.0)
# Chance that an acknowledged key is logged in with at once (its JWT is then checked too).
LOGIN_PROB = 0.2
# Expiry of a create_expiring key, seconds ahead; checks this close to an expiry are skipped.
EXPIRY_RANGE = (0.3, 3.0)
EXPIRY_MARGIN = 0.1
OPS = [  # (op, weight)
    ("create_native", 14), ("create_shard", 8), ("create_app", 10), ("create_clients", 10),
    ("create_application", 1), ("create_expiring", 4),
    ("revoke_native", 12), ("revoke_app", 8), ("delete_shard", 10), ("delete_clients", 10),
    ("revoke_cli", 2), ("delete_bulk", 4),
    ("disable", 4), ("enable", 3), ("update", 4), ("rotate", 3),
]


class Model:
    """What clients saw acknowledged. All access under self.lock."""

    def __init__(self):
        self.lock = threading.Lock()
        self.keys = {}                      # hash -> Key
        self.pool = {f: [] for f in FAMILIES}   # active, idle keys per family
        self.pool["disabled"] = []          # disabled, idle keys (for enable)
        self.apps = []                      # acknowledged application uuids

    def add(self, key):
        with self.lock:
            self.keys[key.hash] = key
            self.pool[key.family].append(key)

    def take(self, families, rng):
        with self.lock:
            choices = [f for f in families if self.pool[f]]
            if not choices:
                return None
            lst = self.pool[rng.choice(choices)]
            i = rng.randrange(len(lst))
            lst[i], lst[-1] = lst[-1], lst[i]
            key = lst.pop()
            key.state = "busy"
            key.touched = True
            return key

    def settle(self, key, state):
        with self.lock:
            key.state = state
            key.touched = True
            # A rotated key stays out of the pools: a second rotation would rotate its
            # successor, which the model does not follow.
            if key.flagged or key.rotated:
                return
            if state == "active":
                self.pool[key.family].append(key)
            elif state == "disabled":
                self.pool["disabled"].append(key)

    def flag(self, key):
        """Caller holds self.lock."""
        if not key.flagged:
            key.flagged = True
            if key.state in ("active", "disabled"):
                try:
                    self.pool[key.family if key.state == "active" else "disabled"].remove(key)
                except ValueError:
                    pass


class Stats:
    def __init__(self):
        self.lock = threading.Lock()
        self.acked = collections.Counter()
        self.indeterminate = collections.Counter()
        self.refused = collections.Counter()       # (op, status) of non-2xx answers
        self.violations = collections.Counter()
        self.notes = collections.defaultdict(list)   # kind -> first few details
        self.acked_last_50ms = 0
        self.ack_times = []
        self.retries = collections.Counter()
        self.inrun_verified = 0
        self.sessions = 0          # logins acknowledged
        self.session_checks = 0    # GET /auth calls made with a session JWT
        self.expired_checks = 0    # verifies of keys whose expiry had passed
        self.boundary_skips = 0    # checks skipped for being within EXPIRY_MARGIN of an expiry
        self.integrity_ok = 0      # restarts after which PRAGMA integrity_check said ok

    def violation(self, kind, detail):
        with self.lock:
            self.violations[kind] += 1
            if len(self.notes[kind]) < 3:
                self.notes[kind].append(detail)

    def add(self, other):
        self.acked.update(other.acked)
        self.indeterminate.update(other.indeterminate)
        self.refused.update(other.refused)
        self.violations.update(other.violations)
        self.retries.update(other.retries)
        self.inrun_verified += other.inrun_verified
        self.sessions += other.sessions
        self.session_checks += other.session_checks
        self.expired_checks += other.expired_checks
        self.boundary_skips += other.boundary_skips
        self.integrity_ok += other.integrity_ok
        self.acked_last_50ms += other.acked_last_50ms
        for kind, details in other.notes.items():
            self.notes[kind].extend(details[: max(0, 3 - len(self.notes[kind]))])


# --------------------------------------------------------------------------- load


class Load:
    """One cycle's client threads against one server incarnation."""

    def __init__(self, port, root, jwt, model, stats, seed, threads, retry_prob, binary, db, env=None):
        self.binary = binary
        self.db = db
        self.env = env
        # CLI revokes running now, so that a power cut can kill them with the server.
        self.children = set()
        self.children_lock = threading.Lock()
        self.port = port
        self.root = root
        self.jwt = jwt
        self.model = model
        self.stats = stats
        self.seed = seed
        self.threads = threads
        self.retry_prob = retry_prob
        self.killing = threading.Event()
        self.ops, self.weights = zip(*OPS)

    def bearer(self):
        return {"Authorization": "Bearer " + self.root}

    def run_thread(self, wid, deadline):
        rng = random.Random(self.seed * 7919 + wid)
        client = Client(self.port)
        try:
            while not self.killing.is_set() and time.monotonic() < deadline:
                op = rng.choices(self.ops, self.weights)[0]
                try:
                    self.do(op, client, rng)
                except NotSent:
                    if self.killing.is_set():
                        break
                    time.sleep(0.005)
        finally:
            client.close()

    def acked(self, op):
        now = time.monotonic()
        with self.stats.lock:
            self.stats.acked[op] += 1
            self.stats.ack_times.append(now)

    def indeterminate(self, op):
        with self.stats.lock:
            self.stats.indeterminate[op] += 1

    def refused(self, op, status):
        with self.stats.lock:
            self.stats.refused[(op, status)] += 1

    def do(self, op, client, rng):
        if op.startswith("create"):
            return self.create(op, client, rng)
        keys = [self.model.take(TARGETS[op], rng)]
        if keys[0] is None:  # nothing to mutate yet: create instead
            return self.create("create_native", client, rng)
        if op in LIFECYCLE:
            return self.lifecycle(op, keys[0], client, rng)
        if op == "delete_bulk":
            second = self.model.take(TARGETS[op], rng)
            if second is not None:
                keys.append(second)
        try:
            self.mutate(op, keys, client, rng)
        except NotSent:
            for key in keys:
                self.model.settle(key, "active")
            raise
        except BaseException:
            # Should not happen; leave the keys out of every expectation they could break.
            for key in keys:
                self.model.settle(key, "maybe_" + ("revoked" if op.startswith("revoke") else "deleted"))
            raise

    def create(self, op, client, rng):
        m = self.model
        expires = None
        if op == "create_native":
            req = ("POST", "/api/v1/keys", {"title": "crash"}, self.bearer())
        elif op == "create_expiring":
            expires = time.time() + rng.uniform(*EXPIRY_RANGE)
            req = ("POST", "/api/v1/keys", {"title": "crash", "expires_at": rfc3339(expires)}, self.bearer())
            # The server keeps milliseconds: compare against exactly what it stored.
            expires = int(round(expires * 1000)) / 1000.0
        elif op == "create_shard":
            req = ("POST", "/api-key", {"permissions": 3, "path": "/", "expiration_date": NEVER},
                   {"x-user-api-key": self.root})
        elif op == "create_app":
            with m.lock:
                app = rng.choice(m.apps) if m.apps else None
            if app is None:
                op = "create_application"
            else:
                req = ("POST", "/api/v1/applications/%s/api-keys" % app, {}, self.bearer())
        elif op == "create_clients":
            req = ("POST", "/api/clients/api-keys", {}, {"Authorization": "Bearer " + self.jwt})
        if op == "create_application":
            req = ("POST", "/api/v1/applications", {"name": "crash"}, self.bearer())
        try:
            status, body = client.call(*req)
        except Indeterminate:
            self.indeterminate(op)
            return
        if not 200 <= status < 300:
            self.refused(op, status)
            return
        try:
            if op in ("create_native", "create_expiring"):
                d = body["data"]
                key = Key(d["api_key"], "native", id_=d["id"], uuid=d["uuid"], expires=expires)
            elif op == "create_shard":
                key = Key(body["value"], "shard", id_=body["id"], uuid=body["uuid"])
            elif op == "create_app":
                key = Key(body["api_key"], "app", uuid=body["id"], app=app)
            elif op == "create_clients":
                d = body["data"]
                key = Key(d["api_key"], "clients", uuid=d["id"])
            else:
                key = None
                with m.lock:
                    m.apps.append(body["id"])
        except (KeyError, TypeError) as e:
            raise HarnessError("unexpected %s answer %s: %r (%s)" % (op, status, body, e))
        self.acked(op)
        if key is not None:
            if rng.random() < LOGIN_PROB:
                self.login(key, client)
            m.add(key)

    def lifecycle(self, op, key, client, rng):
        """PATCH (disable, enable, update) or rotate `key` as the root key; an acknowledged
        change is checked at once on a fresh connection, and in the database after a crash."""
        back = "disabled" if op == "enable" else "active"
        if key.expires is not None:
            # Expiring keys are left to the expiry checks; rotating one would race its expiry.
            self.model.settle(key, back)
            return self.create("create_native", client, rng)
        path = "/api/v1/keys/%d" % key.id
        owner = None
        if op == "rotate":
            grace = rng.uniform(*GRACE_RANGE)
            req = ("POST", path + "/rotate", {"grace_seconds": int(grace) + 1}, self.bearer())
        elif op == "update":
            owner = "owner-%d" % rng.randrange(1 << 30)
            req = ("PATCH", path, {"owner": owner}, self.bearer())
        else:
            req = ("PATCH", path, {"enabled": op == "enable"}, self.bearer())
        maybe = {"disable": "maybe_disabled", "enable": "maybe_enabled"}.get(op, back)
        try:
            status, body = client.call(*req)
        except NotSent:
            self.model.settle(key, back)
            raise
        except Indeterminate:
            self.indeterminate(op)
            self.unknown_outcome(op, key, maybe)
            return
        if not 200 <= status < 300:
            self.refused(op, status)
            if status < 500:
                self.stats.violation("STATE_refused_mutation", "%s of id=%s -> %d" % (op, key.id, status))
            self.unknown_outcome(op, key, maybe)
            return
        self.acked(op)
        successor = None
        if op == "rotate":
            d = body["data"]
            successor = Key(d["api_key"], "native", id_=d["id"], uuid=d["uuid"])
            # The old key now ends at the server's now + grace: read exactly when.
            reader = Client(self.port)
            try:
                _, got = reader.call("GET", path, None, self.bearer())
                ends = got["data"]["expires_at"]
                with self.model.lock:
                    key.rotated = True
                    key.expires = parse_rfc3339(ends) if ends else None
            except (NotSent, Indeterminate, KeyError, TypeError):
                with self.model.lock:
                    key.rotated = True
                    self.model.flag(key)
            finally:
                reader.close()
            self.model.add(successor)
        if op == "update":
            with self.model.lock:
                key.owner = owner
        state = "disabled" if op == "disable" else "active"
        # At once, on a fresh connection: a disable holds from the next request, an enable too.
        # The key goes back to its pool only afterwards, so no other thread changes it first.
        if op in ("disable", "enable"):
            fresh = Client(self.port)
            try:
                code = verify_code(fresh, key.text)
                want = "DISABLED" if op == "disable" else "VALID"
                with self.stats.lock:
                    self.stats.inrun_verified += 1
                if code != want:
                    self.stats.violation("L1_switch_inrun", "%s acknowledged for id=%s, then verify said %s"
                                         % (op, key.id, code))
                    with self.model.lock:
                        self.model.flag(key)
            except (NotSent, Indeterminate):
                pass
            finally:
                fresh.close()
        self.model.settle(key, state)

    def unknown_outcome(self, op, key, maybe):
        """A lifecycle call whose effect is unknown: its owner is no longer relied on; a rotated
        key's expiry may have changed and its successor is unknown, so it is not relied on."""
        with self.model.lock:
            if op == "update":
                key.owner = "?"
            if op == "rotate":
                self.model.flag(key)
        self.model.settle(key, maybe)

    def login(self, key, client):
        """Mints a session from `key` before anyone can revoke it. A login that fails (the
        server was killed, or the key has just expired) leaves the key without a session."""
        try:
            status, body = client.call("POST", "/api/clients/login", {"api_key": key.text})
        except (NotSent, Indeterminate):
            return
        if status == 200:
            key.jwt = body["data"]["token"]
            # A session ends at the second boundary at or before its key's expiry (JWT `exp`
            # is whole seconds): it may die up to a second before its key, never after.
            key.jwt_expires = parse_rfc3339(body["data"]["expires_at"])
            with self.stats.lock:
                self.stats.sessions += 1

    def cli_revoke(self, key):
        """`apikeyd keys revoke ID` on the database file, as an operator would while the
        server runs: (status, body) like an HTTP answer, 200 once the command succeeded."""
        with self.children_lock:
            if self.killing.is_set():
                raise NotSent()
            proc = subprocess.Popen([self.binary, "keys", "revoke", str(key.id), "--db", self.db],
                                    stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                    text=True, env=self.env)
            self.children.add(proc)
        try:
            _, err = proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.communicate()
            raise Indeterminate()
        finally:
            with self.children_lock:
                self.children.discard(proc)
        return (200 if proc.returncode == 0 else 500), err

    def kill_children(self):
        """SIGKILL every CLI revoke still running (power mode: the power is off for them too)."""
        with self.children_lock:
            for proc in self.children:
                if proc.poll() is None:
                    proc.kill()

    def mutate(self, op, keys, client, rng):
        bearer = self.bearer()
        key = keys[0]
        if op == "revoke_native":
            req = ("DELETE", "/api/v1/keys/%d" % key.id, None, bearer)
            done, retry_expect = "revoked", 200
        elif op == "revoke_cli":
            req = None
            done, retry_expect = "revoked", None
        elif op == "revoke_app":
            req = ("DELETE", "/api/v1/applications/%s/api-keys/%s" % (key.app, key.uuid), None, bearer)
            done, retry_expect = "revoked", 200
        elif op == "delete_shard":
            req = ("DELETE", "/api-key?value=" + key.text, None, {"x-user-api-key": self.root})
            done, retry_expect = "deleted", 404
        elif op == "delete_bulk":
            req = ("DELETE", "/api/clients/api-keys/bulk", {"api_key_ids": [k.uuid for k in keys]},
                   {"Authorization": "Bearer " + self.jwt})
            done, retry_expect = "deleted", 404
        else:  # delete_clients
            req = ("DELETE", "/api/clients/api-keys/" + key.uuid, None, {"Authorization": "Bearer " + self.jwt})
            done, retry_expect = "deleted", 404
        names = ", ".join("id=%s uuid=%s" % (k.id, k.uuid) for k in keys)
        try:
            status, _ = self.cli_revoke(key) if req is None else client.call(*req)
        except Indeterminate:
            self.indeterminate(op)
            for k in keys:
                self.model.settle(k, "maybe_" + done)
            return
        if not 200 <= status < 300:
            self.refused(op, status)
            if status < 500:
                # A definite refusal of a change we were entitled to make: the keys should
                # still be what we think they are; say so, and stop relying on them.
                self.stats.violation("STATE_refused_mutation", "%s of %s -> %d" % (op, names, status))
            # Not acknowledged; whether it happened is learnt after the next restart.
            for k in keys:
                self.model.settle(k, "maybe_" + done)
            return
        self.acked(op)
        for k in keys:
            self.model.settle(k, done)
        # D2/D3 during the run: verify at once on a fresh connection (for a CLI revoke, the
        # server learns of it only through the database file).
        fresh = Client(self.port)
        try:
            for k in keys:
                code = verify_code(fresh, k.text)
                with self.stats.lock:
                    self.stats.inrun_verified += 1
                want = "REVOKED" if done == "revoked" else "DELETED"
                if code != want:
                    kind = ("D2_revoked_key_valid_inrun" if done == "revoked" else "D3_deleted_key_valid_inrun") \
                        if code == "VALID" else "STATE_inrun_code"
                    self.stats.violation(kind, "%s acknowledged for key id=%s uuid=%s, then verify said %s"
                                         % (op, k.id, k.uuid, code))
                    with self.model.lock:
                        self.model.flag(k)
                elif k.jwt is not None:
                    status = session_status(fresh, k.jwt)
                    with self.stats.lock:
                        self.stats.session_checks += 1
                    if status != 401:
                        kind = "D2_revoked_key_session_inrun" if done == "revoked" else "D3_deleted_key_session_inrun"
                        self.stats.violation(kind, "%s acknowledged for key id=%s uuid=%s, then its session got %d"
                                             % (op, k.id, k.uuid, status))
                        with self.model.lock:
                            self.model.flag(k)
        except (NotSent, Indeterminate):
            pass
        finally:
            fresh.close()
        # D7: a retry of an acknowledged revoke/delete.
        if req is not None and rng.random() < self.retry_prob:
            try:
                status, _ = client.call(*req)
            except (NotSent, Indeterminate):
                return
            with self.stats.lock:
                self.stats.retries[op] += 1
            if status != retry_expect and status < 500:
                self.stats.violation("D7_retry_status", "retried %s of %s -> %d, expected %d"
                                     % (op, names, status, retry_expect))


# --------------------------------------------------------------------------- checks

AUDIT_CHECKS = [
    ("D4_audit_missing_create",
     "SELECT k.id FROM api_keys k WHERE (SELECT count(*) FROM audit_log a "
     "WHERE a.key_id = k.id AND a.action = 'create') <> 1"),
    ("D4_audit_missing_revoke",
     "SELECT k.id FROM api_keys k WHERE k.status = 'revoked' AND NOT EXISTS "
     "(SELECT 1 FROM audit_log a WHERE a.key_id = k.id AND a.action = 'revoke')"),
    ("D4_audit_missing_delete",
     "SELECT k.id FROM api_keys k WHERE k.status = 'deleted' AND NOT EXISTS "
     "(SELECT 1 FROM audit_log a WHERE a.key_id = k.id AND a.action = 'delete')"),
    ("D4_audit_unreflected_revoke",
     "SELECT k.id FROM api_keys k WHERE (k.status = 'active' OR k.revoked_at IS NULL) AND EXISTS "
     "(SELECT 1 FROM audit_log a WHERE a.key_id = k.id AND a.action = 'revoke')"),
    ("D4_audit_unreflected_delete",
     "SELECT k.id FROM api_keys k WHERE (k.status <> 'deleted' OR k.deleted_at IS NULL) AND EXISTS "
     "(SELECT 1 FROM audit_log a WHERE a.key_id = k.id AND a.action = 'delete')"),
    ("D4_status_without_time",
     "SELECT id FROM api_keys WHERE (status = 'revoked' AND revoked_at IS NULL) "
     "OR (status = 'deleted' AND deleted_at IS NULL)"),
    ("D4_audit_missing_application_create",
     "SELECT p.id FROM applications p WHERE (SELECT count(*) FROM audit_log a "
     "WHERE a.application_id = p.id AND a.action = 'create_application') <> 1"),
    # Since schema v3 an application's creation is an audit_log row without a key: it must
    # name an application instead. Every other row names a key.
    ("D4_audit_orphan",
     "SELECT a.id FROM audit_log a LEFT JOIN api_keys k ON k.id = a.key_id "
     "LEFT JOIN applications p ON p.id = a.application_id "
     "WHERE CASE WHEN a.action = 'create_application' THEN p.id IS NULL OR a.key_id IS NOT NULL "
     "ELSE k.id IS NULL END"),
    ("D7_duplicate_audit",
     "SELECT key_id FROM audit_log WHERE action IN ('revoke', 'delete') "
     "GROUP BY key_id, action HAVING count(*) > 1"),
]

# model state -> (db status -> verdict). Verdict: None = as expected, "=state" = resolves
# an indeterminate key to that state, anything else = violation kind.
DB_EXPECT = {
    "active": {"active": None, "revoked": "STATE_unexplained_change", "deleted": "STATE_unexplained_change",
               None: "D1_lost_create"},
    "revoked": {"revoked": None, "active": "D2_lost_revoke", "deleted": "STATE_unexplained_change",
                None: "D1_lost_create"},
    "deleted": {"deleted": None, "active": "D3_lost_delete", "revoked": "D3_lost_delete",
                None: "D1_lost_create"},
    "maybe_revoked": {"active": "=active", "revoked": "=revoked", "deleted": "STATE_unexplained_change",
                      None: "D1_lost_create"},
    "maybe_deleted": {"active": "=active", "deleted": "=deleted", "revoked": "STATE_unexplained_change",
                      None: "D1_lost_create"},
}
VERIFY_EXPECT = {"active": "VALID", "revoked": "REVOKED", "deleted": "DELETED", "disabled": "DISABLED"}
# (An acknowledged enable the database lost also shows here, as an active key stored disabled.)
DB_EXPECT["active"]["disabled"] = "STATE_unexplained_change"
DB_EXPECT["maybe_revoked"]["disabled"] = "STATE_unexplained_change"
DB_EXPECT["maybe_deleted"]["disabled"] = "STATE_unexplained_change"
DB_EXPECT["disabled"] = {"disabled": None, "active": "L1_lost_disable", "revoked": "STATE_unexplained_change",
                         "deleted": "STATE_unexplained_change", None: "D1_lost_create"}
DB_EXPECT["maybe_disabled"] = {"active": "=active", "disabled": "=disabled", "revoked": "STATE_unexplained_change",
                               "deleted": "STATE_unexplained_change", None: "D1_lost_create"}
DB_EXPECT["maybe_enabled"] = DB_EXPECT["maybe_disabled"]


def check_database(db, model, stats):
    """D4 and the model against the recovered database (read-only, server running, no load)."""
    conn = sqlite3.connect("file:%s?mode=ro" % db, uri=True, timeout=10)
    try:
        res = [r[0] for r in conn.execute("PRAGMA integrity_check").fetchall()]
        if res != ["ok"]:
            stats.violation("D4_integrity", "; ".join(map(str, res[:5])))
        else:
            with stats.lock:
                stats.integrity_ok += 1
        fk = conn.execute("PRAGMA foreign_key_check").fetchall()
        if fk:
            stats.violation("D4_foreign_keys", repr(fk[:5]))
        for kind, sql in AUDIT_CHECKS:
            rows = conn.execute(sql).fetchall()
            for r in rows[:20]:
                stats.violation(kind, "row id %s" % (r[0],))
            if len(rows) > 20:
                with stats.lock:
                    stats.violations[kind] += len(rows) - 20
        rows = conn.execute("SELECT key_hash, CASE WHEN status = 'active' AND enabled = 0 THEN 'disabled' "
                            "ELSE status END, owner, rotated_to FROM api_keys").fetchall()
        status_of = {r[0]: r[1] for r in rows}
        detail_of = {r[0]: (r[2], r[3]) for r in rows}
        apps = {r[0] for r in conn.execute("SELECT uuid FROM applications")}
    finally:
        conn.close()
    resolved = collections.Counter()
    with model.lock:
        for a in [a for a in model.apps if a not in apps]:
            stats.violation("D1_lost_application", a)
            model.apps.remove(a)  # reported once; no more keys are made in it
        for key in model.keys.values():
            if key.flagged:
                continue
            got = status_of.get(key.hash)
            owner, rotated_to = detail_of.get(key.hash, (None, None))
            if got is not None and key.owner not in (None, "?") and owner != key.owner:
                stats.violation("L1_lost_update", "key id=%s: owner %r acknowledged, %r stored" % (key.id, key.owner, owner))
                model.flag(key)
                continue
            if got is not None and key.rotated and rotated_to is None:
                stats.violation("L1_lost_rotation", "key id=%s: rotation acknowledged, no successor stored" % key.id)
                model.flag(key)
                continue
            verdict = DB_EXPECT[key.state].get(got, "STATE_unexplained_change")
            if verdict is None:
                continue
            if verdict.startswith("="):
                new = verdict[1:]
                resolved["%s->%s" % (key.state, new)] += 1
                key.state = new
                key.touched = True
                if new == "active" and not key.rotated:
                    model.pool[key.family].append(key)
                elif new == "disabled" and not key.rotated:
                    model.pool["disabled"].append(key)
                continue
            stats.violation(verdict, "key id=%s uuid=%s family=%s model=%s db=%s"
                            % (key.id, key.uuid, key.family, key.state, got))
            model.flag(key)
    return resolved


def with_retries(call, final, tries=3):
    """`call()` until `final(result)` holds, at most `tries` times, 50 ms apart. A connection
    error is the result "ERROR_<kind>"; the last result is returned either way."""
    result = None
    for _ in range(tries):
        try:
            result = call()
            if final(result):
                return result
        except (NotSent, Indeterminate) as e:
            result = "ERROR_%s" % type(e).__name__
        time.sleep(0.05)
    return result


def check_verify(port, keys, model, stats, threads=4):
    """Verify each key over HTTP and compare with the model's state."""
    work = list(keys)
    lock = threading.Lock()
    done = [0]

    def run():
        client = Client(port)
        try:
            while True:
                with lock:
                    if not work:
                        return
                    key = work.pop()
                with model.lock:
                    state = None if key.flagged else key.state
                if VERIFY_EXPECT.get(state) is None:
                    continue
                t0 = time.time()
                code = with_retries(lambda: verify_code(client, key.text), lambda c: not c.startswith("HTTP_5"))
                want = expected_code(state, key.expires, t0, time.time())
                with lock:
                    done[0] += 1
                if want is None:
                    with stats.lock:
                        stats.boundary_skips += 1
                    continue
                if want == "EXPIRED":
                    with stats.lock:
                        stats.expired_checks += 1
                if code == want:
                    if key.jwt is not None and not check_session(client, key, state, stats):
                        with model.lock:
                            model.flag(key)
                    continue
                if code == "VALID":
                    kind = {"revoked": "D2_revoked_key_valid", "deleted": "D3_deleted_key_valid"}.get(
                        state, "EXP_expired_key_valid")
                elif state == "active" and code == "NOT_FOUND":
                    kind = "D1_lost_create"
                elif code is None or code.startswith(("HTTP_", "ERROR_")):
                    kind = "CHECK_verify_unavailable"
                else:
                    kind = "STATE_verify_code"
                stats.violation(kind, "key id=%s uuid=%s family=%s model=%s want=%s verify=%s"
                                % (key.id, key.uuid, key.family, state, want, code))
                with model.lock:
                    model.flag(key)
        finally:
            client.close()

    ts = [threading.Thread(target=run, daemon=True) for _ in range(threads)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(timeout=300)
        if t.is_alive():
            raise HarnessError("verification thread stuck")
    return done[0]


def check_session(client, key, state, stats):
    """After verify agreed with the model: the key's session must agree too. False (and a
    violation recorded) when it does not."""
    t0 = time.time()
    code = with_retries(lambda: session_status(client, key.jwt), lambda c: c < 500)
    # A rotation after the login ends the key (and its session) at the end of its grace.
    ends = [t for t in (key.jwt_expires, key.expires) if t is not None]
    want = expected_code(state, min(ends) if ends else None, t0, time.time())
    with stats.lock:
        stats.session_checks += 1
        if want is None:
            stats.boundary_skips += 1
            return True
    expect = 200 if want == "VALID" else 401
    if code == expect:
        return True
    if code == 200:
        kind = {"revoked": "D2_revoked_key_session", "deleted": "D3_deleted_key_session"}.get(
            state, "EXP_expired_key_session")
    elif code == 401:
        kind = "D1_lost_session"
    else:
        kind = "CHECK_session_unavailable"
    stats.violation(kind, "key id=%s uuid=%s family=%s model=%s want=%s session=%s"
                    % (key.id, key.uuid, key.family, state, want, code))
    return False


def session(port, root, model, stats, need_app):
    """Per incarnation: a clients-family JWT, and one application to make keys in."""
    client = Client(port)
    try:
        for _ in range(20):
            try:
                status, body = client.call("POST", "/api/clients/login", {"api_key": root})
                if status == 200:
                    jwt = body["data"]["token"]
                    break
            except (NotSent, Indeterminate):
                pass
            time.sleep(0.1)
        else:
            raise HarnessError("login failed")
        if need_app:
            for _ in range(20):
                try:
                    status, body = client.call("POST", "/api/v1/applications", {"name": "crash"},
                                               {"Authorization": "Bearer " + root})
                    if status == 201:
                        with model.lock:
                            model.apps.append(body["id"])
                        break
                except (NotSent, Indeterminate):
                    pass
                time.sleep(0.1)
            else:
                raise HarnessError("could not create an application")
        return jwt
    finally:
        client.close()


# --------------------------------------------------------------------------- power loss

EATMYDATA = "/usr/lib/x86_64-linux-gnu/libeatmydata.so"


class PowerCuts:
    """Power-loss mode: the database directory is a powerfs mount (scripts/crash/powerfs.py).
    Each cycle ends with a power cut instead of a kill: the file system is frozen (at a random
    moment, or inside the N-th fsync of the WAL, or inside the database file's fsync during a
    checkpoint), the server and every CLI revoke are SIGKILLed, one model of what the disk kept
    of the unsynced writes is applied, and the file system is unmounted and mounted again."""

    def __init__(self, tmp, rng, args):
        sys.path.insert(0, HERE)
        import powerfs  # noqa: E402 - next to this file
        self.powerfs = powerfs
        self.rng = rng
        self.models = [m for m in args.models.split(",") if m]
        for m in self.models:
            if m not in powerfs.MODELS:
                raise HarnessError("unknown model %r (have %s)" % (m, ", ".join(powerfs.MODELS)))
        self.fs = powerfs.Mount(tmp, powerfs.ensure_python(), ignore_fsync=args.ignore_fsync)
        self.db = os.path.join(self.fs.mnt, "keys.db")
        wal = args.placed * 2 // 3
        self.schedule = ["random"] * args.cycles + ["wal"] * wal + ["checkpoint"] * (args.placed - wal)
        rng.shuffle(self.schedule)
        self.placed_wal_max = args.placed_wal_max
        self.placed_wait = args.placed_wait
        self.kinds = collections.Counter()        # random / wal / checkpoint
        self.triggered = collections.Counter()    # placed cuts whose fsync was reached
        self.models_used = collections.Counter()
        self.undid = collections.Counter()        # wal / database / entries: cuts that undid some
        self.undone_ops = collections.Counter()   # per file kind: unsynced writes undone
        self.reverted = collections.Counter()     # per file kind: sectors reverted (sectors model)
        self.fsyncs = collections.Counter()       # per file kind, as the file system counted them
        self.entries = collections.Counter()      # entry changes undone, by kind

    def cycles(self):
        return len(self.schedule)

    @staticmethod
    def file_kind(name):
        if name.endswith("-wal"):
            return "wal"
        if name.endswith("-shm"):
            return "shm"
        if name.endswith(".db"):
            return "database"
        if name == ".":
            return "directory"
        return "other"

    def arm(self, cycle):
        """Before the load of `cycle` starts: arms a placed cut. Returns the cut's kind."""
        kind = self.schedule[cycle - 1]
        if kind == "wal":
            self.fs.request(cmd="arm", suffix="keys.db-wal", nth=self.rng.randint(1, self.placed_wal_max))
        elif kind == "checkpoint":
            self.fs.request(cmd="arm", suffix="keys.db", nth=1)
        return kind

    def wait(self, kind, duration):
        """During the load: returns once the power is to go (the file system is frozen then)."""
        if kind == "random":
            time.sleep(duration)
            self.fs.request(cmd="freeze")
            return
        got = self.fs.request(cmd="wait_trigger", timeout=self.placed_wait).get("trigger")
        if got:
            self.triggered[kind] += 1
        else:
            self.fs.request(cmd="freeze")

    def cut(self, server, load):
        """The power goes: kill everything that writes, apply a model, unmount. Returns the
        model's report."""
        load.killing.set()
        server.send_kill()
        load.kill_children()
        model = self.rng.choice(self.models)
        stats = self.fs.request(cmd="stats")
        report = self.fs.request(cmd="cut", model=model, seed=self.rng.randrange(1 << 30))
        if not report.get("ok"):
            raise HarnessError("powerfs cut failed: %s" % report)
        server.kill()  # reaps it: it has died now that the file system answered
        for name, n in stats.get("fsyncs", {}).items():
            self.fsyncs[self.file_kind(name)] += n
        self.models_used[model] += 1
        undid = set()
        for name, f in report["files"].items():
            k = self.file_kind(name)
            undone = f.get("undone_ops") or 0
            reverted = f.get("sectors_reverted") or 0
            self.undone_ops[k] += undone
            self.reverted[k] += reverted
            if undone or reverted or f.get("final_size") != f.get("size"):
                undid.add(k)
        for e in report.get("entries_undone", []):
            self.entries[e.split(" ")[0]] += 1
            undid.add("entries")
        for k in undid:
            self.undid[k] += 1
        return model, report

    def after(self, kind):
        self.kinds[kind] += 1
        self.fs.unmount()

    def summary(self):
        placed = ", ".join("%s=%d (reached %d)" % (k, self.kinds[k], self.triggered[k])
                           for k in ("wal", "checkpoint") if self.kinds[k])
        lines = [
            "  power cuts=%d: at a random moment=%d; placed inside an fsync: %s"
            % (sum(self.kinds.values()), self.kinds["random"], placed or "none"),
            "  models: %s" % fmt_counter(self.models_used),
            "  cuts that undid WAL writes=%d, database-file (checkpoint) writes=%d, -shm writes=%d,"
            " directory entries=%d" % (self.undid["wal"], self.undid["database"], self.undid["shm"],
                                       self.undid["entries"]),
            "  unsynced writes undone: %s; sectors reverted (sectors model): %s; entries undone: %s"
            % (fmt_counter(self.undone_ops), fmt_counter(self.reverted), fmt_counter(self.entries)),
            "  fsyncs seen by the file system: %s" % fmt_counter(self.fsyncs),
        ]
        return lines


# --------------------------------------------------------------------------- main


def fmt_counter(c):
    return ", ".join("%s=%d" % (k, v) for k, v in sorted(c.items())) or "none"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cycles", type=int, default=100)
    ap.add_argument("--binary", default=DEFAULT_BINARY)
    ap.add_argument("--seed", type=int, default=None)
    ap.add_argument("--threads", type=int, default=8, help="concurrent client threads (default 8)")
    ap.add_argument("--min-load", type=float, default=0.3, help="shortest load before a kill, s")
    ap.add_argument("--max-load", type=float, default=1.5, help="longest load before a kill, s")
    ap.add_argument("--sample", type=int, default=100,
                    help="older keys re-verified over HTTP after each restart (all at the end)")
    ap.add_argument("--retry-prob", type=float, default=0.25, help="chance to retry an acked revoke/delete")
    ap.add_argument("--expect-violations", action="store_true",
                    help="negative control: exit 0 only if violations were found")
    ap.add_argument("--expect-kind", default="",
                    help="with --expect-violations: only violations whose kind starts with this count "
                         "(e.g. D1_lost_create)")
    ap.add_argument("--power", action="store_true",
                    help="power-loss mode: the database lives on powerfs and every crash is a power cut")
    ap.add_argument("--placed", type=int, default=0,
                    help="power mode: cuts placed inside an fsync, beside the --cycles random ones (two "
                         "thirds inside the N-th WAL fsync, one third inside the database file's fsync "
                         "during a checkpoint)")
    ap.add_argument("--placed-wal-max", type=int, default=40, help="power mode: N is drawn from 1..this")
    ap.add_argument("--placed-wait", type=float, default=10.0,
                    help="power mode: longest wait for a placed cut's fsync, s (then a random cut)")
    ap.add_argument("--models", default="all,prefix,sectors", help="power mode: the cut models to draw from")
    ap.add_argument("--ignore-fsync", action="store_true",
                    help="power mode negative control: powerfs answers fsync but keeps nothing durable")
    ap.add_argument("--eatmydata", action="store_true",
                    help="power mode negative control: server and CLI run under libeatmydata (fsync a no-op)")
    ap.add_argument("--min-acked", type=int, default=0, help="fail unless at least this many acknowledged")
    ap.add_argument("--min-wal-undone", type=int, default=0,
                    help="power mode: fail unless at least this many cuts undid WAL writes")
    ap.add_argument("--min-checkpoint-undone", type=int, default=0,
                    help="power mode: fail unless at least this many cuts undid database-file writes")
    ap.add_argument("--keep", action="store_true", help="keep the temporary directory")
    ap.add_argument("--quiet", action="store_true", help="no per-cycle lines")
    args = ap.parse_args()

    seed = args.seed if args.seed is not None else random.randrange(1 << 30)
    binary = os.path.abspath(args.binary)
    if not os.access(binary, os.X_OK):
        print("harness: no executable at %s (cargo build --release first)" % binary, file=sys.stderr)
        return 2
    rng = random.Random(seed)
    power = None
    server_env = {}
    if args.power:
        why = power_prerequisites(args)
        if why:
            if os.environ.get("APIKEYD_REQUIRE_FUSE", "") not in ("", "0"):
                print("harness: power-loss mode cannot run: %s, but APIKEYD_REQUIRE_FUSE is set" % why,
                      file=sys.stderr)
                return 2
            print("SKIPPED power-loss crash harness: %s (set APIKEYD_REQUIRE_FUSE=1 to fail instead)" % why)
            return 0
        if args.eatmydata:
            server_env["LD_PRELOAD"] = EATMYDATA
    tmp = tempfile.mkdtemp(prefix="apikeyd-power-" if args.power else "apikeyd-crash-")
    db = os.path.join(tmp, "keys.db")
    if args.power:
        try:
            power = PowerCuts(tmp, rng, args)
        except (RuntimeError, OSError) as e:
            print("harness error: %s" % e, file=sys.stderr)
            return 2
        db = power.db
        args.cycles = power.cycles()
    server = Server(binary, db, tmp, env=server_env)
    model = Model()
    total = Stats()
    resolved_total = collections.Counter()
    lossy_crashes = 0
    started = time.monotonic()
    print("crash harness: binary=%s cycles=%d seed=%d threads=%d dir=%s%s"
          % (binary, args.cycles, seed, args.threads, tmp,
             (" power-loss mode (%s; models %s)" % (
                 "fsync ignored by the file system" if args.ignore_fsync else
                 "server and CLI under eatmydata" if args.eatmydata else "fsync honoured", args.models))
             if args.power else ""), flush=True)

    def on_term(signum, _frame):
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, on_term)
    ok_to_clean = False
    try:
        if power:
            power.fs.mount()
        server.start()
        root = server.root_key
        if not root:
            raise HarnessError("no root key printed on first start")
        if power:
            # A power cut may take the whole database with it (the negative controls): the same
            # root key is then installed again, and the harness reports what was lost.
            server.env["APIKEYD_ROOT_KEY"] = root
        verified_total = 0
        for cycle in range(1, args.cycles + 2):
            final = cycle == args.cycles + 1
            cyc = Stats()
            chk = Stats()
            if cycle > 1:
                if power:
                    power.fs.mount()
                server.start()
                # Checks for the crash that ended the previous cycle.
                resolved = check_database(db, model, chk)
                resolved_total.update(resolved)
                with model.lock:
                    everything = list(model.keys.values())
                    touched = [k for k in everything if k.touched]
                    for k in everything:
                        k.touched = False
                if final:
                    to_verify = everything
                else:
                    touched_ids = set(map(id, touched))
                    old = [k for k in everything if id(k) not in touched_ids]
                    to_verify = touched + rng.sample(old, min(args.sample, len(old)))
                    # And every live key with an expiry (few: most are revoked or deleted
                    # soon), so that many are checked again once their expiry has passed.
                    chosen = set(map(id, to_verify))
                    to_verify += [k for k in old if k.expires is not None and k.state == "active"
                                  and id(k) not in chosen]
                verified = check_verify(server.port, to_verify, model, chk)
                verified_total += verified
                total.add(chk)
                if any(k.startswith(("D1_lost", "D2_lost", "D3_lost")) for k in chk.violations):
                    lossy_crashes += 1
                if not args.quiet or final or (chk.violations and not args.expect_violations):
                    print("  after crash %d: integrity/audit/model checked, indeterminate resolved: %s;"
                          " verified %d keys over HTTP; violations=%d%s"
                          % (cycle - 1, fmt_counter(resolved), verified, sum(chk.violations.values()),
                             (" (" + fmt_counter(chk.violations) + ")") if chk.violations else ""),
                          flush=True)
            if final:
                break
            jwt = session(server.port, root, model, cyc, need_app=not model.apps)
            duration = rng.uniform(args.min_load, args.max_load)
            load = Load(server.port, root, jwt, model, cyc, seed * 1000 + cycle, args.threads, args.retry_prob,
                        binary, db, env=server.env)
            cut_kind = power.arm(cycle) if power else None
            deadline = time.monotonic() + duration + 15 + (args.placed_wait if power else 0)
            threads = [threading.Thread(target=load.run_thread, args=(i, deadline), daemon=True)
                       for i in range(args.threads)]
            for t in threads:
                t.start()
            if power:
                power.wait(cut_kind, duration)
            else:
                time.sleep(duration)
            load.killing.set()
            kill_at = time.monotonic()
            if not server.alive():
                raise HarnessError("server died on its own during cycle %d (see %s)" % (cycle, tmp))
            cut_model = None
            if power:
                cut_model, _report = power.cut(server, load)
            else:
                server.kill()
            for t in threads:
                t.join(timeout=20)
                if t.is_alive():
                    raise HarnessError("client thread stuck after kill")
            if power:
                power.after(cut_kind)
            cyc.acked_last_50ms = sum(1 for t in cyc.ack_times if kill_at - t <= 0.05)
            total.add(cyc)
            if not args.quiet or (cyc.violations and not args.expect_violations):
                print("cycle %d/%d%s load=%.2fs acked=%d (%s) in-last-50ms=%d indeterminate=%d (%s) refused=%d"
                      " violations=%d%s"
                      % (cycle, args.cycles, " cut=%s/%s" % (cut_kind, cut_model) if power else "",
                         duration,
                         sum(cyc.acked.values()), fmt_counter(cyc.acked),
                         cyc.acked_last_50ms, sum(cyc.indeterminate.values()), fmt_counter(cyc.indeterminate),
                         sum(cyc.refused.values()), sum(cyc.violations.values()),
                         (" (" + fmt_counter(cyc.violations) + ")") if cyc.violations else ""),
                      flush=True)
        server.stop()
        ok_to_clean = True
    except (HarnessError, OSError, RuntimeError) as e:
        print("harness error: %s: %s" % (type(e).__name__, e), file=sys.stderr)
        server.kill()
        return 2
    finally:
        server.kill()
        if power:
            power.fs.unmount()

    elapsed = time.monotonic() - started
    with model.lock:
        states = collections.Counter(k.state for k in model.keys.values())
    nviol = sum(total.violations.values())
    print("TOTAL cycles=%d seed=%d elapsed=%.1fs" % (args.cycles, seed, elapsed))
    print("  acknowledged=%d (%s)" % (sum(total.acked.values()), fmt_counter(total.acked)))
    print("  acknowledged within 50ms before a kill=%d" % total.acked_last_50ms)
    print("  indeterminate=%d (%s)" % (sum(total.indeterminate.values()), fmt_counter(total.indeterminate)))
    print("  indeterminate resolved after restart: %s" % fmt_counter(resolved_total))
    print("  refused (non-2xx)=%d (%s)" % (sum(total.refused.values()),
                                          ", ".join("%s:%d=%d" % (o, s, n) for (o, s), n in sorted(total.refused.items()))
                                          or "none"))
    print("  in-run verifies after acked revoke/delete=%d; retries of acked revoke/delete=%d (%s)"
          % (total.inrun_verified, sum(total.retries.values()), fmt_counter(total.retries)))
    print("  sessions minted=%d, checked over GET /auth=%d; verifies of expired keys=%d;"
          " checks skipped at an expiry boundary=%d"
          % (total.sessions, total.session_checks, total.expired_checks, total.boundary_skips))
    print("  keys tracked=%d (%s); applications=%d; HTTP verifies after restarts=%d"
          % (len(model.keys), fmt_counter(states), len(model.apps), verified_total))
    print("  crashes after which acknowledged writes were missing: %d of %d" % (lossy_crashes, args.cycles))
    print("  integrity_check ok after %d of %d restarts" % (total.integrity_ok, args.cycles))
    if power:
        for line in power.summary():
            print(line)
    print("  violations=%d (%s)" % (nviol, fmt_counter(total.violations)))
    for kind in sorted(total.notes):
        for detail in total.notes[kind]:
            print("    %s: %s" % (kind, detail))
    if ok_to_clean and not args.keep and (nviol == 0 or args.expect_violations):
        shutil.rmtree(tmp, ignore_errors=True)
    else:
        print("  kept %s" % tmp)
    if args.expect_violations:
        wanted = sum(n for k, n in total.violations.items() if k.startswith(args.expect_kind))
        what = "violations" + (" of kind %s*" % args.expect_kind if args.expect_kind else "")
        if wanted > 0:
            print("RESULT negative control OK: the harness detected %d %s" % (wanted, what))
            return 0
        print("RESULT negative control FAILED: no %s detected" % what)
        return 1
    short = []
    acked = sum(total.acked.values())
    if acked < args.min_acked:
        short.append("acknowledged %d < %d" % (acked, args.min_acked))
    if power and power.undid["wal"] < args.min_wal_undone:
        short.append("cuts that undid WAL writes %d < %d" % (power.undid["wal"], args.min_wal_undone))
    if power and power.undid["database"] < args.min_checkpoint_undone:
        short.append("cuts that undid database-file writes %d < %d"
                     % (power.undid["database"], args.min_checkpoint_undone))
    if short:
        print("RESULT TOO LITTLE EXERCISED: %s" % "; ".join(short))
        return 1
    print("RESULT %s" % ("OK" if nviol == 0 else "VIOLATIONS"))
    return 0 if nviol == 0 else 1


def power_prerequisites(args):
    """None when power-loss mode can run here, else why not."""
    sys.path.insert(0, HERE)
    import powerfs  # noqa: E402 - next to this file
    why = powerfs.prerequisites()
    if why is None and args.eatmydata and not os.path.exists(EATMYDATA):
        why = "%s is missing (Debian package eatmydata)" % EATMYDATA
    return why


if __name__ == "__main__":
    sys.exit(main())
