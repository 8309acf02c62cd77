#!/usr/bin/env python3
"""Measures `apikeyd keys import`: N lines of JSON Lines into a fresh database, in keys/s.

    python3 bench/import.py [--lines 100000] [--binary target/release/apikeyd]

A third of the lines are plaintext keys in another service's format, a third SHA-256
hashes, a third plaintext keys with grants, an owner and metadata. Prints the import's own
figure and the wall time of the whole command (start-up, parsing, the one transaction).
"""
import argparse, hashlib, os, secrets, subprocess, tempfile, time

ap = argparse.ArgumentParser()
ap.add_argument("--lines", type=int, default=100_000)
ap.add_argument("--binary", default="target/release/apikeyd")
args = ap.parse_args()
d = tempfile.mkdtemp()
path = os.path.join(d, "keys.jsonl")
with open(path, "w") as f:
    for i in range(args.lines):
        token = "ghp_" + secrets.token_hex(18)
        if i % 3 == 0:
            f.write(f'{{"key": "{token}"}}\n')
        elif i % 3 == 1:
            f.write(f'{{"sha256": "{hashlib.sha256(token.encode()).hexdigest()}", "title": "hashed {i}"}}\n')
        else:
            f.write(f'{{"key": "{token}", "grants": [{{"path": "/data", "access": "read"}}], '
                    f'"owner": "user-{i}", "meta": {{"n": {i}}}}}\n')
db = os.path.join(d, "k.db")
subprocess.run([args.binary, "keys", "list", "--db", db], check=True, capture_output=True)
started = time.monotonic()
out = subprocess.run([args.binary, "keys", "import", path, "--db", db], check=True, capture_output=True, text=True)
wall = time.monotonic() - started
print(out.stdout.strip())
print(f"import of {args.lines} lines: {wall:.2f} s wall, {args.lines / wall:,.0f} keys/s (whole command)")
