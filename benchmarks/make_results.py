#!/usr/bin/env python3
"""Turns Google Benchmark JSON files into the markdown tables of benchmarks/RESULTS.md.

Usage: make_results.py out1.json [out2.json ...] > table.md

Each benchmark's median throughput is shown (GB/s from SetBytesProcessed, GFLOP/s from a
"FLOP/s" counter, or items/s) together with its ratio to the baseline measured in the same
binary, chosen in this order:
  1. the benchmark named in its label as "vs=<name>";
  2. for FLOP/s benchmarks, BM_eigen_sgemm with the same argument suffix (BM_eigen_sgemm_fwd_bwd
     for a "forward_backward" benchmark, when the binary has it);
  3. for byte-counted benchmarks, the fastest BM_memcpy* entry of the binary (the machine's
     copy bandwidth: one read and one write of every byte counted, as the kernels count).
"""
import json
import sys


def medians(path):
    with open(path) as f:
        data = json.load(f)
    rows = {}
    for b in data["benchmarks"]:
        if b.get("run_type") == "aggregate" and b.get("aggregate_name") != "median":
            continue
        name = b.get("run_name", b["name"])
        rows[name] = b
    return data.get("context", {}), rows


def throughput(b):
    if "FLOP/s" in b:
        return b["FLOP/s"] / 1e9, "GFLOP/s"
    if "bytes_per_second" in b:
        return b["bytes_per_second"] / 1e9, "GB/s"
    if "items_per_second" in b:
        return b["items_per_second"] / 1e9, "Gitems/s"
    return None, ""


def baseline_for(name, b, rows):
    label = b.get("label", "")
    for part in label.split():
        if part.startswith("vs="):
            return rows.get(part[3:])
    value, unit = throughput(b)
    if unit == "GFLOP/s":
        suffix = name[name.find("/"):] if "/" in name else ""
        # A forward+backward benchmark is compared with the three GEMMs of a plain fwd+bwd.
        if "forward_backward" in name and ("BM_eigen_sgemm_fwd_bwd" + suffix) in rows:
            return rows["BM_eigen_sgemm_fwd_bwd" + suffix]
        return rows.get("BM_eigen_sgemm" + suffix)
    if unit == "GB/s":
        copies = [r for n, r in rows.items() if n.startswith("BM_memcpy")]
        return max(copies, key=lambda r: r.get("bytes_per_second", 0), default=None)
    return None


def main(paths):
    for path in paths:
        context, rows = medians(path)
        print(f"### {path.split('/')[-1].replace('.json', '')}\n")
        print(f"{context.get('num_cpus', '?')} CPUs, {context.get('date', '')}\n")
        print("| benchmark | median time | throughput | baseline | ratio |")
        print("|---|---:|---:|---|---:|")
        for name, b in rows.items():
            value, unit = throughput(b)
            t = f"{b['real_time']:.3f} {b['time_unit']}"
            if value is None:
                print(f"| {name} | {t} | | | |")
                continue
            base = baseline_for(name, b, rows)
            if base is None or base is b:
                print(f"| {name} | {t} | {value:.2f} {unit} | | |")
                continue
            bvalue, _ = throughput(base)
            bname = base.get("run_name", base["name"])
            print(f"| {name} | {t} | {value:.2f} {unit} | {bname} | {value / bvalue:.2f} |")
        print()


if __name__ == "__main__":
    main(sys.argv[1:])
