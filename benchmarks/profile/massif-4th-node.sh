#!/usr/bin/env bash
# The 4th node (address ending in .4) runs under massif, as a child that outlives this
# wrapper (the bench kills the wrapper); the others are the real node.
real=/work/wt/bench/target/release/roster-node
prev=""; fourth=no
for a in "$@"; do [ "$prev" = "--bind" ] && [[ "$a" == *.4 ]] && fourth=yes; prev=$a; done
if [ $fourth = yes ]; then
  valgrind --tool=massif --massif-out-file=/tmp/memprof/massif.out.%p --log-file=/tmp/memprof/vg.log "$real" "$@" &
  echo $! > /tmp/memprof/vg.pid
  wait
else
  exec "$real" "$@"
fi
