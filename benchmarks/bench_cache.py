"""How much the cache saves: the shipped KL suite run twice on an empty cache, timed end to
end (interpreter start, imports, base models, evaluation included), and the import floor
apart: the same command with ``--collect-only`` (start-up, the plugin, collection) plus importing
torch, transformers, the model class and the backends' libraries, which no cache can save; the ratio beyond it is (first - floor) /
(second - floor).

The first run quantizes every variant and stores it; the second loads them. Scenarios:
``mixed`` (default): mixed-precision variants (paper 004) whose layer choice is a 20-trial
random search, each trial scored on the calibration text, over gptq, hqq and quanto on the two
larger zoo models; ``gptq``: quantization-dominated, gptq at 2, 3 and 4 bits with that search
(ratios 0.5 and 0.9) on zoo-l (issue 17: a rerun must be >= 5x faster); ``plain``: plain quantization (awq among them) of the tiny zoo
models, cheap next to loading libraries and evaluating, so a smaller ratio; ``compress``: awq and
smoothquant at 4 and 8 bits, wanda and sparsegpt at 0.5 and 2:4, on zoo-m and zoo-l.

    python benchmarks/bench_cache.py
    python benchmarks/bench_cache.py --scenario gptq
    python benchmarks/bench_cache.py --scenario plain
    python benchmarks/bench_cache.py --scenario compress
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
MIXED = ["--qrel-quant-ratio=0.5,0.9", "--qrel-quant-trials=20"]
LIBRARIES = {"gptq": "gptqmodel", "awq": "gptqmodel", "quanto": "optimum.quanto", "bnb": "bitsandbytes"}  # hqq: always imported
SCENARIOS = {  # models, methods, bits, more options, the target of first / second (None: none)
    "mixed": ("zoo-m,zoo-l", "gptq,hqq,quanto", "2,4", MIXED, None),
    "gptq": ("zoo-l", "gptq", "2,3,4", MIXED, 5.0),
    "plain": ("zoo-m,zoo-l", "gptq,awq,hqq,quanto", "2,4", [], None),
    # issue 36's methods: calibrated quantization and pruning, each re-done or read back
    "compress": ("zoo-m,zoo-l", "awq,smoothquant,wanda,sparsegpt", "4,8", ["--qrel-sparsities=0.5,2:4"], None),
}


def run_suite(cache: Path, report: Path, args: argparse.Namespace, *extra: str) -> tuple[float, dict]:
    cmd = [
        sys.executable, "-m", "pytest", str(SUITE), "-q", "-p", "no:cacheprovider",
        f"--qrel-models={args.models}", f"--qrel-methods={args.methods}", f"--qrel-bits={args.bits}",
        f"--qrel-cache-dir={cache}", f"--qrel-report-dir={report}",
        "--qrel-kl-threshold=2:1e9,3:1e9,4:1e9,8:1e9",  # timing, not gating
        *args.pytest_args, *extra,
    ]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
    start = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    elapsed = time.perf_counter() - start
    if extra:  # the floor: nothing is run
        return elapsed, {}
    if proc.returncode != 0:
        sys.exit(f"suite failed ({proc.returncode}):\n{proc.stdout[-4000:]}\n{proc.stderr[-2000:]}")
    doc = json.loads((report / "results.json").read_text())
    return elapsed, {v["id"]: v for v in doc["variants"]}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--scenario", choices=sorted(SCENARIOS), default="mixed")
    p.add_argument("--models")
    p.add_argument("--methods")
    p.add_argument("--bits")
    p.add_argument("pytest_args", nargs="*", help="more pytest / --qrel-* options (after --)")
    args = p.parse_args()
    models, methods, bits, more, target = SCENARIOS[args.scenario]
    args.models, args.methods, args.bits = args.models or models, args.methods or methods, args.bits or bits
    args.pytest_args = [*more, *args.pytest_args]
    with tempfile.TemporaryDirectory(prefix="qrel-bench-cache-") as tmp:
        cache = Path(tmp) / "cache"
        floor, _ = run_suite(Path(tmp) / "floor-cache", Path(tmp) / "r0", args, "--collect-only")
        start = time.perf_counter()  # the libraries a run imports (the plugin imports them lazily)
        libs = ["torch", "transformers", "transformers.models.llama.modeling_llama", "hqq.core.quantize",
                *(LIBRARIES[m] for m in args.methods.split(",") if m in LIBRARIES)]
        subprocess.run([sys.executable, "-c", "import " + ", ".join(libs)], check=True, capture_output=True)
        floor += time.perf_counter() - start
        first, v1 = run_suite(cache, Path(tmp) / "r1", args)
        second, v2 = run_suite(cache, Path(tmp) / "r2", args)
    ran = [vid for vid, v in v1.items() if not v.get("skip_reason")]
    states = sorted({v2[vid].get("cache") for vid in ran})
    same = all(v1[vid].get("state_dict_bytes") == v2[vid].get("state_dict_bytes") for vid in ran)
    extra = f", {' '.join(args.pytest_args)}" if args.pytest_args else ""
    print(f"variants: {len(ran)} ({args.models} x {args.methods} x {args.bits} bits{extra})")
    print(f"first run (quantize + store): {first:8.1f} s")
    print(f"second run (load from cache): {second:8.1f} s   cache states: {states}, same sizes: {same}")
    print(f"import floor (--collect-only, and importing torch, transformers, the backends): {floor:8.1f} s")
    beyond = (first - floor) / max(second - floor, 1e-9)
    print(f"ratio first / second: {first / second:.2f}x; beyond the floor: {beyond:.2f}x"
          + (f"  (target >= {target:g}x beyond the import floor: {'met' if beyond >= target else 'missed'})"
             if target else ""))


if __name__ == "__main__":
    main()
