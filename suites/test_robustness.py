"""Perturbation robustness: a quantized variant's sampled answers to open-ended questions
under each of paper 000's 15 natural perturbations (§3.2, App. B) at each intensity,
against its full-precision base under the same perturbation and against its own
unperturbed prompts (accuracy, and AUROC of -entropy for correctness: Fig. 3). A harm
fails only when it passes its threshold and is significant after the run's correction.

The fuzzing test lets hypothesis draw batches of perturbed prompts
(``pytest_qrel.strategies.perturbed_prompts``, ``@given`` inside ``measures/fuzz.py``) and
fails when the variant's greedy answers agree with its base's on less than
--qrel-fuzz-agreement of a batch; the report shows the batch hypothesis shrank it to."""

from pytest_qrel.matrix import suite_marks

pytestmark = suite_marks("robustness")


def test_perturbation_robustness(qrel, qrel_variant, qrel_perturbation):
    qrel.gate("robustness", qrel_variant, qrel_perturbation)


def test_fuzzed_answers_agree(qrel, qrel_variant):
    qrel.gate("fuzz", qrel_variant)
