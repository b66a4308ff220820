"""The zoo's builder (fixtures/build_zoo.py, issue 18): noise-robust training never trains on
a prompt the default evaluation makes, and the shipped corpus marks the robustness people."""

import random

from pytest_qrel.fixtures import build_zoo
from pytest_qrel.perturb import PERTURBATIONS, perturb_prompt


def test_a_noisy_training_question_that_equals_an_evaluated_prompt_is_drawn_again():
    question = build_zoo.QUESTIONS["city"].format(name="anna smith")
    first = build_zoo.noisy(question, random.Random(5), frozenset())
    assert first != question
    again = build_zoo.noisy(question, random.Random(5), frozenset({first}))
    assert again != first and again != question


def test_evaluation_prompts_are_every_robustness_question_under_every_perturbation():
    entities = build_zoo.entities()
    robust = [e for e in entities if e["robustness"]]
    assert len(robust) == len(entities) // build_zoo.ROBUSTNESS_EVERY
    avoid = build_zoo.evaluation_prompts(robust[:3])
    q = build_zoo.QUESTIONS["pet"].format(**robust[2])
    assert {perturb_prompt(q, name, i, 0) for name in PERTURBATIONS for i in build_zoo.EVAL_INTENSITIES} <= avoid
    # training draws its perturbations with seeds no run uses
    assert build_zoo.TRAIN_SEED_BASE >= 1 << 40


def test_shipped_corpus_marks_the_robustness_people_in_every_stratum():
    rows = build_zoo._read_jsonl(build_zoo.DATA / "zoo_qa.jsonl")
    robust = [r for r in rows if r["robustness"]]
    assert {r["entity"] % build_zoo.ROBUSTNESS_EVERY for r in robust} == {0}
    strata = {(r["task"], r["trained"]) for r in robust}
    assert strata == {("recall", True), ("utilization", True), ("utilization", False)}
