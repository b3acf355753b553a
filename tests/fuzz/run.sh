#!/usr/bin/env bash
# Runs each libFuzzer harness for a bounded time and reports, per harness,
# executions, speed and coverage, then "N passed, N failed" (a clean run
# passes; a finding fails). Used by `make fuzz`:
#   tests/fuzz/run.sh OUT SECONDS HARNESS...
# OUT holds the built harnesses; corpora grow in OUT/corpus/<harness>/,
# findings go to OUT/findings/.
set -u
out=$1 seconds=$2
shift 2
passed=0 failed=0

for h in "$@"; do
  name=${h%_fuzz}
  corpus=$out/corpus/$name
  findings=$out/findings
  log=$out/$name.log
  mkdir -p "$corpus" "$findings"
  echo "== $h: ${seconds} s from tests/fuzz/corpus/$name/ and $corpus/"
  # -timeout: an input running over 10 s is a hang. -rss_limit_mb: the
  # harness's memory is a few MiB; more means a leak.
  "$out/$h" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=1024 -print_final_stats=1 \
    -artifact_prefix="$findings/$name-" "$corpus" "tests/fuzz/corpus/$name" >"$log" 2>&1
  rc=$?
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
  speed=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -n 1)
  last=$(grep -aE '^#[0-9]+' "$log" | tail -n 1)
  cov=$(sed -n 's/.* cov: \([0-9]*\).*/\1/p' <<<"$last")
  ft=$(sed -n 's/.* ft: \([0-9]*\).*/\1/p' <<<"$last")
  corp=$(sed -n 's/.* corp: \([0-9]*\/[0-9]*[a-zA-Z]*\).*/\1/p' <<<"$last")
  echo "$h: ${execs:-?} executions, ${speed:-?}/s; coverage ${cov:-?} edges, ${ft:-?} features; corpus ${corp:-?}"
  if [ "$rc" -eq 0 ]; then
    passed=$((passed + 1))
    echo "ok - $h: no finding"
  else
    failed=$((failed + 1))
    echo "not ok - $h: finding (exit $rc); the report:"
    grep -aE 'ERROR|SUMMARY|invariant|runtime error|Test unit written|ALARM|==[0-9]+==' "$log" | head -n 40
    echo "   full log: $log"
  fi
done

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
