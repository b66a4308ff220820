"""How much the quantized-model cache saves: the shipped KL suite run twice on an empty
cache, timed end to end (interpreter start, imports, base models, evaluation included).

The first run quantizes every variant and stores it; the second loads them. The printed
ratio is first / second wall time. By default quantization dominates: mixed-precision
variants (paper 004) whose layer choice is a 20-trial random search, each trial scored on
the calibration text, over gptq, hqq and quanto on the two larger zoo models. Plain
quantization of the tiny zoo models is cheap next to loading libraries and evaluating, so
``--plain`` shows a smaller ratio (measured on a 2-core CPU: 3.9x by default, 1.7x plain).

    python benchmarks/bench_cache.py
    python benchmarks/bench_cache.py --plain
    python benchmarks/bench_cache.py --models zoo-s --methods hqq --bits 4 -- --qrel-seed=1
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SUITE = Path(__file__).resolve().parent.parent / "suites" / "test_kl.py"


def run_suite(cache: Path, report: Path, args: argparse.Namespace) -> tuple[float, dict]:
    cmd = [
        sys.executable, "-m", "pytest", str(SUITE), "-q", "-p", "no:cacheprovider",
        f"--qrel-models={args.models}", f"--qrel-methods={args.methods}", f"--qrel-bits={args.bits}",
        f"--qrel-cache-dir={cache}", f"--qrel-report-dir={report}",
        "--qrel-kl-threshold=2:1e9,3:1e9,4:1e9,8:1e9",  # timing, not gating
        *args.pytest_args,
    ]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
    start = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        sys.exit(f"suite failed ({proc.returncode}):\n{proc.stdout[-4000:]}\n{proc.stderr[-2000:]}")
    doc = json.loads((report / "results.json").read_text())
    return elapsed, {v["id"]: v for v in doc["variants"]}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--models", default="zoo-m,zoo-l")
    p.add_argument("--methods", default="gptq,hqq,quanto")
    p.add_argument("--bits", default="2,4")
    p.add_argument("--plain", action="store_true", help="no mixed-precision search: plain quantization only")
    p.add_argument("pytest_args", nargs="*", help="more pytest / --qrel-* options (after --)")
    args = p.parse_args()
    if not args.plain:
        args.pytest_args = ["--qrel-quant-ratio=0.5,0.9", "--qrel-quant-trials=20", *args.pytest_args]
    with tempfile.TemporaryDirectory(prefix="qrel-bench-cache-") as tmp:
        cache = Path(tmp) / "cache"
        first, v1 = run_suite(cache, Path(tmp) / "r1", args)
        second, v2 = run_suite(cache, Path(tmp) / "r2", args)
    ran = [vid for vid, v in v1.items() if not v.get("skip_reason")]
    states = sorted({v2[vid].get("cache") for vid in ran})
    same = all(v1[vid].get("state_dict_bytes") == v2[vid].get("state_dict_bytes") for vid in ran)
    extra = f", {' '.join(args.pytest_args)}" if args.pytest_args else ""
    print(f"variants: {len(ran)} ({args.models} x {args.methods} x {args.bits} bits{extra})")
    print(f"first run (quantize + store): {first:8.1f} s")
    print(f"second run (load from cache): {second:8.1f} s   cache states: {states}, same sizes: {same}")
    print(f"ratio first / second: {first / second:.2f}x")


if __name__ == "__main__":
    main()
