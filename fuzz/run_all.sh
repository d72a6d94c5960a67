#!/bin/sh
# Runs every fuzz target for $1 seconds (default 600), one after another,
# single process each. Logs: fuzz/fuzz-<target>.log (libFuzzer's stats,
# including the final "Done N runs in T second(s)" line).
# Usage: fuzz/run_all.sh [seconds]
set -u
cd "$(dirname "$0")"
secs=${1:-600}
for t in request_head chunked response_framing; do
  echo "== $t $(date -u +%FT%TZ)"
  RUSTC_BOOTSTRAP=1 cargo fuzz run "$t" -- -max_total_time="$secs" \
    > "fuzz-$t.log" 2>&1
  echo "exit $? ; $(grep -E '^Done [0-9]+ runs' "fuzz-$t.log" | tail -1)"
done
