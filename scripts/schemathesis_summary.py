"""Counts what schemathesis checked and found, from its NDJSON reports: for each check, how
many test cases it ran on and how many failed, then the three figures docs/RELIABILITY.md
quotes. Exits 1 if any check failed.

  python3 scripts/schemathesis_summary.py REPORT.ndjson [REPORT.ndjson ...]
"""
import collections
import json
import sys

SCHEMA_CHECKS = {
    "status_code_conformance",
    "content_type_conformance",
    "response_headers_conformance",
    "response_schema_conformance",
}


def main(paths):
    ran = collections.Counter()
    failed = collections.Counter()
    cases = 0
    for path in paths:
        with open(path) as f:
            for line in f:
                event = json.loads(line)
                finished = event.get("ScenarioFinished")
                if not finished:
                    continue
                for results in (finished.get("recorder") or {}).get("checks", {}).values():
                    cases += 1
                    for check in results:
                        ran[check["name"]] += 1
                        if check["status"] == "failure":
                            failed[check["name"]] += 1
    print(f"{'check':34} {'cases':>8} {'failed':>7}")
    for name in sorted(ran):
        print(f"{name:34} {ran[name]:8} {failed[name]:7}")
    schema = sum(failed[n] for n in SCHEMA_CHECKS)
    print(
        f"test cases={cases} server errors={failed['not_a_server_error']} "
        f"schema violations={schema} ignored auth={failed['ignored_auth']} "
        f"all failures={sum(failed.values())}"
    )
    return 1 if sum(failed.values()) else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
