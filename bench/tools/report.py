"""Reads what bench/run.sh left in bench/out (wrk logs, writer.json, results.txt) and
prints figures. Stdlib only.

  report.py summary OUT NAME      one line for the run logs/NAME.wrk (progress output)
  report.py get OUT NAME FIELD    one figure of that run (rps, p50_us, p99_us, requests, ...)
  report.py writer OUT            one line for the mixed-run writer
  report.py final OUT             the markdown report (also written to OUT/results.md);
                                  exits 1 if a correctness check failed
"""
import json
import os
import re
import sys


def parse_wrk(out, name):
    path = os.path.join(out, "logs", f"{name}.wrk")
    with open(path) as f:
        text = f.read()
    m = re.search(r"^BENCH (.*)$", text, re.M)
    if not m:
        raise SystemExit(f"{path}: no BENCH line (did wrk fail?)\n{text[-2000:]}")
    r = {k: int(v) for k, v in (kv.split("=") for kv in m.group(1).split())}
    r["rps"] = r["requests"] / (r["duration_us"] / 1e6)
    r["counts"] = {k: int(v) for k, v in re.findall(r"^COUNT (\S+)=(\d+)$", text, re.M)}
    r["extra"] = {k: int(v) for k, v in re.findall(r"^EXTRA (\S+)=(\d+)$", text, re.M)}
    r["socket_errors"] = r["errors_connect"] + r["errors_read"] + r["errors_write"] + r["errors_timeout"]
    return r


def scalars(out):
    res = {}
    path = os.path.join(out, "results.txt")
    if os.path.exists(path):
        with open(path) as f:
            for line in f:
                if "=" in line:
                    k, _, v = line.rstrip("\n").partition("=")
                    res[k] = v
    return res


def ms(us):
    return f"{us / 1000:.2f} ms"


def num(x):
    return f"{x:,.0f}"


def ratio(a, b, digits=2):
    if not b:
        return "n/a"
    return f"{a / b:.{digits}f}"


def counts_text(r):
    c = r["counts"]
    total = sum(c.values()) or 1
    return ", ".join(f"{k} {v / total:.1%}" for k, v in sorted(c.items(), key=lambda kv: -kv[1]))


def cmd_summary(out, name):
    r = parse_wrk(out, name)
    bits = [f"{name}: {num(r['rps'])} req/s", f"p50 {ms(r['p50_us'])}", f"p99 {ms(r['p99_us'])}"]
    if r["counts"]:
        bits.append(f"[{counts_text(r)}]")
    if r["errors_status"]:
        bits.append(f"non-2xx {r['errors_status']}")
    if r["socket_errors"]:
        bits.append(f"socket errors {r['socket_errors']}")
    if r["extra"]:
        bits.append(" ".join(f"{k}={v}" for k, v in r["extra"].items()))
    foreign = scalars(out).get(f"foreign_{name}")
    if foreign is not None:
        bits.append(f"other load {foreign}%" + (" (SKEWED)" if float(foreign) > 5 else ""))
    print("  " + ", ".join(bits))


def cmd_get(out, name, field):
    r = parse_wrk(out, name)
    v = r[field]
    print(f"{v:.1f}" if isinstance(v, float) else v)


def cmd_writer(out):
    w = json.load(open(os.path.join(out, "logs", "writer.json")))
    print(f"  writer: {w['creates']} creates, {w['revokes']} revokes, {w['writes_per_sec']} writes/s "
          f"(target {w['target_writes_per_sec']:.0f}), wrong answers {w['wrong_answers']}, errors {w['errors']}, "
          f"writer CPU {w['cpu_share_of_one_core']:.0%} of one core")


