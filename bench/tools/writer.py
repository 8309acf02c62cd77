"""The writer of the mixed run: while wrk verifies valid keys, creates and revokes keys at
a fixed total rate, and checks each change is seen at once.

One cycle: POST /api/v1/keys (create) -> on a fresh connection, verify the new key
(must be VALID) -> DELETE /api/v1/keys/{id} (revoke) -> as soon as it answered 200, on a
fresh connection, verify the key again (must not be valid: a "wrong answer" if it is; the
code is REVOKED, or RATE_LIMITED once this client address is over the server's failure
budget, which the server only puts in place of a failure code).
Cycles are paced from one schedule shared by WORKERS threads, so the rate holds even if
one request is slow. Stdlib only.

  writer.py BASE_URL ROOT_KEY WRITES_PER_SEC SECONDS OUT_JSON [WORKERS]
"""
import http.client
import json
import sys
import threading
import time
import urllib.parse


def main() -> None:
    base, root, rate, seconds, out = sys.argv[1], sys.argv[2], float(sys.argv[3]), float(sys.argv[4]), sys.argv[5]
    workers = int(sys.argv[6]) if len(sys.argv) > 6 else 4
    u = urllib.parse.urlsplit(base)
    host, port = u.hostname, u.port
    auth = {"Authorization": f"Bearer {root}", "Content-Type": "application/json"}
    cycle_interval = 2.0 / rate  # two writes (create + revoke) per cycle
    lock = threading.Lock()
    start = time.monotonic()
    cpu_start = time.process_time()
    end = start + seconds
    state = {"next": start}
    stats = {
        "creates": 0, "revokes": 0, "verifies": 0, "errors": 0,
        "wrong_after_create": 0, "wrong_after_revoke": 0, "late_cycles": 0, "codes_after_revoke": {},
        "create_ms": [], "revoke_ms": [],
    }
    errors = []

    def call(conn, method, path, body=None, headers=None):
        conn.request(method, path, body=json.dumps(body) if body is not None else None, headers=headers or {})
        resp = conn.getresponse()
        data = resp.read()
        return resp.status, data

    def verify_fresh(key):
        conn = http.client.HTTPConnection(host, port, timeout=10)
        try:
            status, data = call(conn, "POST", "/api/v1/keys/verify", {"key": key},
                                {"Content-Type": "application/json"})
        finally:
            conn.close()
        if status != 200:
            raise RuntimeError(f"verify answered {status}: {data[:200]!r}")
        return json.loads(data)["data"]

    def worker():
        conn = http.client.HTTPConnection(host, port, timeout=10)
        while True:
            with lock:
                slot = state["next"]
                state["next"] = slot + cycle_interval
            if slot >= end:
                break
            delay = slot - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            elif delay < -cycle_interval:
                with lock:
                    stats["late_cycles"] += 1
            try:
                t = time.monotonic()
                status, data = call(conn, "POST", "/api/v1/keys", {"title": "bench-mixed"}, auth)
                create_ms = (time.monotonic() - t) * 1000
                if status != 200:
                    raise RuntimeError(f"create answered {status}: {data[:200]!r}")
                created = json.loads(data)["data"]
                key_id, key = created["id"], created["api_key"]
                v1 = verify_fresh(key)
                t = time.monotonic()
                status, data = call(conn, "DELETE", f"/api/v1/keys/{key_id}", None, auth)
                revoke_ms = (time.monotonic() - t) * 1000
                if status != 200:
                    raise RuntimeError(f"revoke answered {status}: {data[:200]!r}")
                v2 = verify_fresh(key)
                with lock:
                    stats["creates"] += 1
                    stats["revokes"] += 1
                    stats["verifies"] += 2
                    stats["create_ms"].append(create_ms)
                    stats["revoke_ms"].append(revoke_ms)
                    if not (v1.get("valid") is True and v1.get("code") == "VALID"):
                        stats["wrong_after_create"] += 1
                    code = str(v2.get("code"))
                    stats["codes_after_revoke"][code] = stats["codes_after_revoke"].get(code, 0) + 1
                    if v2.get("valid") is not False or code not in ("REVOKED", "RATE_LIMITED"):
                        stats["wrong_after_revoke"] += 1
            except Exception as e:  # counted and reported; the run goes on
                with lock:
                    stats["errors"] += 1
                    if len(errors) < 5:
                        errors.append(repr(e))
                conn.close()
                conn = http.client.HTTPConnection(host, port, timeout=10)
        conn.close()

    threads = [threading.Thread(target=worker) for _ in range(workers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.monotonic() - start
    cpu = time.process_time() - cpu_start

    def pct(values, p):
        if not values:
            return None
        s = sorted(values)
        return round(s[min(len(s) - 1, int(p / 100 * len(s)))], 2)

    result = {
        "target_writes_per_sec": rate,
        "seconds": round(elapsed, 2),
        "creates": stats["creates"],
        "revokes": stats["revokes"],
        "writes_per_sec": round((stats["creates"] + stats["revokes"]) / elapsed, 1),
        "fresh_verifies": stats["verifies"],
        "wrong_after_create": stats["wrong_after_create"],
        "wrong_after_revoke": stats["wrong_after_revoke"],
        "wrong_answers": stats["wrong_after_create"] + stats["wrong_after_revoke"],
        "codes_after_revoke": stats["codes_after_revoke"],
        "errors": stats["errors"],
        "error_samples": errors,
        "late_cycles": stats["late_cycles"],
        "cpu_seconds": round(cpu, 2),
        "cpu_share_of_one_core": cpu / elapsed,
        "create_p50_ms": pct(stats["create_ms"], 50),
        "create_p99_ms": pct(stats["create_ms"], 99),
        "revoke_p50_ms": pct(stats["revoke_ms"], 50),
        "revoke_p99_ms": pct(stats["revoke_ms"], 99),
    }
    with open(out, "w") as f:
        json.dump(result, f, indent=1)


if __name__ == "__main__":
    main()
