#!/usr/bin/env bash
# Builds every fuzz target and runs each for a bounded time; exits non-zero
# on any crash (the crashing input is left in fuzz/artifacts/<target>/).
#
#   fuzz/run.sh [seconds per target, default 30]
#
# Works on the stable toolchain: `-s none` needs no sanitizer (no -Z flags),
# and cargo-fuzz's coverage instrumentation uses stable `-C` options. The
# build is a dev build (debug assertions and overflow checks on) because it
# compiles in a fraction of the time of an optimized one, which is what a
# short CI run needs; FUZZ_PROFILE=release builds optimized for long runs.
# Needs `cargo install cargo-fuzz --version 0.13.1 --locked` and a C++
# compiler (libFuzzer is built by the `cc` crate).
set -euo pipefail
cd "$(dirname "$0")"

seconds="${1:-30}"
profile=(--dev)
if [ "${FUZZ_PROFILE:-dev}" = "release" ]; then profile=(-O); fi
target_dir="${FUZZ_TARGET_DIR:-target}"
targets=(grpc_payload http_params peer_message peer_signature)

cargo fuzz build -s none "${profile[@]}" --target-dir "$target_dir"

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
for t in "${targets[@]}"; do
  echo "== fuzz $t for ${seconds}s"
  mkdir -p "$work/$t" "artifacts/$t"
  # The first corpus directory takes new inputs (a scratch copy); the seeds
  # and regression inputs are read only.
  extra=()
  if [ -d "regressions/$t" ]; then extra+=("regressions/$t"); fi
  cargo fuzz run -s none "${profile[@]}" --target-dir "$target_dir" "$t" "$work/$t" "seeds/$t" "${extra[@]}" -- \
    -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1
done
echo "== fuzz: no crash in ${#targets[@]} targets"
