#!/usr/bin/env bash
# The valgrind step (make valgrind, .ci/run): runs the long scenario
# tests/valgrind/scenario.lua in build/luavmm under memcheck and passes only
# with zero reports: no invalid access, no use of an uninitialised value, no
# definitely or indirectly lost block at exit (luavmm closes its Lua state
# on the way out, so Lua's and libedit's memory counts too). Ends with
# "N passed, N failed" for .ci/run.
#   tests/valgrind/run.sh BUILD [ROUNDS]
#
# No suppressions and no client requests: valgrind 3.19 (Debian 12) knows
# KVM_RUN and the KVM ioctls that create things, and treats the others by
# the size and direction encoded in their request numbers (KVM_GET_* define
# the struct they fill; KVM_SET_* must be handed defined bytes); kvm_run is
# a mapping of the vCPU fd, whose bytes it takes as defined. Where a
# request number cannot tell the size (KVM_GET_SUPPORTED_CPUID's and
# KVM_GET_MSRS's arrays), our buffers are zeroed before the call. The
# scenario does not use the seccomp sandbox: valgrind runs its own code on
# the client's threads, and the filter refuses it.
set -u
build=${1:-build}
rounds=${2:-5}
log=$build/valgrind.log
mkdir -p "$build"
echo "== valgrind memcheck: $build/luavmm tests/valgrind/scenario.lua ($rounds rounds)"
start=$(date +%s)
LUAVMM_BUILD=$build LUAVMM_VALGRIND_ROUNDS=$rounds \
  valgrind --error-exitcode=99 --leak-check=full --show-leak-kinds=definite,indirect \
    --errors-for-leak-kinds=definite,indirect --track-origins=yes --num-callers=30 \
    --log-file="$log" "$build/luavmm" tests/valgrind/scenario.lua
rc=$?
secs=$(( $(date +%s) - start ))
grep -E 'ERROR SUMMARY|definitely lost|indirectly lost|in use at exit|All heap blocks' "$log" |
  sed 's/^==[0-9]*== */   /'
if [ "$rc" -eq 0 ] && grep -q 'ERROR SUMMARY: 0 errors' "$log"; then
  echo "ok - valgrind: zero reports in $secs s"
  echo "1 passed, 0 failed"
else
  echo "not ok - valgrind: exit $rc after $secs s; the reports:"
  grep -vE '^==[0-9]+== *$' "$log" | grep -E '^==[0-9]+==' | head -n 80
  echo "   full log: $log"
  echo "0 passed, 1 failed"
  exit 1
fi
