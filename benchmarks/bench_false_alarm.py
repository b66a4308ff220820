"""False alarms and power of the family-wise gates (issue 15) over many subsampling seeds,
with the gates' own code (hypotheses, Holm correction, power before PASS): calibration and
confidence (one family per model over the zoo tasks) and robustness (one family per model
over the 30 (perturbation, intensity) conditions of the default run).

Each zoo model's base, its default 8-bit variants (hqq, bnb) and 2-bit hqq zoo-l are scored
once on a pool of each zoo task's questions and of the zoo's QA prompts (under every
condition; answers are sampled with a seed per prompt, so a subsample of the pool's answers
is exactly what a run on those prompts samples); every seed then draws the run's questions
(``--task-limit`` per task, as ``--qrel-task-limit`` does; ``--qa-limit`` prompts, as
``--qrel-qa-limit`` does) and decides each model's family as a run would: base against
itself and against each 8-bit variant (a run with any failing metric is a false alarm:
target <= 1%), and 2-bit zoo-l (a run in which some metric fails: target >= 99%). Prints the
fractions per property and in all, and how many metrics were checked / not checked.

    python benchmarks/bench_false_alarm.py                       # 200 seeds, both families
    python benchmarks/bench_false_alarm.py --properties robustness --seeds 50 --qa-pool 300
"""

from __future__ import annotations

import argparse
import os
import time
from dataclasses import replace

import numpy as np

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")

