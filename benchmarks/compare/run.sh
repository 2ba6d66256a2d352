#!/usr/bin/env bash
# luxcpp against LibTorch in one command: builds compare_libtorch (needs Debian's libtorch-dev
# and libopenblas0-pthread: apt-get install libtorch-dev libopenblas0-pthread), runs it in
# PyTorch's best configuration and in its default one, and writes the tables into
# benchmarks/RESULTS.md between the "compare:begin" / "compare:end" markers.
#   benchmarks/compare/run.sh [--reps 15] [--filter name]
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
# The peer's best configuration: freed memory kept by glibc (no page faults on every fresh
# output), idle OpenMP threads sleeping instead of spinning against the other library's.
MALLOC_MMAP_THRESHOLD_=4294967296 MALLOC_TRIM_THRESHOLD_=68719476736 MALLOC_TOP_PAD_=1073741824 \
  OMP_WAIT_POLICY=PASSIVE "$exe" "$@" | tee build/bench/compare_best.md
# The default configuration (what a user gets without tuning).
"$exe" "$@" | tee build/bench/compare_default.md
/usr/bin/python3 - "$@" <<'PY'
import datetime, pathlib, sys
res = pathlib.Path("benchmarks/RESULTS.md")
text = res.read_text()
best = pathlib.Path("build/bench/compare_best.md").read_text()
default = pathlib.Path("build/bench/compare_default.md").read_text()
block = ("<!-- compare:begin (written by benchmarks/compare/run.sh) -->\n"
         f"Run on {datetime.date.today()}: `benchmarks/compare/run.sh {' '.join(sys.argv[1:])}`.\n\n"
         "#### PyTorch's best configuration (glibc keeps freed memory, OMP_WAIT_POLICY=PASSIVE)\n\n"
         + best + "\n#### Default configuration (no environment tuning)\n\n" + default
         + "<!-- compare:end -->")
b, e = text.find("<!-- compare:begin"), text.find("<!-- compare:end -->")
if b < 0 or e < 0:
    text = text.rstrip("\n") + "\n\n## luxcpp against LibTorch (benchmarks/compare)\n\n" + block + "\n"
else:
    text = text[:b] + block + text[e + len("<!-- compare:end -->"):]
res.write_text(text)
print("benchmarks/RESULTS.md updated")
PY
