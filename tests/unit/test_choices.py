"""Multiple-choice scoring and tasks: the engine's choice log-likelihoods against a plain
one-sequence-at-a-time computation on a zoo model, whatever the batching; tasks and their
subsampling."""

import numpy as np
import pytest
import torch

from pytest_qrel.data.tasks import ZOO_TASKS, zoo_task
from pytest_qrel.engine import choice_loglikelihoods, encode_pairs
from pytest_qrel.models import load_base, zoo_dir


@pytest.fixture(scope="module")
def zoo_xs():
    return load_base("zoo-xs", str(zoo_dir() / "zoo-xs"), torch.device("cpu"))


def _reference(model, tokenizer, context: str, continuation: str) -> float:
    """log p(continuation | context): one unpadded sequence, summed token log-probs."""
    ctx, cont = encode_pairs(tokenizer, [(context, continuation)])[0]
    ids = torch.tensor([ctx + cont])
    with torch.no_grad():
        logprobs = torch.log_softmax(model(input_ids=ids).logits[0].double(), -1)
    return float(sum(logprobs[len(ctx) - 1 + i, t] for i, t in enumerate(cont)))


def test_choice_loglikelihoods_equal_one_sequence_at_a_time(zoo_xs):
    task = zoo_task("zoo_recall").subsample(12, seed=1)
    questions = list(zip(task.contexts, task.continuations))
    # a question with choices of several tokens (each choice its own row) and one whose
    # context ends in a space (moved to the continuation, as lm-eval does)
    questions.append((task.contexts[0], (" the paris", " lyon", " the the nice")))
    questions.append((task.contexts[1] + " ", ("paris", "lyon")))
    want = [[_reference(zoo_xs.model, zoo_xs.tokenizer, c, k) for k in conts] for c, conts in questions]
    for batch_size in (1, 5, 1024):
        got, bad = choice_loglikelihoods(zoo_xs.model, zoo_xs.tokenizer, questions, batch_size=batch_size)
        assert bad == 0
        for g, w in zip(got, want):
            np.testing.assert_allclose(g, w, atol=2e-5, rtol=0)
    assert [len(g) for g in got] == [4] * 12 + [3, 2]


def test_choice_scoring_refuses_empty_context_and_empty_continuation(zoo_xs):
    with pytest.raises(ValueError, match="Expected a non-empty context"):
        choice_loglikelihoods(zoo_xs.model, zoo_xs.tokenizer, [("", (" a",))])
    with pytest.raises(ValueError, match="Expected continuation '' to add at least one token"):
        choice_loglikelihoods(zoo_xs.model, zoo_xs.tokenizer, [("question :", ("",))])


def test_nan_logits_are_counted_per_question(zoo_xs):
    class Spiky(torch.nn.Module):
        def __init__(self, inner):
            super().__init__()
            self.inner = inner

        def get_output_embeddings(self):
            return self.inner.get_output_embeddings()

        def forward(self, input_ids, attention_mask):
            out = self.inner(input_ids=input_ids, attention_mask=attention_mask)
            out.logits[0] = float("nan")  # the first row of every batch
            return out

    task = zoo_task("zoo_recall").subsample(6, seed=0)
    got, bad = choice_loglikelihoods(Spiky(zoo_xs.model), zoo_xs.tokenizer, list(zip(task.contexts, task.continuations)),
                                     batch_size=3)
    assert bad == 2 and sum(any(np.isnan(g)) for g in got) == 2


def test_zoo_tasks_and_subsampling():
    sizes = {name: len(zoo_task(name)) for name in ZOO_TASKS}
    assert sizes == {"zoo_recall": 3000, "zoo_utilization": 500, "zoo_utilization_heldout": 500}
    task = zoo_task("zoo_utilization")
    a, b, c = task.subsample(100, 0), task.subsample(100, 0), task.subsample(100, 1)
    assert a == b and a.contexts != c.contexts and len(a) == 100 and a.questions_total == 500
    assert len(set(a.contexts)) == 100  # without replacement
    assert task.subsample(None, 0).labels == task.labels and task.subsample(10_000, 0).labels == task.labels
    assert all(len(set(cs)) == 4 and cs[label] == " " + ch[label]
               for cs, ch, label in zip(a.continuations, a.choices, a.labels))
    with pytest.raises(ValueError, match="Expected a zoo task in"):
        zoo_task("zoo_nope")


def test_a_tokenizer_encodes_the_same_data_once_and_keeps_only_its_last_few():
    from pytest_qrel import engine

    class Tokenizer:  # counts its calls
        calls = 0

        def __call__(self, texts):
            Tokenizer.calls += 1
            return {"input_ids": [[len(t)] for t in texts]}

    tok, other = Tokenizer(), Tokenizer()
    first = engine.encode_pairs(tok, [("a b", " c")])
    assert engine.encode_pairs(tok, [("a b", " c")]) is first and Tokenizer.calls == 2  # context and whole, once
    engine.encode_pairs(other, [("a b", " c")])  # another tokenizer encodes for itself
    assert Tokenizer.calls == 4
    for k in range(engine._ENCODED_KEEP):
        engine.encode_pairs(tok, [(f"x{k}", " y")])
    calls = Tokenizer.calls
    assert engine.encode_pairs(tok, [("a b", " c")]) == first and Tokenizer.calls == calls + 2  # evicted: again
