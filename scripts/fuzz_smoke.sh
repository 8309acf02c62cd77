#!/usr/bin/env bash
# Fuzz smoke test: builds the cargo-fuzz targets in fuzz/ and runs each for a short, bounded
# time, then prints executions and crashes per target. Exits 1 if any target crashed (or a
# run failed), 2 if the targets could not be built.
#   bash scripts/fuzz_smoke.sh                     # every target, 15 s each
#   FUZZ_SECONDS=60 FUZZ_TARGETS="key_parse redact" bash scripts/fuzz_smoke.sh
#   FUZZ_DEV=1 FUZZ_SECONDS=5 bash scripts/fuzz_smoke.sh   # what CI runs: an unoptimised build,
#                                  # half the build time, fewer executions per second
# Works on a stable toolchain (--sanitizer none). The corpus grows in fuzz/corpus/<target>
# (ignored by git); fuzz/seeds/<target> is read as extra starting input. A crash leaves its
# input in fuzz/artifacts/<target>/; replay it with
#   cd fuzz && cargo fuzz run --sanitizer none <target> artifacts/<target>/<file>
set -u
cd "$(dirname "$0")/../fuzz"
SECONDS_EACH=${FUZZ_SECONDS:-15}
SANITIZER=${FUZZ_SANITIZER:-none}
PROFILE=(); [ "${FUZZ_DEV:-0}" = 1 ] && PROFILE=(--dev)

if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "installing cargo-fuzz" >&2
  cargo install cargo-fuzz --locked || { echo "cannot install cargo-fuzz" >&2; exit 2; }
fi
TARGETS=${FUZZ_TARGETS:-$(cargo fuzz list)}

echo "building fuzz targets (sanitizer: $SANITIZER${PROFILE[0]:+, ${PROFILE[0]}})" >&2
if ! cargo fuzz build "${PROFILE[@]}" --sanitizer "$SANITIZER" >&2; then
  echo "fuzz targets failed to build" >&2
  exit 2
fi

LOGS=$(mktemp -d)
failed=0
summary=""
for t in $TARGETS; do
  mkdir -p "corpus/$t" "artifacts/$t"
  seeds=(); [ -d "seeds/$t" ] && seeds=("seeds/$t")
  before=$(ls "artifacts/$t" | wc -l)
  echo "== $t: ${SECONDS_EACH}s" >&2
  # The outer timeout bounds the run even if libFuzzer hangs on one input.
  timeout --signal=INT --kill-after=30 $((SECONDS_EACH + 300)) \
    cargo fuzz run "${PROFILE[@]}" --sanitizer "$SANITIZER" "$t" "corpus/$t" "${seeds[@]}" -- \
      -max_total_time="$SECONDS_EACH" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
      > "$LOGS/$t.log" 2>&1
  rc=$?
  runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$LOGS/$t.log" | tail -1)
  [ -n "$runs" ] || runs=$(sed -n 's/^#\([0-9][0-9]*\).*/\1/p' "$LOGS/$t.log" | tail -1)
  corpus=$(ls "corpus/$t" | wc -l)
  crashes=$(( $(ls "artifacts/$t" | wc -l) - before ))
  status=ok
  if [ "$rc" -ne 0 ] || [ "$crashes" -gt 0 ]; then
    status="FAILED (exit $rc)"
    [ "$crashes" -gt 0 ] || crashes="?"
    failed=1
    echo "---- $t ----" >&2
    if grep -q panicked "$LOGS/$t.log"; then
      grep -m1 -A3 panicked "$LOGS/$t.log" >&2
    else
      grep -v '^#' "$LOGS/$t.log" | tail -25 >&2
    fi
    ls -t "artifacts/$t" | head -3 | sed "s|^|artifact: fuzz/artifacts/$t/|" >&2
  fi
  summary+=$(printf '%-18s runs=%-10s corpus=%-6s crashes=%-3s %s' "$t" "${runs:-0}" "$corpus" "$crashes" "$status")$'\n'
done
echo
echo "fuzz smoke: ${SECONDS_EACH}s per target${PROFILE[0]:+ (${PROFILE[0]} build)}"
printf '%s' "$summary"
rm -rf "$LOGS"
exit $failed
