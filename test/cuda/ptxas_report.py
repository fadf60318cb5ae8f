#!/usr/bin/env python3
"""Compiles every CUDA kernel family header with nvcc and records ptxas' numbers.

Each runtime/kernels/cuda/*.cuh is compiled alone (so each stays
self-contained) for sm_90a with `-Xptxas -v`; the registers, spills, stack
and shared memory of every kernel go to a table (--report). The check fails
on a compile error, and on any spill in the GEMM-adjacent and attention
kernels (names matching --no-spill), where a spill costs most.

  ptxas_report.py --nvcc /usr/local/cuda/bin/nvcc --source-dir SRC --report OUT.md
"""
import argparse
import concurrent.futures
import os
import re
import subprocess
import sys
import tempfile

ENTRY = re.compile(r"Compiling entry function '([^']+)' for '(sm_\w+)'")
STACK = re.compile(r"(\d+) bytes stack frame, (\d+) bytes spill stores, (\d+) bytes spill loads")
USED = re.compile(r"Used (\d+) registers(?:, used (\d+) barriers)?(?:, (\d+) bytes smem)?")


def compile_header(nvcc, source_dir, header, arch, workdir):
    """ptxas' lines for one header, or raises with nvcc's output."""
    name = os.path.basename(header)
    unit = os.path.join(workdir, name + ".cu")
    with open(unit, "w") as f:
        f.write('#include "runtime/kernels/cuda/%s"\n' % name)
    cmd = [nvcc, "-arch=" + arch, "-std=c++17", "-O3", "-I" + source_dir, "-Xptxas", "-v",
           "-c", unit, "-o", unit + ".o"]
    run = subprocess.run(cmd, capture_output=True, text=True)
    if run.returncode != 0:
        raise RuntimeError("%s failed:\n%s\n%s" % (" ".join(cmd), run.stdout, run.stderr))
    return run.stderr + run.stdout


def parse(output):
    """[(mangled, registers, spill stores, spill loads, stack, smem)] in output order."""
    kernels, current = [], None
    for line in output.splitlines():
        m = ENTRY.search(line)
        if m:
            current = {"name": m.group(1), "regs": 0, "stores": 0, "loads": 0, "stack": 0,
                       "smem": 0}
            kernels.append(current)
            continue
        if current is None:
            continue
        m = STACK.search(line)
        if m:
            current["stack"], current["stores"], current["loads"] = map(int, m.groups())
        m = USED.search(line)
        if m:
            current["regs"] = int(m.group(1))
            current["smem"] = int(m.group(3) or 0)
    return kernels


def demangle(names):
    run = subprocess.run(["c++filt"], input="\n".join(names), capture_output=True, text=True)
    out = run.stdout.splitlines() if run.returncode == 0 else names
    return [re.sub(r"\(.*", "", n) for n in out]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nvcc", required=True)
    parser.add_argument("--source-dir", required=True)
    parser.add_argument("--report", required=True)
    parser.add_argument("--arch", default="sm_90a")
    parser.add_argument("--no-spill", default=r"(?i)gemm|matmul|attention|flash")
    args = parser.parse_args()
    cuda_dir = os.path.join(args.source_dir, "runtime", "kernels", "cuda")
    headers = sorted(os.path.join(cuda_dir, h) for h in os.listdir(cuda_dir)
                     if h.endswith(".cuh"))
    rows, failures = [], []
    with tempfile.TemporaryDirectory() as workdir, \
            concurrent.futures.ThreadPoolExecutor(max_workers=os.cpu_count() or 2) as pool:
        jobs = {h: pool.submit(compile_header, args.nvcc, args.source_dir, h, args.arch, workdir)
                for h in headers}
        for header, job in jobs.items():
            try:
                kernels = parse(job.result())
            except RuntimeError as e:
                failures.append(str(e))
                continue
            for k, name in zip(kernels, demangle([k["name"] for k in kernels])):
                rows.append((os.path.basename(header), name, k))
    no_spill = re.compile(args.no_spill)
    for header, name, k in rows:
        if (k["stores"] or k["loads"]) and no_spill.search(name):
            failures.append("%s: %s spills (%d bytes stored, %d loaded) on %s; GEMM-adjacent "
                            "and attention kernels must not" %
                            (header, name, k["stores"], k["loads"], args.arch))
    with open(args.report, "w") as f:
        f.write("# ptxas -v of the CUDA kernel library (%s)\n\n" % args.arch)
        f.write("| header | kernel | registers | spill stores | spill loads | stack | smem |\n")
        f.write("|---|---|---|---|---|---|---|\n")
        for header, name, k in rows:
            f.write("| %s | %s | %d | %d | %d | %d | %d |\n" %
                    (header, name, k["regs"], k["stores"], k["loads"], k["stack"], k["smem"]))
    print("%d kernels in %d headers compiled for %s; table in %s" %
          (len(rows), len(headers), args.arch, args.report))
    spilling = [r for r in rows if r[2]["stores"] or r[2]["loads"]]
    for header, name, k in spilling:
        print("note: %s: %s spills %d/%d bytes" % (header, name, k["stores"], k["loads"]))
    for failure in failures:
        print("error: " + failure, file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
