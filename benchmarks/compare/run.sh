#!/usr/bin/env bash
# luxcpp against LibTorch in one command: builds compare_libtorch (needs Debian's libtorch-dev
# and libopenblas0-pthread: apt-get install libtorch-dev libopenblas0-pthread), runs it in
# PyTorch's best configuration and in its default one, and writes the tables into
# benchmarks/RESULTS.md between the "compare:begin" / "compare:end" markers.
#   benchmarks/compare/run.sh [--reps 15] [--filter name]    (LUXCPP_COMPARE_ROUNDS=3)
# Nothing else may run on the machine meanwhile (see RESULTS.md on the 2-thread scheduler tick).
set -euo pipefail
cd "$(dirname "$0")/../.."
if ! dpkg-query -W -f='${Status}' libtorch-dev 2>/dev/null | grep -q "install ok installed"; then
  echo "benchmarks/compare: libtorch-dev is not installed (apt-get install libtorch-dev libopenblas0-pthread)" >&2
  exit 1
fi
if ! dpkg-query -W -f='${Status}' libopenblas0-pthread 2>/dev/null | grep -q "install ok installed"; then
  echo "benchmarks/compare: install libopenblas0-pthread, or PyTorch's GEMMs use the reference BLAS" >&2
  exit 1
fi
cmake --preset default >/dev/null
cmake --build build/default --target compare_libtorch -j 2
mkdir -p build/bench
exe=build/default/benchmarks/compare_libtorch
rounds=${LUXCPP_COMPARE_ROUNDS:-3}
# Each library is timed in its own process (--side lux / --side torch), processes alternating,
# `rounds` of each per thread count, so that no library's thread pool is alive while the other
# one is timed. luxcpp runs with the default environment. PyTorch runs twice: in its best
# configuration (freed memory kept by glibc: no page faults on every fresh output; idle OpenMP
# threads sleeping, OMP_WAIT_POLICY=PASSIVE) and in its default one.
best_env=(MALLOC_MMAP_THRESHOLD_=4294967296 MALLOC_TRIM_THRESHOLD_=68719476736
  MALLOC_TOP_PAD_=1073741824 OMP_WAIT_POLICY=PASSIVE)
rm -f build/bench/compare_lux.tsv build/bench/compare_best.tsv build/bench/compare_default.tsv
for threads in 1 2; do
  for ((r = 1; r <= rounds; ++r)); do
    echo "compare: $threads thread(s), round $r of $rounds" >&2
    "$exe" --side lux --threads "$threads" "$@" >>build/bench/compare_lux.tsv
    env "${best_env[@]}" "$exe" --side torch --threads "$threads" "$@" >>build/bench/compare_best.tsv ||
      echo "compare: a check failed (marked in the table)" >&2
    "$exe" --side torch --threads "$threads" "$@" >>build/bench/compare_default.tsv ||
      echo "compare: a check failed (marked in the table)" >&2
  done
done
/usr/bin/python3 benchmarks/compare/merge.py "$rounds" "$@"
