"""How often a variant's greedy answers agree with its base's on perturbed prompts, the quantity
the fuzzing gate bounds from below (issue 18: "the 4-bit variants of the two largest models pass
fuzzing with agreement >= 0.9"), and what that agreement makes of the gate's *worst* batch.

The fuzzing test reports the lowest agreement of ``--qrel-fuzz-examples`` (10) hypothesis batches
of ``--qrel-fuzz-batch`` (32) prompts perturbed at 0 to the largest ``--qrel-intensities`` (4)
edits. This script measures the agreement itself on many more prompts: each of ``--prompts`` of
the zoo's robustness questions (the suite's first 100 by default) under each of the 15
perturbations at each intensity 1..``--max-intensity`` (and once unperturbed), with seeds no run
uses, greedy answers as ``measures/fuzz.py`` takes them. Then, treating a batch as 32 independent
draws at that agreement p, it prints the probability that all 10 batches reach the target share
(``P(Binomial(32, p) >= ceil(0.9 x 32))**10``): the chance that the worst batch meets the target.

    python benchmarks/bench_fuzz_agreement.py                         # zoo-xl and zoo-xxl, hqq and bnb, 4 bits
    python benchmarks/bench_fuzz_agreement.py --models zoo-l --zoo /tmp/other-zoo   # <zoo>/<model>/ holds it
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")

SEED_BASE = 1 << 33  # above hypothesis's seeds (< 2**32) and below build_zoo's training seeds (2**40 up)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", default="zoo-xl,zoo-xxl")
    p.add_argument("--methods", default="hqq,bnb")
    p.add_argument("--bits", type=int, default=4)
    p.add_argument("--zoo", type=Path, default=None, help="a folder of model folders (default: the shipped zoo)")
    p.add_argument("--prompts", type=int, default=100)
    p.add_argument("--max-intensity", type=int, default=4)
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--batches", type=int, default=10)
    p.add_argument("--target", type=float, default=0.9)
    args = p.parse_args()

    import torch

    from pytest_qrel.data.qa import run_qa_set
    from pytest_qrel.measures.fuzz import all_batches_pass, greedy_answers
    from pytest_qrel.measures.generation import normalize_answer
    from pytest_qrel.models import load_base, zoo_dir
    from pytest_qrel.options import DEFAULT_GROUP_SIZE
    from pytest_qrel.perturb import PERTURBATIONS, perturb_prompt
    from pytest_qrel.quant import get_backend
    from pytest_qrel.settings import Robustness

    torch.set_grad_enabled(False)
    zoo = args.zoo or zoo_dir()
    prompts = run_qa_set(None, args.prompts, 0).prompts
    limit = Robustness().max_new_tokens
    # (intensity, the prompts under one perturbation at it); intensity 0: the prompts themselves
    cells = [(0, list(prompts))] + [
        (i, [perturb_prompt(q, name, i, SEED_BASE + k) for k, q in enumerate(prompts)])
        for i in range(1, args.max_intensity + 1) for name in sorted(PERTURBATIONS)]
    print(f"{len(prompts)} prompts; intensities 1-{args.max_intensity} x {len(PERTURBATIONS)} perturbations, and "
          f"unperturbed; P(pass): all {args.batches} batches of {args.batch} agree on >= {args.target:g}")
    header = " ".join(f"i={i:<5}" for i in range(args.max_intensity + 1))
    print(f"{'variant':28} {header} {'mean':>6} {'P(pass)':>8}")
    for name in args.models.split(","):
        base = load_base(name, str(zoo / name), torch.device("cpu"))
        reference = [greedy_answers(base.model, base.tokenizer, texts, limit) for _, texts in cells]
        for method in args.methods.split(","):
            backend = get_backend(method)
            group = backend.group_size_for(args.bits, int(DEFAULT_GROUP_SIZE))  # as the suite quantizes
            model, _ = backend.quantize(base, args.bits, group)
            by_intensity: dict[int, list[bool]] = {}
            for (intensity, texts), ours in zip(cells, reference):
                theirs = greedy_answers(model, base.tokenizer, texts, limit)
                by_intensity.setdefault(intensity, []).extend(
                    normalize_answer(a) == normalize_answer(b) for a, b in zip(ours, theirs))
            # the mean over intensities, each weighted alike (hypothesis draws every intensity)
            shares = [sum(v) / len(v) for _, v in sorted(by_intensity.items())]
            mean = sum(shares) / len(shares)
            cols = " ".join(f"{s:<7.3f}" for s in shares)
            label = f"{name}-{method}-{args.bits}b-g{group}"
            print(f"{label:28} {cols} {mean:6.3f} {all_batches_pass(mean, args.batch, args.batches, args.target):8.2f}",
                  flush=True)
    needed = next(x / 1000 for x in range(1001) if all_batches_pass(x / 1000, args.batch, args.batches, args.target) >= 0.5)
    print(f"agreement needed for an even chance that the worst batch reaches {args.target:g}: {needed:.3f}")


if __name__ == "__main__":
    main()
