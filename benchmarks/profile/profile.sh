#!/usr/bin/env bash
# usage: profile.sh NAME START_REGEX STOP_REGEX [bench args...] [-- node args]
# Run from the repository root. Runs roster-bench (roster only, 1 repetition) and records its three nodes with perf
# (cpu-clock sampling, DWARF call graphs) from the first stderr line matching START_REGEX
# to the first later line matching STOP_REGEX (or the end of the run).
set -u
name=$1; start=$2; stop=$3; shift 3
out=/tmp/prof/$name; rm -rf $out; mkdir -p $out
${ROSTER_BENCH:-target/release/roster-bench} --systems roster --repetitions 1 --json $out/bench.json "$@" > $out/out.txt 2> $out/err.txt &
bench=$!
until grep -qE "$start" $out/err.txt 2>/dev/null; do sleep 0.1; kill -0 $bench 2>/dev/null || exit 1; done
line=$(grep -nE "$start" $out/err.txt | head -1 | cut -d: -f1)
pids=$(pgrep -P $bench -d, roster-node)
echo "bench $bench nodes $pids" > $out/pids
perf record -e cpu-clock -F 250 --call-graph dwarf,8192 -p $pids -o $out/perf.data > $out/perf.log 2>&1 &
perf=$!
while kill -0 $bench 2>/dev/null && ! tail -n +$((line+1)) $out/err.txt | grep -qE "$stop"; do sleep 0.1; done
kill -INT $perf; wait $perf
kill -INT $bench 2>/dev/null; wait $bench
echo done $name
