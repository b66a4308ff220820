"""Wall time of a run on two xdist workers over the same run in one process (issue 17; target
<= 0.6 on both scenarios).

Two scenarios, each run as ``python -m pytest suites/`` in a subprocess with a fresh cache and
report directory (nothing reused), once with ``-n 0`` and once with ``-n 2`` (the plugin's own
scheduler: every test of one model on one worker):

- one model, 8 variants: zoo-l with hqq 2/3/4/8, bnb 4/8 and rtn 4/8;
- four models: the zoo's default run.

``-k`` (default: ``not robustness and not fuzzed``, the suites that take about a minute; pass
``--k ""`` for everything) selects the suites. It prints each scenario's wall times and their
ratio; the results.json of the two runs are compared (the cache fields aside) and a difference
is printed, since a faster run that gates differently is no speed-up.

    python benchmarks/bench_xdist.py
    python benchmarks/bench_xdist.py --k "" --scenarios models
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

ROOT = Path(__file__).resolve().parent.parent
SCENARIOS = {
    "variants": ["--qrel-models=zoo-l", "--qrel-methods=hqq,bnb,rtn", "--qrel-bits=2,3,4,8"],
    "models": [],
}
TARGET = 0.6


def run(args: list[str], k: str, workers: str) -> tuple[float, dict]:
    with tempfile.TemporaryDirectory(prefix="qrel-bench-xdist-") as tmp:
        work = Path(tmp)
        cmd = [sys.executable, "-m", "pytest", "suites/", "-q", "-p", "no:randomly", "-n", workers,
               f"--qrel-cache-dir={work / 'cache'}", f"--qrel-report-dir={work / 'report'}", *args,
               *(["-k", k] if k else [])]
        env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
        start = time.perf_counter()
        proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
        wall = time.perf_counter() - start
        if proc.returncode not in (0, 1):
            sys.exit(f"pytest -n {workers} exited {proc.returncode}:\n{proc.stdout[-3000:]}{proc.stderr[-3000:]}")
        doc = json.loads((work / "report" / "results.json").read_text())
    for v in doc["variants"]:
        v.pop("cache", None)
        v.pop("kl_base_forward_passes", None)
    return wall, doc


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--k", default="not robustness and not fuzzed")
    p.add_argument("--scenarios", default="variants,models")
    args = p.parse_args()
    for name in args.scenarios.split(","):
        one, doc_one = run(SCENARIOS[name], args.k, "0")
        two, doc_two = run(SCENARIOS[name], args.k, "2")
        same = "results.json equal" if doc_one == doc_two else "results.json DIFFER"
        print(f"{name}: -n 0 {one:.0f} s, -n 2 {two:.0f} s: -n 2 / -n 0 = {two / one:.2f} (target <= {TARGET}); "
              f"{len(doc_one['results'])} records, {same}", flush=True)


if __name__ == "__main__":
    main()
