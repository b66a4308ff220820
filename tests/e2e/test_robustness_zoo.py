"""The robustness suite over the whole zoo: every model x the 15 perturbations x intensities
4 and 16 for a 4-bit variant, as a user runs it (paper 000 §3.2, Fig. 3: 4-bit models keep
their base's robustness), and the zoo's own robustness: more edits, lower accuracy. The 4-bit
variants of the two largest pass fuzzing at issue 18's 0.9."""

import json

from pytest_qrel.models import ZOO_MODELS
from pytest_qrel.perturb import LEVELS, PERTURBATIONS


def test_every_zoo_model_under_every_perturbation_at_4_bits(pytester):
    result = pytester.runpytest("-p", "no:randomly", "--qrel-cache-dir=cache", "--qrel-methods=hqq",
                                           "--qrel-bits=4", "--qrel-qa-limit=60", "--qrel-samples=2", "--qrel-intensities=4,16",
                                           "-k", "perturbation_robustness")
    # no 4-bit variant loses robustness significantly beyond its threshold; at 60 prompts x 2
    # samples most gates could not have detected a drop of 0.05 (power before PASS): those are
    # not checked, never passed
    outcomes = result.parseoutcomes()
    assert outcomes.get("failed", 0) == 0 and outcomes.get("passed", 0) + outcomes.get("skipped", 0) == len(ZOO_MODELS) * 15 * 2
    doc = json.loads((pytester.path / "qrel-report" / "results.json").read_text())
    for r in doc["results"]:
        assert r["status"] in ("pass", "skip"), r
        if r["status"] == "pass":
            assert r["minimum_detectable"] <= r["threshold"]
    base: dict[tuple[str, str, int], float] = {}
    for r in doc["results"]:
        if r["property"] == "robustness" and "comparison" in r:
            base[(r["model"], r["perturbation"], r["intensity"])] = r["comparison"]["base"]["accuracy"]
            # the zoo's byte-level BPE spells every edited word in known pieces (issue 18)
            assert r["unknown_words"] == 0 and (r["perturbed_words"] > 0 or LEVELS[r["perturbation"]] == "word")
    assert len(base) == len(ZOO_MODELS) * 15 * 2
    pooled = {(p, i): sum(base[(m, p, i)] for m in ZOO_MODELS) / len(ZOO_MODELS) for p in PERTURBATIONS for i in (4, 16)}
    lower = [p for p in PERTURBATIONS if pooled[(p, 16)] < pooled[(p, 4)]]
    # every character-level perturbation costs more at 16 edits than at 4; word-level ones
    # differ less, since a zoo question has about six free words: min(intensity, words)
    assert {p for p in PERTURBATIONS if LEVELS[p] == "character"} <= set(lower)
    assert len(lower) >= 10
    # the models trained on noisy questions keep a share of their answers under every
    # character-level perturbation at 4 edits, where the word-level zoo's fell to 0.00-0.06; the
    # largest at least 0.3 under all 15 (issue 18; 0.53 at these 60 prompts x 2 samples, 0.55 at
    # the default 100 x 4)
    largest = ZOO_MODELS[-1]
    assert min(base[(largest, p, 4)] for p in PERTURBATIONS) >= 0.3, {p: base[(largest, p, 4)] for p in PERTURBATIONS}
    result.stdout.fnmatch_lines([f"model {ZOO_MODELS[-1]}, robustness (paper 000 Fig. 3)*", "unperturbed *", "case_change i4 *",
                                 "case_change i16 *"])


def test_the_two_largest_models_4bit_variants_pass_fuzzing_at_0_9(pytester):
    """Issue 18's aim for the default run: the 4-bit variants of the two largest zoo models agree
    with their base's greedy answers on >= 0.9 of every fuzzing batch (10 batches of 32 at 0-4
    edits, the default seed), where the gate asks 0.5. The worst batch is a draw: over 6,100
    perturbed prompts zoo-xl's agree on about 0.94 (a chance of about 0.3 each that all 10 batches
    reach 0.9) and zoo-xxl's on 0.966 / 0.957 (0.79 / 0.62). If a change to the fuzzing draws
    fails this, measure the agreement itself (benchmarks/bench_fuzz_agreement.py) before anything
    else: a fall there is the zoo or the quantizers, not the draw."""
    largest = ZOO_MODELS[-2:]
    result = pytester.runpytest("-p", "no:randomly", "--qrel-cache-dir=cache", f"--qrel-models={','.join(largest)}",
                                "--qrel-methods=hqq,bnb", "--qrel-bits=4", "-k", "fuzzed")
    outcomes = result.parseoutcomes()
    assert outcomes.get("passed") == 4 and not outcomes.get("failed") and not outcomes.get("skipped"), outcomes
    doc = json.loads((pytester.path / "qrel-report" / "results.json").read_text())
    worst = {r["variant"]: r["value"] for r in doc["results"] if r["metric"] == "answer_agreement"}
    assert len(worst) == 4 and {r["model"] for r in doc["results"]} == set(largest)
    assert all(r["status"] == "pass" and r["batches_run"] == 10 for r in doc["results"]), doc["results"]
    assert min(worst.values()) >= 0.9, worst
