"""The calibration family's scoring against lm-eval's (issue 17): one zoo model on one task,
every question (as ``--qrel-task-limit=all``), timed as the family scores it (the task read and
each question's choice log-likelihoods) over ``lm_eval.simple_evaluate`` on the same model
object, task (the shipped YAML), limit and batch size (``bootstrap_iters=0``: we compute no
standard errors there either). Both sides' log-likelihoods must agree within 1e-4, question
by question and choice by choice, or the script stops. Prints ours / lm-eval's (target <= 0.7).

    python benchmarks/bench_vs_lmeval.py
    python benchmarks/bench_vs_lmeval.py --model zoo-l --task zoo_recall --batch-size 32
"""

from __future__ import annotations

import argparse
import os
import sys
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")

TARGET = 0.7


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="zoo-m")
    p.add_argument("--task", default="zoo_utilization")
    p.add_argument("--batch-size", type=int, default=64)
    args = p.parse_args()

    import numpy as np
    import torch
    from lm_eval import simple_evaluate
    from lm_eval.models.huggingface import HFLM
    from lm_eval.tasks import TaskManager

    from pytest_qrel.data.tasks import load_task, resolve_task
    from pytest_qrel.measures.choices import score_task
    from pytest_qrel.models import fixtures_dir, load_base, zoo_dir

    torch.manual_seed(0)
    loaded = load_base(args.model, str(zoo_dir() / args.model), torch.device("cpu"))
    yaml = fixtures_dir() / "tasks" / f"{args.task}.yaml"

    start = time.perf_counter()
    task = load_task(resolve_task(str(yaml), yaml.parent)).subsample(None, 0)  # --qrel-task-limit=all
    ours = score_task(loaded.model, loaded.tokenizer, task, batch_size=args.batch_size)
    ours_s = time.perf_counter() - start

    lm = HFLM(pretrained=loaded.model, tokenizer=loaded.tokenizer, batch_size=args.batch_size)
    start = time.perf_counter()
    from lm_eval.tasks._yaml_loader import load_yaml

    from pytest_qrel.data.lmeval import _resolve_data_files  # the YAML's data files, beside it

    config = _resolve_data_files(load_yaml(yaml), yaml.parent)
    out = simple_evaluate(model=lm, tasks=[config], task_manager=TaskManager(include_path=str(yaml.parent),
                                                                             include_defaults=False),
                          limit=None, bootstrap_iters=0, log_samples=True, verbosity="ERROR")
    theirs_s = time.perf_counter() - start

    samples = sorted(out["samples"][args.task], key=lambda s: s["doc_id"])
    theirs = np.array([[float(r[0]) for r in s["filtered_resps"]] for s in samples])
    if theirs.shape != ours.loglik.shape:
        sys.exit(f"Expected lm-eval to score {ours.loglik.shape} choices, but it scored {theirs.shape}")
    gap = float(np.abs(theirs - ours.loglik).max())
    if gap > 1e-4:
        sys.exit(f"log-likelihoods differ by up to {gap:.3g} (> 1e-4): the timings would not compare the same work")
    ratio = ours_s / theirs_s
    print(f"{args.model} on {args.task} ({len(task)} questions, {theirs.size} choices, batch {args.batch_size}): "
          f"ours {ours_s:.1f} s, lm-eval {theirs_s:.1f} s; largest log-likelihood difference {gap:.2g}")
    print(f"ratio ours / lm-eval: {ratio:.2f}  (target <= {TARGET}: {'met' if ratio <= TARGET else 'missed'})")


if __name__ == "__main__":
    main()