def cmd_final(out):
    s = scalars(out)
    small, big = int(s["small_keys"]), int(s["big_keys"])
    ksmall, kbig = f"{small:,}", f"{big:,}"
    runs = {}
    for f in sorted(os.listdir(os.path.join(out, "logs"))):
        if f.endswith(".wrk") and not f.startswith("warmup"):
            runs[f[:-4]] = parse_wrk(out, f[:-4])
    failures = []

    def only(name, outcome, label):
        r = runs[name]
        total = sum(r["counts"].values())
        good = r["counts"].get(outcome, 0)
        ok = total > 0 and good == total and r["socket_errors"] == 0
        if not ok:
            failures.append(f"{name}: expected every answer {outcome}, got {r['counts']} "
                            f"(socket errors {r['socket_errors']})")
        return f"{label}: {counts_text(r)}" + ("" if ok else " **FAILED**")

    lines = []
    p = lines.append
    p(f"## apikeyd benchmark, {s['date']}")
    p("")
    p(f"- Machine: {s['nproc']} cores ({s['cpu']}), {s['mem']} memory; {s['os']}")
    busy = int(s.get("busy_before", "0"))
    if busy > 20:
        p(f"- **Warning: the machine was {busy}% busy (other processes) just before the run; figures are skewed.**")
    p(f"- Command: `{s['command']}` (apikeyd {s['git']}, {s['rustc']}; {s['wrk']})")
    p(f"- Load: wrk, {s['threads']} threads, {s['conns']} connections, {s['duration']} s per run "
      f"(writes: {s['write_conns']} connections), after a {s['warmup']} s warm-up per server; paced runs: each "
      f"connection pauses {s.get('pace_ms', '?')} ms after every answer. "
      f"Client and server share the machine's {s['nproc']} cores; nothing is pinned. "
      "Keys are drawn at random per request from a file of the keys that exist.")
    p("")
    p("| Run | Keys in DB | Requests/s | p50 | p99 | Ratio | Answers | Other load |")
    p("| --- | ---: | ---: | ---: | ---: | ---: | --- | ---: |")
    noisy = []

    def row(name, label, keys, ratio_text, answers):
        r = runs[name]
        foreign = float(s.get(f"foreign_{name}", "nan"))
        if foreign > 5:
            noisy.append(f"{name} ({foreign:.0f}%)")
        flag = " **!**" if foreign > 5 else ""
        p(f"| {label} | {keys} | {num(r['rps'])} | {ms(r['p50_us'])} | {ms(r['p99_us'])} | {ratio_text} | {answers} "
          f"| {foreign:.1f}%{flag} |")

    h10, h1m = runs["health_small"], runs["health_big"]
    row("health_small", "GET /healthz (ceiling)", ksmall, "1.00", only("health_small", "HTTP200", "200"))
    row("verify_small", "POST /api/v1/keys/verify, valid keys", ksmall,
        f"{ratio(runs['verify_small']['rps'], h10['rps'])} of ceiling", only("verify_small", "VALID", "codes"))
    row("auth_small", "GET /auth, valid keys", ksmall,
        f"{ratio(runs['auth_small']['rps'], h10['rps'])} of ceiling", only("auth_small", "HTTP200", "status"))
    pace = s.get("pace_ms", "?")
    hp = runs["health_paced"]
    row("health_paced", f"GET /healthz, paced ({pace} ms pause per connection)", ksmall, "1.00",
        only("health_paced", "HTTP200", "200"))
    row("verify_paced", f"POST /api/v1/keys/verify, valid keys, paced ({pace} ms)", ksmall,
        f"p99 {ratio(runs['verify_paced']['p99_us'], hp['p99_us'])} of paced ceiling's",
        only("verify_paced", "VALID", "codes"))
    row("auth_paced", f"GET /auth, valid keys, paced ({pace} ms)", ksmall,
        f"p99 {ratio(runs['auth_paced']['p99_us'], hp['p99_us'])} of paced ceiling's",
        only("auth_paced", "HTTP200", "status"))
    hn = runs["health_nolimit"]
    row("health_nolimit", "GET /healthz (ceiling), failure limiter off", ksmall, "1.00", only("health_nolimit", "HTTP200", "200"))
    row("verify_unknown", "POST verify, unknown well-formed keys, limiter off", ksmall,
        f"{ratio(runs['verify_unknown']['rps'], hn['rps'])} of ceiling", only("verify_unknown", "NOT_FOUND", "codes"))
    row("verify_malformed", "POST verify, malformed keys, limiter off", ksmall,
        f"{ratio(runs['verify_malformed']['rps'], hn['rps'])} of ceiling", only("verify_malformed", "NOT_FOUND", "codes"))
    row("auth_unknown", "GET /auth, unknown well-formed keys, limiter off", ksmall,
        f"{ratio(runs['auth_unknown']['rps'], hn['rps'])} of ceiling", only("auth_unknown", "HTTP401", "status"))
    row("limited_verify_unknown", "POST verify, unknown keys, limiter on (one client flooding)", ksmall,
        f"{ratio(runs['limited_verify_unknown']['rps'], h10['rps'])} of ceiling",
        f"codes: {counts_text(runs['limited_verify_unknown'])}")
    row("limited_auth_unknown", "GET /auth, unknown keys, limiter on (one client flooding)", ksmall,
        f"{ratio(runs['limited_auth_unknown']['rps'], h10['rps'])} of ceiling",
        f"status: {counts_text(runs['limited_auth_unknown'])}")
    row("mixed_verify", "POST verify, valid keys, with writer", ksmall,
        f"{ratio(runs['mixed_verify']['rps'], runs['verify_small']['rps'])} of pure", only("mixed_verify", "VALID", "codes"))
    row("health_big", "GET /healthz (ceiling)", kbig, "1.00", only("health_big", "HTTP200", "200"))
    row("verify_big", "POST /api/v1/keys/verify, valid keys", kbig,
        f"{ratio(runs['verify_big']['rps'], h1m['rps'])} of ceiling; "
        f"{ratio(runs['verify_big']['rps'], runs['verify_small']['rps'])} of {ksmall}",
        only("verify_big", "VALID", "codes"))
    row("auth_big", "GET /auth, valid keys", kbig,
        f"{ratio(runs['auth_big']['rps'], h1m['rps'])} of ceiling; "
        f"{ratio(runs['auth_big']['rps'], runs['auth_small']['rps'])} of {ksmall}",
        only("auth_big", "HTTP200", "status"))
    row("create", f"POST /api/v1/keys (durable create), {s['write_conns']} conns", ksmall + "+", "", 
        "200: " + num(runs["create"]["requests"] - runs["create"]["errors_status"]) + f", non-2xx {runs['create']['errors_status']}")
    rv = runs["revoke"]
    row("revoke", f"DELETE /api/v1/keys/{{id}} (durable revoke, distinct ids), {s['write_conns']} conns", ksmall + "+", "",
        f"200: {num(rv['requests'] - rv['errors_status'])}, non-2xx {rv['errors_status']}, "
        f"revoked in DB {num(int(s['revoked_in_db']))} of {num(int(s['revoke_targets']))} targets")
    if runs["create"]["errors_status"] or runs["create"]["socket_errors"]:
        failures.append(f"create: {runs['create']['errors_status']} non-2xx, {runs['create']['socket_errors']} socket errors")
    if rv["errors_status"] or rv["socket_errors"] or rv["extra"].get("exhausted", 0):
        failures.append(f"revoke: {rv['errors_status']} non-2xx, {rv['socket_errors']} socket errors, "
                        f"{rv['extra'].get('exhausted', 0)} requests past the end of the target ids")
    if int(s["revoked_in_db"]) < rv["requests"] - rv["errors_status"]:
        failures.append(f"revoke: only {s['revoked_in_db']} revoked in the database for "
                        f"{rv['requests'] - rv['errors_status']} answers 200")
    peer = runs["peer"]
    row("peer", f"Peer: Django + DRF + djangorestframework-api-key, gunicorn {s['peer_workers']} sync workers",
        f"{int(s['peer_keys']):,}", "", only("peer", "HTTP200", "status"))

    p("")
    p("Other load: CPU used during the run by processes other than the server, wrk and the writer, as a share of "
      "all cores (from /proc). Above 5% (**!**) the run's figures are skewed by something else on the machine.")
    if noisy:
        p("")
        p(f"**Warning: other processes used over 5% of the CPU during: {', '.join(noisy)}. "
          "Rerun on a quiet machine before quoting these figures.**")
    w = json.load(open(os.path.join(out, "logs", "writer.json")))
    if w["wrong_answers"] or w["errors"]:
        failures.append(f"mixed: {w['wrong_answers']} wrong answers, {w['errors']} writer errors {w['error_samples']}")
    if w["revokes"] == 0:
        failures.append("mixed: the writer did no revoke")
    vs = runs["verify_small"]
    db_bytes = int(s["db_big_bytes"]) + int(s["db_big_wal_bytes"])
    p("")
    p("| Figure | Value |")
    p("| --- | --- |")
    p(f"| POST verify, {kbig} vs {ksmall} keys (req/s ratio; p99 ratio) | {ratio(runs['verify_big']['rps'], vs['rps'])}; "
      f"{ratio(runs['verify_big']['p99_us'], vs['p99_us'])} |")
    p(f"| GET /auth, {kbig} vs {ksmall} keys (req/s ratio) | {ratio(runs['auth_big']['rps'], runs['auth_small']['rps'])} |")
    vp = runs["verify_paced"]
    p(f"| Verify p50 / p99, {s['conns']} connections, saturated | {ms(vs['p50_us'])} / {ms(vs['p99_us'])} "
      f"(ceiling's p99 {ms(h10['p99_us'])}) |")
    p(f"| Verify p50 / p99, {s['conns']} connections paced at {num(vp['rps'])} req/s "
      f"({vp['rps'] / vs['rps']:.0%} of saturated) | {ms(vp['p50_us'])} / {ms(vp['p99_us'])} "
      f"(paced ceiling's p99 {ms(hp['p99_us'])}; target p99 <= 2 ms: {'met' if vp['p99_us'] <= 2000 else 'NOT met'}) |")
    p(f"| Mixed: verify p99 with writer / without | {ms(runs['mixed_verify']['p99_us'])} / {ms(vs['p99_us'])} = "
      f"{ratio(runs['mixed_verify']['p99_us'], vs['p99_us'])} |")
    p(f"| Mixed: verify req/s with writer / without | {num(runs['mixed_verify']['rps'])} / {num(vs['rps'])} = "
      f"{ratio(runs['mixed_verify']['rps'], vs['rps'])} |")
    p(f"| Mixed: writes done (target {w['target_writes_per_sec']:.0f}/s, 1% of the pure verify rate) | "
      f"{w['creates']} creates + {w['revokes']} revokes in {w['seconds']} s = {w['writes_per_sec']}/s; "
      f"create p50/p99 {w['create_p50_ms']}/{w['create_p99_ms']} ms, revoke p50/p99 {w['revoke_p50_ms']}/{w['revoke_p99_ms']} ms; "
      f"the writer itself used {w['cpu_share_of_one_core']:.0%} of one core |")
    p(f"| Mixed: wrong answers (fresh-connection verify right after create / revoke) | "
      f"**{w['wrong_answers']}** ({w['wrong_after_create']} after create, {w['wrong_after_revoke']} after revoke; "
      f"{w['fresh_verifies']} checked; codes after revoke: "
      + ", ".join(f"{k} {v}" for k, v in sorted(w.get("codes_after_revoke", {}).items()))
      + f"; writer errors {w['errors']}) |")
    p(f"| Durable creates/s, {s['write_conns']} connections | {num(runs['create']['rps'])} |")
    p(f"| Durable revokes/s, {s['write_conns']} connections | {num(rv['rps'])} |")
    p(f"| Seed {ksmall} keys (`keys seed`) | {float(s['seed_small_s']):.2f} s |")
    p(f"| Seed {kbig} keys (`keys seed`) | {float(s['seed_big_s']):.2f} s ({num(big / float(s['seed_big_s']))} keys/s) |")
    p(f"| Start-up, {ksmall} keys (spawn to first 200 from /healthz) | {float(s['startup_small_ms']):.0f} ms |")
    p(f"| Start-up, {kbig} keys | {float(s['startup_big_ms']):.0f} ms |")
    p(f"| Resident memory after the verify runs, {ksmall} / {kbig} keys | "
      f"{int(s['rss_small_kb']) / 1024:.1f} MiB / {int(s['rss_big_kb']) / 1024:.1f} MiB "
      f"({int(s['rss_big_anon_kb']) / 1024:.1f} MiB anonymous, {int(s['rss_big_file_kb']) / 1024:.1f} MiB file-backed) |")
    p(f"| Database bytes per key, {kbig} keys (db {num(int(s['db_big_bytes']))} + wal {num(int(s['db_big_wal_bytes']))} "
      f"bytes / {num(int(s['db_big_rows']))} rows) | {db_bytes / int(s['db_big_rows']):.0f} "
      f"({int(s['db_big_bytes']) / int(s['db_big_rows']):.0f} without the WAL) |")
    pr = vs["rps"] / peer["rps"] if peer["rps"] else 0
    p(f"| Peer req/s, p50, p99 | {num(peer['rps'])}, {ms(peer['p50_us'])}, {ms(peer['p99_us'])} |")
    p(f"| apikeyd POST verify / peer (req/s) | **{pr:.1f}x** (target >= 50x: {'met' if pr >= 50 else 'NOT met'}) |")
    p(f"| apikeyd GET /auth / peer (req/s) | {ratio(runs['auth_small']['rps'], peer['rps'], 1)}x |")
    p(f"| apikeyd p99 verify / peer p99 | {ms(vs['p99_us'])} / {ms(peer['p99_us'])} |")
    if s.get("quick") == "1":
        p("")
        p("QUICK=1: a smoke run with short runs and fewer keys; not figures to publish.")
    if failures:
        p("")
        p("**Checks failed:**")
        for f in failures:
            p(f"- {f}")
    text = "\n".join(lines) + "\n"
    with open(os.path.join(out, "results.md"), "w") as f:
        f.write(text)
    print(text, end="")
    return 1 if failures else 0


def main():
    cmd, out = sys.argv[1], sys.argv[2]
    if cmd == "summary":
        cmd_summary(out, sys.argv[3])
    elif cmd == "get":
        cmd_get(out, sys.argv[3], sys.argv[4])
    elif cmd == "writer":
        cmd_writer(out)
    elif cmd == "final":
        sys.exit(cmd_final(out))
    else:
        sys.exit(f"unknown command {cmd!r}")


if __name__ == "__main__":
    main()
