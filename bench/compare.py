#!/usr/bin/env python3
"""Two builds side by side in one run: verify, /auth and /healthz throughput of each, and each
build's verify / healthz and auth / healthz ratios, so a change's cost is read from figures
measured under the same machine load.

    python3 bench/compare.py --before /tmp/apikeyd-old --after target/release/apikeyd \
        [--keys 10000] [--seconds 6] [--rounds 2]

Each build gets its own database of --keys keys (its own `keys seed`), served one build at a
time; scenarios alternate between the builds round by round and the best round of each is
kept. Every answer must be VALID / 200. Needs wrk.
"""
import argparse, os, re, shutil, socket, subprocess, sys, tempfile, time, urllib.request

ap = argparse.ArgumentParser()
ap.add_argument("--before", required=True)
ap.add_argument("--after", default="target/release/apikeyd")
ap.add_argument("--keys", type=int, default=10_000)
ap.add_argument("--seconds", type=int, default=6)
ap.add_argument("--rounds", type=int, default=2)
ap.add_argument("--connections", type=int, default=32)
args = ap.parse_args()
if not shutil.which("wrk"):
    sys.exit("bench: wrk is needed (apt-get install wrk)")
here = os.path.dirname(os.path.abspath(__file__))
d = tempfile.mkdtemp(prefix="apikeyd-compare-")
builds = {"before": args.before, "after": args.after}
for name, binary in builds.items():
    db = os.path.join(d, f"{name}.db")
    out = subprocess.run([binary, "keys", "seed", "--count", str(args.keys), "--db", db],
                         check=True, capture_output=True, text=True)
    with open(os.path.join(d, f"{name}.keys"), "w") as f:
        f.write(out.stdout)


def serve(name):
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    proc = subprocess.Popen([builds[name], "serve", "--db", os.path.join(d, f"{name}.db"), "--bind", f"127.0.0.1:{port}"],
                            stderr=subprocess.DEVNULL, env={**os.environ, "RUST_LOG": "warn"})
    url = f"http://127.0.0.1:{port}"
    for _ in range(300):
        try:
            urllib.request.urlopen(url + "/healthz", timeout=1).read()
            return proc, url
        except OSError:
            time.sleep(0.1)
    proc.kill()
    sys.exit(f"bench: {name} did not start")


def wrk(url, script, keys):
    env = {**os.environ, "BENCH_LUA": os.path.join(here, "lua"), "BENCH_PATH": "/bench/items", "BENCH_KEYS": keys}
    cmd = ["wrk", "-t2", f"-c{args.connections}", f"-d{args.seconds}s", "-s", os.path.join(here, "lua", script), url]
    out = subprocess.run(cmd, env=env, check=True, capture_output=True, text=True, timeout=args.seconds + 60).stdout
    bench = dict(kv.split("=") for kv in re.search(r"^BENCH (.*)$", out, re.M).group(1).split())
    counts = dict(kv.split("=") for kv in re.findall(r"^COUNT (\S+)$", out, re.M))
    bad = {k: v for k, v in counts.items() if k not in ("VALID", "200", "HTTP200")}
    if bad:
        sys.exit(f"bench: {script} on {url}: unexpected answers {counts}")
    return int(bench["requests"]) / (int(bench["duration_us"]) / 1e6), int(bench["p99_us"]) / 1000


best = {}
for r in range(args.rounds):
    for name in (["before", "after"] if r % 2 == 0 else ["after", "before"]):
        proc, url = serve(name)
        try:
            for script in ["verify.lua", "auth.lua", "health.lua"]:
                rps, p99 = wrk(url, script, os.path.join(d, f"{name}.keys"))
                key = (name, script)
                if key not in best or rps > best[key][0]:
                    best[key] = (rps, p99)
                print(f"round {r + 1}: {name:6} {script:11} {rps:10,.0f} req/s p99 {p99:6.2f} ms", file=sys.stderr)
        finally:
            proc.terminate()
            proc.wait(timeout=30)

print(f"\n{args.keys:,} keys, {args.connections} connections, {args.seconds} s x {args.rounds} rounds (best each), {os.cpu_count()} cores")
print(f"{'':8} {'verify':>10} {'/auth':>10} {'/healthz':>10} {'verify/hz':>10} {'auth/hz':>8}")
for name in builds:
    v, a, h = (best[(name, s)][0] for s in ["verify.lua", "auth.lua", "health.lua"])
    print(f"{name:8} {v:10,.0f} {a:10,.0f} {h:10,.0f} {v / h:10.2f} {a / h:8.2f}")
v0, v1 = best[("before", "verify.lua")][0], best[("after", "verify.lua")][0]
print(f"verify after / before: {v1 / v0:.2f}")
