#!/usr/bin/env bash
# Builds the benchmarks (Release, -O3 -march=native) and runs each binary, writing Google
# Benchmark JSON to build/bench/ and the markdown tables to build/bench/tables.md
# (the tables of benchmarks/RESULTS.md come from there). Usage: benchmarks/run.sh [filter]
set -euo pipefail
cd "$(dirname "$0")/.."
filter="${1:-.}"
cmake --preset default >/dev/null
cmake --build --preset benchmarks
mkdir -p build/bench
jsons=()
for b in core elementwise normalization dense conv pooling layers training; do
  out="build/bench/bench_${b}.json"
  "build/default/benchmarks/bench_${b}" --benchmark_filter="$filter" \
    --benchmark_repetitions=3 --benchmark_report_aggregates_only=true \
    --benchmark_min_time=0.2 --benchmark_out="$out" --benchmark_out_format=json
  jsons+=("$out")
done
/usr/bin/python3 benchmarks/make_results.py "${jsons[@]}" > build/bench/tables.md
echo "tables written to build/bench/tables.md"