POWER_VARIANT = "zoo-l-hqq-2b-g64"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=200)
    parser.add_argument("--properties", default="calibration,robustness",
                        help="families to measure: calibration (with confidence), robustness")
    parser.add_argument("--pool", type=int, default=3000, help="questions scored per task, drawn once")
    parser.add_argument("--task-limit", type=int, default=500)
    parser.add_argument("--qa-pool", type=int, default=300, help="QA prompts scored under every condition, drawn once")
    parser.add_argument("--qa-limit", type=int, default=100)
    args = parser.parse_args()
    families = [p.strip() for p in args.properties.split(",") if p.strip()]
    if not set(families) <= {"calibration", "robustness"}:
        parser.error(f"--properties: expected calibration and/or robustness, got {args.properties!r}")

    import torch

    from pytest_qrel.config import QrelConfig
    from pytest_qrel.data.tasks import ZOO_TASKS, zoo_task
    from pytest_qrel.measures import drift, robustness
    from pytest_qrel.measures.choices import ChoiceScores, score_task
    from pytest_qrel.measures.family import decide, judge
    from pytest_qrel.measures.generation import QAScores
    from pytest_qrel.models import ZOO_MODELS
    from pytest_qrel.session import QrelSession

    torch.set_num_threads(max(1, os.cpu_count() or 1))
    start = time.perf_counter()
    config = QrelConfig.from_values({"qrel_models": "", "qrel_methods": "hqq,bnb", "qrel_bits": "2,8",
                                     "qrel_no_cache": True, "qrel_qa_limit": str(args.qa_pool)}, os.getcwd())
    session = QrelSession(config, active=True, is_worker=False)
    rmeasure = robustness.RobustnessMeasure(config, session.store)
    rsettings = config.property_settings["robustness"]
    conditions = [robustness.CLEAN] + [(p, i) for p in rsettings.perturbations for i in rsettings.intensities]
    pools = {name: zoo_task(name).subsample(args.pool, seed=12345) for name in ZOO_TASKS}
    wanted = {v.id: v for v in session.variants
              if not v.skip_reason and (v.bits == 8 or v.id == POWER_VARIANT)}
    # model -> label ("base" or a variant id) -> task or condition -> scores
    scores: dict[str, dict[str, dict[object, object]]] = {}
    for model in ZOO_MODELS:
        variants = [v for v in wanted.values() if v.model == model]
        base = session.store.base(variants[0])
        models = {"base": base.model, **{v.id: session.store.quantized(v) for v in variants}}
        scores[model] = {}
        for label, m in models.items():
            scores[model][label] = {}
            if "calibration" in families:
                scores[model][label].update({t: score_task(m, base.tokenizer, task) for t, task in pools.items()})
            if "robustness" in families:
                scores[model][label].update(rmeasure.score(m, base.tokenizer, conditions))
        session.store.release()
        print(f"scored {model}: {time.perf_counter() - start:.0f} s", flush=True)
    scored = time.perf_counter() - start

    def take_choices(s: ChoiceScores, idx: np.ndarray) -> ChoiceScores:
        return replace(s, loglik=s.loglik[idx], lengths=s.lengths[idx], labels=s.labels[idx])

    def take_qa(s: QAScores, idx: np.ndarray) -> QAScores:
        return QAScores(s.correct[idx], s.entropy[idx], s.ref_loglik[idx], s.ref_brier[idx],
                        tuple(s.answers[i] for i in idx), None if s.finite is None else s.finite[idx])

    def calibration_family(model: str, labels: list[str], seed: int) -> tuple[dict, dict]:
        family = {}
        for t, task in pools.items():
            idx = task.sample_index(args.task_limit, seed)
            b = take_choices(scores[model]["base"][t], idx)
            for label in labels:
                q = b if label == "self" else take_choices(scores[model][label][t], idx)
                family.update({(label, t, key): h for key, h in drift.hypotheses(b, q, seed=seed).items()})
        return family, session.measures["calibration"].thresholds()

    def robustness_family(model: str, labels: list[str], seed: int) -> tuple[dict, dict]:
        idx = np.sort(np.random.default_rng([seed, 77]).choice(args.qa_pool, size=args.qa_limit, replace=False))
        rows = {label: {c: take_qa(scores[model][label][c], idx) for c in conditions}
                for label in {"base", *labels} - {"self"}}
        family = {}
        bc = rows["base"][robustness.CLEAN]
        for label in labels:
            own = rows["base" if label == "self" else label]
            for cond in conditions[1:]:
                hyps, _ = robustness.hypotheses(rows["base"][cond], own[cond], bc, own[robustness.CLEAN],
                                                rsettings.threshold, seed)
                family.update({(label, cond, key): h for key, h in hyps.items()})
        return family, rsettings.threshold

    builders = {"calibration": calibration_family, "robustness": robustness_family}

    def run(prop: str, model: str, labels: list[str], seed: int) -> tuple[bool, int, int]:
        """(any metric failed, checked, not checked) of one run's family of ``labels`` (each
        against the base; "self" is the base against itself). A metric that cannot be checked
        at all (no hypothesis: e.g. a drop larger than the base's accuracy) counts as neither."""
        family, thresholds = builders[prop](model, labels, seed)
        decisions = decide(family, thresholds, config.alpha, config.correction)
        failed = checked = 0
        for k, h in family.items():
            m = judge(h, decisions[k], config.correction, len(family), "--qrel-task-limit")
            failed += decisions[k].failed
            checked += m.unchecked is None
            if decisions[k].failed and labels != [POWER_VARIANT]:  # a false alarm: say which, to look into
                print(f"  false alarm: seed {seed}, {prop}, {model}, {' / '.join(map(str, k))}: value {m.value:.4g}, "
                      f"threshold {thresholds.get(k[-1], float('nan')):g}, adjusted p {m.detail.get('adjusted_pvalue', float('nan')):.3g}",
                      flush=True)
        return failed > 0, checked, len(family) - checked

    alarms = {(p, m): 0 for p in families for m in ZOO_MODELS}
    any_alarm = {m: 0 for m in ZOO_MODELS}
    caught = {p: 0 for p in families}
    caught_any = 0
    totals = {p: np.zeros(2, int) for p in families}
    for seed in range(args.seeds):
        for model in ZOO_MODELS:
            eights = [v for v in scores[model] if v != "base" and wanted[v].bits == 8]
            hit = False
            for prop in families:
                failed, checked, unchecked = run(prop, model, ["self", *eights], seed)
                alarms[(prop, model)] += failed
                totals[prop] += (checked, unchecked)
                hit |= failed
            any_alarm[model] += hit
        hit = False
        for prop in families:
            failed, _, _ = run(prop, "zoo-l", [POWER_VARIANT], seed)
            caught[prop] += failed
            hit |= failed
        caught_any += hit
        if (seed + 1) % 10 == 0:
            # running counts, so a run stopped early still says what it measured
            print(f"  {seed + 1} seeds, {time.perf_counter() - start - scored:.0f} s: false alarms (any family) "
                  f"{sum(any_alarm.values())}/{(seed + 1) * len(ZOO_MODELS)}, power {caught_any}/{seed + 1}", flush=True)
    n = args.seeds
    print(f"seeds {n}; calibration: {args.task_limit} questions per task from pools of {args.pool}; robustness: "
          f"{args.qa_limit} prompts from a pool of {args.qa_pool} under {len(conditions) - 1} conditions; "
          f"alpha {config.alpha['ece']:g} ({config.correction}); scoring took {scored:.0f} s, "
          f"the seeds {time.perf_counter() - start - scored:.0f} s")
    for prop in families:
        for model in ZOO_MODELS:
            count = alarms[(prop, model)]
            print(f"false alarms, {prop}, {model} base vs itself and its 8-bit variants: {count}/{n} = "
                  f"{count / n:.1%} of runs (target <= 1%)")
        total = sum(alarms[(prop, m)] for m in ZOO_MODELS)
        print(f"false alarms, {prop}, all models: {total}/{n * len(ZOO_MODELS)} = {total / (n * len(ZOO_MODELS)):.2%}; "
              f"metrics checked {totals[prop][0]}, not checked (no power at this size) {totals[prop][1]}")
        print(f"power, {prop}, 2-bit hqq zoo-l fails: {caught[prop]}/{n} = {caught[prop] / n:.1%} of runs")
    total = sum(any_alarm.values())
    print(f"false alarms, any family, all models: {total}/{n * len(ZOO_MODELS)} = {total / (n * len(ZOO_MODELS)):.2%} "
          f"(target <= 1%)")
    print(f"power, any family, 2-bit hqq zoo-l fails: {caught_any}/{n} = {caught_any / n:.1%} of runs (target >= 99%)")


if __name__ == "__main__":
    main()
