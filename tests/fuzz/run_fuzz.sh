#!/bin/bash
# Builds the safetensors fuzzer with clang (libFuzzer + ASan + UBSan) and runs it for a fixed time.
#   tests/fuzz/run_fuzz.sh [seconds=60] [build_dir=build/fuzz]
# The committed seed corpus (tests/fuzz/corpus/safetensors) is copied into the build dir, which
# collects the new inputs. Exits non-zero when the build fails or the fuzzer finds a crash (the
# crashing input is left in the build dir as crash-*). Environment: CXX (default clang++),
# LUX_BUILD_LOCK (a file to flock while compiling, for shared machines).
set -euo pipefail
seconds=${1:-60}
build=${2:-build/fuzz}
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
cxx=${CXX:-clang++}
mkdir -p "$build/corpus"
build=$(cd "$build" && pwd)

compile=("$cxx" -std=c++20 -g -O1 -fsanitize=fuzzer,address,undefined
  -fno-sanitize-recover=undefined -fno-omit-frame-pointer
  -I"$root/include" -I/usr/include/eigen3 "$here/fuzz_safetensors.cpp" -o "$build/fuzz_safetensors")
echo "building $build/fuzz_safetensors"
if [[ -n "${LUX_BUILD_LOCK:-}" ]]; then
  flock "$LUX_BUILD_LOCK" "${compile[@]}"
else
  "${compile[@]}"
fi

cp -n "$here"/corpus/safetensors/* "$build/corpus/" 2>/dev/null || true
cd "$build"
set +e
UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 ./fuzz_safetensors corpus \
  -max_total_time="$seconds" -dict="$here/safetensors.dict" -print_final_stats=1 \
  -timeout=10 -rss_limit_mb=2048 2>&1 | tee fuzz.log | grep -v '^#[0-9]*.*\(NEW\|REDUCE\|pulse\)'
status=${PIPESTATUS[0]}
set -e
execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' fuzz.log | grep -o '[0-9]*$' || echo "?")
shopt -s nullglob
found=(crash-* leak-* timeout-* oom-*)
crashes=${#found[@]}
echo "fuzz_safetensors: $execs executions in ${seconds}s, $crashes crash/leak/timeout/oom inputs, exit $status"
[[ $status -eq 0 && $crashes -eq 0 ]]
