"""Our multiple-choice scores against lm-eval's own: the same zoo model and the shipped
task YAMLs run through lm-eval's HFLM, per-choice log-likelihoods within 1e-4, and
accuracy equal to lm-eval's ``acc`` and ``acc_norm`` question by question."""

from pathlib import Path

import numpy as np
import pytest
import torch

from pytest_qrel.data.tasks import ZOO_TASKS, load_task, resolve_task, zoo_task
from pytest_qrel.measures.choices import score_task
from pytest_qrel.models import fixtures_dir, load_base, zoo_dir

lm_eval = pytest.importorskip("lm_eval", reason="the cross-check needs the lmeval extra")

TASKS_DIR = fixtures_dir() / "tasks"
LIMIT = 150  # documents per task: every choice of each is one lm-eval request


@pytest.fixture(scope="module")
def zoo_m():
    return load_base("zoo-m", str(zoo_dir() / "zoo-m"), torch.device("cpu"))


def _lmeval_task(name: str, path: Path | None = None):
    """The task as lm-eval itself builds it from its YAML, its first LIMIT documents."""
    from lm_eval.tasks import TaskManager
    from lm_eval.tasks._yaml_loader import load_yaml

    from pytest_qrel.data.task_files import resolve_data_files

    path = path or TASKS_DIR / f"{name}.yaml"
    cfg = resolve_data_files(load_yaml(path), path.parent)
    task = next(iter(TaskManager(include_path=str(path.parent), include_defaults=False).load([cfg])["tasks"].values()))
    task.build_all_requests(limit=LIMIT, rank=0, world_size=1)
    return task


@pytest.mark.parametrize("name", list(ZOO_TASKS))
def test_loglikelihoods_and_accuracy_equal_lm_evals(zoo_m, name):
    from lm_eval.models.huggingface import HFLM

    task = _lmeval_task(name)
    lm = HFLM(pretrained=zoo_m.model, tokenizer=zoo_m.tokenizer, batch_size=64)
    responses = lm.loglikelihood(task.instances, disable_tqdm=True)
    by_doc: dict[int, list] = {}
    for inst, (ll, greedy) in zip(task.instances, responses):
        by_doc.setdefault(inst.doc_id, []).append((inst.idx, ll, greedy, inst.doc))
    docs = sorted(by_doc)
    theirs = np.array([[ll for _, ll, _, _ in sorted(by_doc[d], key=lambda r: r[0])] for d in docs])
    metrics = [task.process_results(by_doc[d][0][3], [(ll, g) for _, ll, g, _ in sorted(by_doc[d], key=lambda r: r[0])])
               for d in docs]

    # our scores on the same questions, read natively from the JSONL (no lm-eval involved)
    ours_task = zoo_task(name)
    ours_task = type(ours_task)(
        name, ours_task.contexts[: len(docs)], ours_task.continuations[: len(docs)], ours_task.choices[: len(docs)],
        ours_task.labels[: len(docs)], ours_task.stratum, len(docs),
    )
    ours = score_task(zoo_m.model, zoo_m.tokenizer, ours_task)
    assert ours.loglik.shape == theirs.shape == (LIMIT, 4)
    np.testing.assert_allclose(ours.loglik, theirs, atol=1e-4, rtol=0)
    acc = (ours.predictions == ours.labels).astype(float)
    acc_norm = (ours.predictions_norm == ours.labels).astype(float)
    assert acc.tolist() == [m["acc"] for m in metrics]
    assert acc_norm.tolist() == [m["acc_norm"] for m in metrics]
    # neither always right nor always wrong: the equality of accuracies has teeth
    assert 0.0 < acc.mean() < 1.0 and 0.0 < acc_norm.mean() < 1.0


def test_shipped_yaml_loads_the_same_questions_as_the_native_reader():
    ref = resolve_task(str(TASKS_DIR / "zoo_recall.yaml"), Path.cwd())
    through_lmeval, native = load_task(ref), zoo_task("zoo_recall")
    assert ref.kind == "yaml" and ref.name == "zoo_recall"
    assert len(through_lmeval) == len(native) == 3000
    assert through_lmeval.contexts == native.contexts
    assert through_lmeval.continuations == native.continuations
    assert through_lmeval.labels == native.labels


MULTI_TOKEN_YAML = """
task: zoo_recall_phrases
dataset_path: json
dataset_kwargs:
  data_files:
    test: phrases.jsonl
test_split: test
output_type: multiple_choice
doc_to_text: question
doc_to_choice: choices
doc_to_target: label
"""


def test_multi_token_choices_through_a_local_yaml_equal_lm_evals(zoo_m, tmp_path):
    """Choices of two to four tokens and of different lengths: each choice is its own
    sequence (no shared one-token pass), the path real lm-eval tasks take."""
    import json

    from lm_eval.models.huggingface import HFLM

    rows = [json.loads(line) for line in (fixtures_dir() / "data" / "zoo_qa.jsonl").read_text().splitlines()[:LIMIT]]
    with (tmp_path / "phrases.jsonl").open("w") as fh:
        for i, r in enumerate(rows):
            choices = [("the " * (1 + (i + k) % 3)) + c for k, c in enumerate(r["choices"])]
            fh.write(json.dumps({"question": r["question"], "choices": choices, "label": r["label"]}) + "\n")
    (tmp_path / "phrases.yaml").write_text(MULTI_TOKEN_YAML)
    task = _lmeval_task("zoo_recall_phrases", tmp_path / "phrases.yaml")
    lm = HFLM(pretrained=zoo_m.model, tokenizer=zoo_m.tokenizer, batch_size=64)
    responses = [ll for ll, _ in lm.loglikelihood(task.instances, disable_tqdm=True)]
    theirs = np.array(responses).reshape(LIMIT, 4)  # instances come doc by doc, choice by choice

    ours_task = load_task(resolve_task(str(tmp_path / "phrases.yaml"), tmp_path))
    assert len(ours_task) == LIMIT and {len(c.split()) for cs in ours_task.continuations for c in cs} == {2, 3, 4}
    ours = score_task(zoo_m.model, zoo_m.tokenizer, ours_task)
    np.testing.assert_allclose(ours.loglik, theirs, atol=1e-4, rtol=0)
