"""False alarms and power of the calibration and confidence gates (issue 15), over many
subsampling seeds, with the gates' own code (hypotheses, Holm correction, power before PASS).

Each zoo model's base, its default 8-bit variants (hqq, bnb) and 2-bit hqq zoo-l are scored
once on a pool of each zoo task's questions; every seed then draws the run's questions
(``--task-limit`` per task, as ``--qrel-task-limit`` does) and decides one model's family
as a run would: base against itself and against each 8-bit variant (a run with any failing
metric is a false alarm: target <= 1%), and 2-bit zoo-l (a run in which some metric fails:
target >= 99%). Prints the fractions and how many metrics were checked / not checked.

    python benchmarks/bench_false_alarm.py                # 200 seeds
    python benchmarks/bench_false_alarm.py --seeds 50 --pool 1500
"""

from __future__ import annotations

import argparse
import os
import time
from dataclasses import replace

import numpy as np

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=200)
    parser.add_argument("--pool", type=int, default=3000, help="questions scored per task, drawn once")
    parser.add_argument("--task-limit", type=int, default=500)
    args = parser.parse_args()

    import torch

    from pytest_qrel.config import QrelConfig
    from pytest_qrel.data.tasks import ZOO_TASKS, zoo_task
    from pytest_qrel.measures.choices import ChoiceScores, score_task
    from pytest_qrel.measures.drift import hypotheses
    from pytest_qrel.measures.family import decide, judge
    from pytest_qrel.models import ZOO_MODELS
    from pytest_qrel.session import QrelSession

    torch.set_num_threads(max(1, os.cpu_count() or 1))
    start = time.perf_counter()
    config = QrelConfig.from_values({"qrel_models": "", "qrel_methods": "hqq,bnb", "qrel_bits": "2,8",
                                     "qrel_no_cache": True}, os.getcwd())
    session = QrelSession(config, active=True, is_worker=False)
    pools = {name: zoo_task(name).subsample(args.pool, seed=12345) for name in ZOO_TASKS}
    wanted = {v.id: v for v in session.variants
              if not v.skip_reason and (v.bits == 8 or (v.bits == 2 and v.method == "hqq" and v.model == "zoo-l"))}
    scores: dict[str, dict[str, dict[str, ChoiceScores]]] = {}  # model -> label -> task -> scores
    for model in ZOO_MODELS:
        variants = [v for v in wanted.values() if v.model == model]
        base = session.store.base(variants[0])
        scores[model] = {"base": {t: score_task(base.model, base.tokenizer, task) for t, task in pools.items()}}
        for v in variants:
            q = session.store.quantized(v)
            scores[model][v.id] = {t: score_task(q, base.tokenizer, task) for t, task in pools.items()}
        session.store.release()
    scored = time.perf_counter() - start

    def take(s: ChoiceScores, idx: np.ndarray) -> ChoiceScores:
        return replace(s, loglik=s.loglik[idx], lengths=s.lengths[idx], labels=s.labels[idx])

    def run(model: str, labels: list[str], seed: int) -> tuple[bool, int, int]:
        """(any metric failed, checked, not checked) of one run's family of ``labels`` (each
        against the base; "self" is the base against itself)."""
        family, n = {}, {}
        for t, task in pools.items():
            idx = task.sample_index(args.task_limit, seed)
            b = take(scores[model]["base"][t], idx)
            for label in labels:
                q = b if label == "self" else take(scores[model][label][t], idx)
                for key, h in hypotheses(b, q, seed=seed).items():
                    family[(label, t, key)] = h
            n[t] = len(idx)
        decisions = decide(family, config.drift_threshold, config.alpha, config.correction)
        failed = checked = unchecked = 0
        for k, h in family.items():
            m = judge(h, decisions[k], config.correction, len(family), "--qrel-task-limit")
            failed += decisions[k].failed
            checked += m.unchecked is None
            unchecked += m.unchecked is not None
        return failed > 0, checked, unchecked

    alarms = {model: 0 for model in ZOO_MODELS}
    caught, totals = 0, np.zeros(2, int)
    for seed in range(args.seeds):
        for model in ZOO_MODELS:
            eights = [v for v in scores[model] if v != "base" and wanted[v].bits == 8]
            failed, checked, unchecked = run(model, ["self", *eights], seed)
            alarms[model] += failed
            totals += (checked, unchecked)
        failed, _, _ = run("zoo-l", ["zoo-l-hqq-2b-g64"], seed)
        caught += failed
    print(f"seeds {args.seeds}, {args.task_limit} questions per task from pools of {args.pool}, "
          f"alpha {config.alpha['ece']:g} ({config.correction}); scoring took {scored:.0f} s, "
          f"{time.perf_counter() - start - scored:.0f} s the seeds")
    for model, count in alarms.items():
        print(f"false alarms, {model} base vs itself and its 8-bit variants: {count}/{args.seeds} = "
              f"{count / args.seeds:.1%} of runs (target <= 1%)")
    total = sum(alarms.values())
    print(f"false alarms, all models: {total}/{args.seeds * len(alarms)} = {total / (args.seeds * len(alarms)):.2%}")
    print(f"  metrics checked {totals[0]}, not checked (no power at this size) {totals[1]}")
    print(f"power, 2-bit hqq zoo-l fails: {caught}/{args.seeds} = {caught / args.seeds:.1%} of runs (target >= 99%)")


if __name__ == "__main__":
    main()
