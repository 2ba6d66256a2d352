#!/usr/bin/env bash
# Default flags vs -march=native: builds each kernel benchmark twice (bench_<name>, -march=native;
# bench_<name>_default, the compiler's default flags, running through the run-time instruction-set
# dispatch of lux/core/dispatch.hpp), runs the two alternately and prints, per benchmark, the
# median time of each and their ratio (default ÷ native; 1.00 = no loss). Left out: the rows
# that time Eigen or memcpy directly (the machine-limit baselines, and "unfused", whose GEMM is
# the benchmark's own Eigen call), and generic_op rows (the plain-loop reference implementation,
# compiled into the caller by design: it is never dispatched).
# Usage: benchmarks/dispatch.sh [filter] [repetitions]
set -euo pipefail
cd "$(dirname "$0")/.."
filter="${1:-.}"
reps="${2:-5}"
build=build/dispatch
cmake --preset default -B "$build" -DLUXCPP_BENCH_DEFAULT_FLAGS=ON >/dev/null
targets=()
for b in elementwise normalization dense conv pooling; do targets+=("bench_$b" "bench_${b}_default"); done
cmake --build "$build" -j 2 --target "${targets[@]}"
mkdir -p "$build/json"
for b in elementwise normalization dense conv pooling; do
  for round in 1 2; do
    for v in "" _default; do
      "$build/benchmarks/bench_${b}${v}" --benchmark_filter="$filter" \
        --benchmark_repetitions="$reps" --benchmark_report_aggregates_only=true \
        --benchmark_min_time=0.1 --benchmark_out="$build/json/${b}${v}_${round}.json" \
        --benchmark_out_format=json >/dev/null
    done
  done
done
/usr/bin/python3 - "$build/json" <<'PY'
import json, sys, glob, os, statistics
d = sys.argv[1]
def medians(pattern):
    out = {}
    for f in sorted(glob.glob(os.path.join(d, pattern))):
        for b in json.load(open(f))["benchmarks"]:
            if b.get("aggregate_name") == "median":
                out.setdefault(b["run_name"], []).append(b["real_time"] * {"ns": 1e-6, "us": 1e-3, "ms": 1, "s": 1e3}[b["time_unit"]])
    return {k: statistics.median(v) for k, v in out.items()}
print("| benchmark | -march=native (ms) | default flags (ms) | default ÷ native |")
print("|---|---:|---:|---:|")
ratios = []
for b in ["elementwise", "normalization", "dense", "conv", "pooling"]:
    nat, dft = medians(b + "_[12].json"), medians(b + "_default_[12].json")
    for name in nat:
        if name not in dft or any(s in name for s in ("eigen", "memcpy", "sgemm", "copy", "unfused", "generic")):
            continue
        r = dft[name] / nat[name]
        ratios.append(r)
        print(f"| {name} | {nat[name]:.3f} | {dft[name]:.3f} | {r:.2f} |")
if ratios:
    print(f"\n{len(ratios)} benchmarks: median ratio {statistics.median(ratios):.2f}, "
          f"worst {max(ratios):.2f}, {sum(r > 1.1 for r in ratios)} above 1.10")
PY
