#!/usr/bin/python3
"""Merges the per-process records of benchmarks/compare/run.sh into benchmarks/RESULTS.md.

build/bench/compare_lux.tsv holds luxcpp's processes, compare_best.tsv and compare_default.tsv
PyTorch's in its two configurations (records described in compare.cpp's main). Each process
reports the median of its repetitions; a figure here is the median over the processes (rounds).
The machine's limits are the medians of every process's measurement at that thread count.
usage: merge.py ROUNDS [the arguments run.sh was given]
"""
import collections
import datetime
import pathlib
import statistics
import sys

BENCH = pathlib.Path("build/bench")


def read(path):
    limits = collections.defaultdict(list)  # threads -> [(copy, fma, blas)]
    rows = collections.OrderedDict()  # (threads, name) -> dict
    for line in path.read_text().splitlines():
        f = line.split("\t")
        if f[0] == "L":
            limits[int(f[1])].append((float(f[2]), float(f[3]), int(f[4])))
        elif f[0] == "R":
            key = (int(f[1]), f[3])
            r = rows.setdefault(key, {"kind": f[4], "amount": float(f[5]), "ms": [], "sgemm": [],
                                      "error": []})
            r["ms"].append(float(f[6]))
            if float(f[7]) > 0:
                r["sgemm"].append(float(f[7]))
            if f[8] != "nan":
                r["error"].append(float(f[8]))
    return limits, rows


def table(lux, torch):
    lux_limits, lux_rows = lux
    t_limits, t_rows = torch
    out = []
    for threads in sorted(lux_limits):
        every = lux_limits[threads] + t_limits.get(threads, [])
        copy = statistics.median(l[0] for l in every)
        fma = statistics.median(l[1] for l in every)
        blas = max(l[2] for l in t_limits.get(threads, [(0, 0, -1)]))
        out.append(f"\n### {threads} thread{'s' if threads > 1 else ''}\n")
        out.append(f"machine: 2-thread copy {copy:.1f} GB/s, FMA peak at {threads} "
                   f"thread{'s' if threads > 1 else ''} {fma:.0f} GFLOP/s (medians over "
                   f"{len(every)} processes); threads: luxcpp (OpenMP) {threads}, "
                   f"ATen {threads}, OpenBLAS {blas}\n")
        out.append("| workload | luxcpp | PyTorch | PyTorch ÷ luxcpp | luxcpp of limit | "
                   "PyTorch of limit | luxcpp ÷ sgemm | max rel. error |")
        out.append("|---|---:|---:|---:|---:|---:|---:|---:|")
        for (th, name), lr in lux_rows.items():
            if th != threads or (th, name) not in t_rows:
                continue
            tr = t_rows[(th, name)]
            lm, tm = statistics.median(lr["ms"]), statistics.median(tr["ms"])
            memory = lr["kind"] == "memory"
            limit = copy if memory else fma
            unit = "copy" if memory else "FMA"
            lf = lr["amount"] / (lm * 1e-3) / 1e9 / limit
            tf = lr["amount"] / (tm * 1e-3) / 1e9 / limit
            sg = f"{statistics.median(tr['sgemm']) / lm:.2f}" if tr["sgemm"] else "—"
            err = max(tr["error"]) if tr["error"] else float("nan")
            flag = " **MISMATCH**" if err > 1e-4 else ""
            spread = max(lr["ms"]) / min(lr["ms"]), max(tr["ms"]) / min(tr["ms"])
            noisy = " (±)" if max(spread) > 1.15 else ""
            out.append(f"| {name} | {lm:.2f} ms | {tm:.2f} ms | **{tm / lm:.2f}**{noisy} | "
                       f"{lf:.2f} {unit} | {tf:.2f} {unit} | {sg} | {err:.1e}{flag} |")
    return "\n".join(out) + "\n"


def main():
    rounds = sys.argv[1]
    args = " ".join(sys.argv[2:])
    lux = read(BENCH / "compare_lux.tsv")
    best = table(lux, read(BENCH / "compare_best.tsv"))
    default = table(lux, read(BENCH / "compare_default.tsv"))
    block = ("<!-- compare:begin (written by benchmarks/compare/run.sh) -->\n"
             f"Run on {datetime.date.today()}: `benchmarks/compare/run.sh {args}` "
             f"({rounds} processes per library, thread count and configuration, alternating; each "
             "figure the median over the processes of each process's median). (±): the processes "
             "of that row differ by more than 15 %.\n\n"
             "#### PyTorch's best configuration (glibc keeps freed memory, "
             "OMP_WAIT_POLICY=PASSIVE)\n" + best +
             "\n#### PyTorch's default configuration (no environment tuning)\n" + default +
             "<!-- compare:end -->")
    res = pathlib.Path("benchmarks/RESULTS.md")
    text = res.read_text()
    b, e = text.find("<!-- compare:begin"), text.find("<!-- compare:end -->")
    if b < 0 or e < 0:
        text = text.rstrip("\n") + "\n\n## luxcpp against LibTorch (benchmarks/compare)\n\n" + \
            block + "\n"
    else:
        text = text[:b] + block + text[e + len("<!-- compare:end -->"):]
    res.write_text(text)
    print(best)
    print(default)
    print("benchmarks/RESULTS.md updated")


if __name__ == "__main__":
    main()
