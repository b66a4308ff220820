"""Sampled answers per second of the robustness suite's sampler over transformers' ``generate``
(issue 17, item 7; target >= 1).

Both draw the robustness suite's default answers: ``--qrel-samples`` (4) answers of at most
``--qrel-max-new-tokens`` (20) tokens per prompt at ``--qrel-temperature`` (0.7), for the zoo's
QA prompts (``--prompts``, default 100, the suite's default ``--qrel-qa-limit``), on the same
model in the same process:

- qrel: ``sampling.sample_answers`` as the suite calls it (one prefill per prompt, its KV cache
  repeated for the samples, batched across prompts by length, stopping when every sequence
  has; also the per-step entropies the suite needs);
- generate: ``model.generate(do_sample=True, temperature, num_return_sequences, max_new_tokens,
  eos_token_id=<the suite's stop tokens>)`` over the same prompts, left-padded, in batches of the
  same size as qrel's (``GENERATION_ROWS // samples`` prompts), ``output_scores`` on (the
  entropies).

Each is timed ``--repeats`` times after a warm-up; the best time counts.

    python benchmarks/bench_generation.py                    # zoo-m and zoo-l, 100 prompts
    python benchmarks/bench_generation.py --models zoo-xs --prompts 300
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")


def best(fn, repeats: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    import torch

    from pytest_qrel.data.qa import zoo_qa
    from pytest_qrel.measures.generation import stop_token_ids
    from pytest_qrel.models import load_base, resolve_model
    from pytest_qrel.options import DEFAULT_QA_LIMIT
    from pytest_qrel.sampling import GENERATION_ROWS, sample_answers

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--models", default="zoo-m,zoo-l")
    p.add_argument("--prompts", type=int, default=int(DEFAULT_QA_LIMIT))
    p.add_argument("--samples", type=int, default=4)
    p.add_argument("--temperature", type=float, default=0.7)
    p.add_argument("--max-new-tokens", type=int, default=20)
    p.add_argument("--repeats", type=int, default=3)
    args = p.parse_args()
    torch.manual_seed(0)
    prompts = list(zoo_qa().prompts)[: args.prompts]
    for name in args.models.split(","):
        base = load_base(*resolve_model(name), torch.device("cpu"))
        model, tok = base.model, base.tokenizer
        ids = tok(prompts)["input_ids"]
        stops = sorted(stop_token_ids(tok))
        answers = len(prompts) * args.samples

        def qrel() -> None:
            sample_answers(model, ids, list(range(len(ids))), args.samples, args.temperature, args.max_new_tokens, stops)

        per_pass = max(1, GENERATION_ROWS // args.samples)
        tok.padding_side = "left"
        pad = tok.pad_token_id if tok.pad_token_id is not None else stops[0]

        def generate() -> None:
            with torch.no_grad():
                for i in range(0, len(prompts), per_pass):
                    enc = tok(prompts[i : i + per_pass], return_tensors="pt", padding=True)
                    model.generate(**enc, do_sample=True, temperature=args.temperature, top_k=0, top_p=1.0,
                                   num_return_sequences=args.samples, max_new_tokens=args.max_new_tokens,
                                   eos_token_id=stops, pad_token_id=pad, output_scores=True,
                                   return_dict_in_generate=True)

        q, g = best(qrel, args.repeats), best(generate, args.repeats)
        print(f"{name}: {len(prompts)} prompts x {args.samples} samples, <= {args.max_new_tokens} new tokens, "
              f"T={args.temperature}: qrel {answers / q:,.0f} answers/s ({q:.2f} s), generate {answers / g:,.0f} "
              f"answers/s ({g:.2f} s); qrel / generate = {g / q:.2f}x (target >= 1)", flush=True)


if __name__ == "__main__":
    main()
