"""Time of the KL suite on the zoo over the bare forward passes it needs (issue 16; target <= 1.3).

For each zoo model and each of its variants (``--methods`` x ``--bits``), in one process:
every variant is quantized first (not timed), then

- bare: one plain forward pass of the base over the KL text's batches (full logits, no_grad),
  and one of each variant: what any KL measurement must run at the least;
- cold: ``measures["kl"].outcome`` of every variant with an empty cache of base outputs: the
  first variant computes the base's top-k shards (one base pass, the summaries, the writes),
  the others read them back; the ratio is over the base pass plus the variants' passes;
- warm: the same in a fresh session on the same cache (the base's shards on disk, as in a
  rerun or on another worker): the ratio is over the variants' passes alone.

Both ratios include the bounds, the statistics and any exact recompute the gate asked for
(``kl_decided`` is printed per variant).

    python benchmarks/bench_kl_overhead.py                       # every zoo model, hqq 4 and 8 bits
    python benchmarks/bench_kl_overhead.py --models zoo-l --methods hqq,rtn --bits 2,4,8
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")


def session(model: str, methods: str, bits: str, cache: Path):
    from pytest_qrel.session import QrelConfig, QrelSession

    values = {"qrel_models": model, "qrel_methods": methods, "qrel_bits": bits, "qrel_cache_dir": str(cache),
              "qrel_report_dir": str(cache / "report"), "qrel_kl_threshold": ",".join(f"{b}:9" for b in bits.split(","))}
    return QrelSession(QrelConfig.from_values(values, Path.cwd()), active=True, is_worker=False)


def forward_seconds(model, batches) -> float:
    import torch

    start = time.perf_counter()
    with torch.no_grad():
        for b in batches:
            model(input_ids=b.input_ids, attention_mask=b.attention_mask).logits
    return time.perf_counter() - start


def main() -> None:
    from pytest_qrel.models import ZOO_MODELS

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--models", default=",".join(ZOO_MODELS))
    p.add_argument("--methods", default="hqq")
    p.add_argument("--bits", default="4,8")
    args = p.parse_args()
    totals = {"cold": [0.0, 0.0], "warm": [0.0, 0.0]}
    for model in args.models.split(","):
        with tempfile.TemporaryDirectory(prefix="qrel-bench-kl-overhead-") as tmp:
            cache = Path(tmp)
            s = session(model, args.methods, args.bits, cache)
            variants = [v for v in s.variants if not v.skip_reason]
            for v in variants:
                s.quantized_model(v)  # quantized (and cached) before anything is timed
            kl = s.measures["kl"]
            batches = kl.text(variants[0]).batches
            base = s.base_model(variants[0]).model
            forward_seconds(base, batches[:1])  # warm-up
            bare_base = forward_seconds(base, batches)
            bare_variants = sum(forward_seconds(s.quantized_model(v), batches) for v in variants)
            start = time.perf_counter()
            decided = [kl.outcome(v)[0].measurement.detail.get("kl_decided", "?") for v in variants]
            cold = time.perf_counter() - start
            warm_session = session(model, args.methods, args.bits, cache)
            for v in variants:
                warm_session.quantized_model(v)
            warm_session.base_model(variants[0])
            warm_session.measures["kl"].text(variants[0])  # the base loaded and the text tokenized, as cold
            start = time.perf_counter()
            for v in variants:
                warm_session.measures["kl"].outcome(v)
            warm = time.perf_counter() - start
            passes = [warm_session.variant_info[v.id].get("kl_base_forward_passes") for v in variants]
            tokens = sum(int(b.score_mask.sum()) for b in batches)
            print(f"{model}: {len(variants)} variants, {tokens} scored tokens; bare base {bare_base:.2f} s, "
                  f"variants {bare_variants:.2f} s; KL cold {cold:.2f} s = {cold / (bare_base + bare_variants):.2f}x "
                  f"(base + variants), warm {warm:.2f} s = {warm / bare_variants:.2f}x (variants); decided: "
                  f"{', '.join(decided)}; base passes when warm: {passes}", flush=True)
            totals["cold"][0] += cold
            totals["cold"][1] += bare_base + bare_variants
            totals["warm"][0] += warm
            totals["warm"][1] += bare_variants
    for name, (kl_time, bare) in totals.items():
        print(f"all models, {name}: KL {kl_time:.1f} s / bare forward passes {bare:.1f} s = {kl_time / bare:.2f}x "
              "(target <= 1.3)")


if __name__ == "__main__":
    main()
