#!/usr/bin/env bash
# The 4th node (address ending in .4) runs under massif, as a child that outlives this
# wrapper (the bench kills the wrapper); the others are the real node.
real=${ROSTER_NODE:-$PWD/target/release/roster-node}
prev=""; fourth=no
for a in "$@"; do [ "$prev" = "--bind" ] && [[ "$a" == *.4 ]] && fourth=yes; prev=$a; done
if [ $fourth = yes ]; then
  valgrind --tool=massif --massif-out-file=${MASSIF_DIR:-/tmp}/massif.out.%p --log-file=${MASSIF_DIR:-/tmp}/vg.log "$real" "$@" &
  echo $! > ${MASSIF_DIR:-/tmp}/vg.pid
  wait
else
  exec "$real" "$@"
fi
