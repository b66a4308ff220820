"""Peak RSS of the KL suite over one model's weights, the base released while each variant is
measured from its stored outputs (issue 38 item 3).

Runs ``pytest suites/test_kl.py`` on the 128,256-token checkpoint of ``fixtures/build_big_vocab.py``
(hidden 256, 2 layers: 268 MB of float32 weights; built if ``--checkpoint`` is not given) at hqq
4 and 8 bits, top-64 bounds (which do not decide on a random model: the exact KL reads the base's
stored full log-probs), 512 scored tokens of the zoo's held-out text in windows of 64, twice: on an
empty cache (the variants quantized) and again (read back). Per run it prints the subprocess's peak
RSS (``fixtures/peak_memory.py``), that over the checkpoint's weights, and the KL values, so two
checkouts (``--tree``: the code a run imports, default this one) can be compared.

    python benchmarks/bench_base_release.py
    python benchmarks/bench_base_release.py --tree /tmp/main-checkout --checkpoint /tmp/big-vocab
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tree", type=Path, default=ROOT, help="checkout whose code the runs import")
    parser.add_argument("--checkpoint", type=Path, help="the big-vocab checkpoint (default: built in a temporary directory)")
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT))
    from pytest_qrel.data import heldout_texts
    from pytest_qrel.fixtures.build_big_vocab import main as build
    from pytest_qrel.fixtures.peak_memory import run_pytest_measured

    with tempfile.TemporaryDirectory(prefix="qrel-release-") as tmp:
        out = Path(tmp)
        checkpoint = args.checkpoint or out / "big-vocab"
        if args.checkpoint is None:
            build([str(checkpoint)])
        weights = sum(p.stat().st_size for p in checkpoint.glob("*.safetensors"))
        text = out / "text.txt"
        text.write_text("\n".join(heldout_texts() * 2))
        for run in ("empty cache", "read back"):
            measured = run_pytest_measured(
                [f"{args.tree}/suites/test_kl.py", "-p", "no:randomly", "-p", "no:cacheprovider", f"--qrel-models={checkpoint}",
                 "--qrel-methods=hqq", "--qrel-bits=4,8", f"--qrel-cache-dir={out / 'cache'}", f"--qrel-report-dir={out / 'report'}",
                 f"--qrel-kl-text={text}", "--qrel-kl-context=64", "--qrel-kl-tokens=512", "--qrel-kl-topk=64",
                 "--qrel-kl-threshold=4:9,8:9"],
                cwd=out, env={**os.environ, "PYTHONPATH": str(args.tree), "MALLOC_MMAP_THRESHOLD_": "1048576"})
            records = json.loads((out / "report" / "results.json").read_text())["results"]
            kl = [(r["variant"], r["value"], r["kl_decided"]) for r in records if r["metric"] == "kl_to_base"]
            print(f"{run}: exit {measured.returncode}, peak RSS {measured.peak_rss / 1e9:.3f} GB, weights {weights / 1e9:.3f} GB, "
                  f"peak / weights {measured.peak_rss / weights:.2f}; KL {kl}")


if __name__ == "__main__":
    main()
