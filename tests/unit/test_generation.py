"""Generative QA (paper 000 §3.1, A.2): the KV-cached sampler against transformers' own
greedy generation and against uncached forward passes, sampling frequencies against the
softmax, seeding, answer matching, reference scores and ranking metrics against sklearn."""

import numpy as np
import pytest
import torch

from pytest_qrel.data.qa import read_qa_file, zoo_qa
from pytest_qrel.measures.generation import (
    QAScores,
    answer_text,
    is_correct,
    normalize_answer,
    prompt_seed,
    reference_scores,
    stop_token_ids,
    unknown_word_share,
)
from pytest_qrel.models import zoo_dir
from pytest_qrel.sampling import sample_answers


@pytest.fixture(scope="module")
def zoo_m():
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path = zoo_dir() / "zoo-m"
    return AutoModelForCausalLM.from_pretrained(path).eval(), AutoTokenizer.from_pretrained(path)


@pytest.fixture(scope="module")
def prompts():
    return list(zoo_qa().prompts[:12])


def test_answer_matching_is_squad_normalized():
    assert normalize_answer("  The  Montreal, ") == "montreal"
    assert normalize_answer("An Apple a day") == "apple day"
    assert answer_text("montreal . question : where") == "montreal "
    assert answer_text("new york, usa") == "new york"
    assert is_correct(" Montreal . question : x", ["montreal"])
    assert not is_correct(" montreal city .", ["montreal"])  # a match of the whole answer, not a prefix
    assert not is_correct(" . montreal", ["montreal"])  # nothing before the stop
    assert is_correct("the lyon", ["paris", "Lyon"])


def test_greedy_sampling_equals_transformers_generate(zoo_m, prompts):
    model, tok = zoo_m
    ids = tok(prompts)["input_ids"]
    drawn = sample_answers(model, ids, [0] * len(ids), 1, 0.0, 8, [])  # no stop: all 8 tokens
    for i, p in enumerate(ids):
        ref = model.generate(torch.tensor([p]), do_sample=False, max_new_tokens=8, pad_token_id=0)[0, len(p):]
        assert drawn.tokens[i, 0].tolist() == ref.tolist()


def test_cached_entropies_equal_an_uncached_forward(zoo_m, prompts):
    """Left padding, position ids and the KV cache change nothing: each step's entropy equals
    the entropy at that position of one forward pass over prompt + drawn tokens, alone."""
    from pytest_qrel.metrics import entropy

    model, tok = zoo_m
    ids = tok(prompts)["input_ids"]
    drawn = sample_answers(model, ids, list(range(len(ids))), 2, 0.7, 6, [])
    for i, p in enumerate(ids):
        for s in range(2):
            seq = torch.tensor([p + drawn.tokens[i, s].tolist()])
            with torch.no_grad():
                logp = torch.log_softmax(model(seq).logits[0, len(p) - 1 : -1].double(), -1).numpy()
            np.testing.assert_allclose(drawn.entropy[i, s], entropy(logp), atol=1e-4)


def test_sampling_follows_the_tempered_softmax(zoo_m):
    """5000 one-token draws: a chi-square test against the softmax of logits / T (tokens
    expected fewer than 5 times pooled into one cell) does not reject them."""
    from scipy.stats import chisquare

    model, tok = zoo_m
    prompt = tok(["question : where does yusuf price live ? answer :"])["input_ids"][0]
    with torch.no_grad():
        logits = model(torch.tensor([prompt])).logits[0, -1].double()
    for temperature in (0.7, 1.5):
        drawn = sample_answers(model, [prompt], [7], 5000, temperature, 1, [])
        observed = np.bincount(drawn.tokens[0, :, 0], minlength=logits.shape[0])
        expected = torch.softmax(logits / temperature, -1).numpy() * 5000
        big = expected >= 5
        assert big.sum() >= 5
        obs = np.r_[observed[big], observed[~big].sum()]
        exp = np.r_[expected[big], expected[~big].sum()]
        assert chisquare(obs, exp * obs.sum() / exp.sum()).pvalue > 1e-3


def test_draws_depend_on_each_prompts_seed_only(zoo_m, prompts):
    model, tok = zoo_m
    ids = tok(prompts)["input_ids"]
    seeds = [prompt_seed(0, "none", 0, p) for p in prompts]
    a = sample_answers(model, ids, seeds, 3, 0.7, 10, stop_token_ids(tok), rows=5)
    b = sample_answers(model, ids[::-1], seeds[::-1], 3, 0.7, 10, stop_token_ids(tok), rows=512)
    np.testing.assert_array_equal(a.tokens, b.tokens[::-1])
    other = sample_answers(model, ids, [s + 1 for s in seeds], 3, 0.7, 10, stop_token_ids(tok))
    assert (other.tokens != a.tokens).any()
    # a sequence ends at its stop token: nothing after it, its entropy kept
    period = tok.convert_tokens_to_ids(".")
    for row, ent in zip(a.tokens.reshape(-1, 10), a.entropy.reshape(-1, 10)):
        ends = [t for t, x in enumerate(row) if x == period]
        if ends:
            assert (row[ends[0] + 1:] == -1).all() and np.isnan(ent[ends[0] + 1:]).all() and np.isfinite(ent[ends[0]])


def test_bad_generation_input_is_an_error(zoo_m):
    model, _ = zoo_m
    with pytest.raises(ValueError, match="at least one prompt"):
        sample_answers(model, [], [], 1, 0.7, 5)
    with pytest.raises(ValueError, match="temperature >= 0"):
        sample_answers(model, [[1, 5]], [0], 1, -1.0, 5)


def test_reference_scores_equal_a_full_forward(zoo_m, prompts):
    """Eq. 4 and eq. 5 from teacher forcing, against next_token_logprobs and metrics.brier_score."""
    from pytest_qrel.engine import encode, next_token_logprobs
    from pytest_qrel.metrics import brier_score

    model, tok = zoo_m
    refs = list(zoo_qa().answers[: len(prompts)])
    loglik, brier, bad = reference_scores(model, tok, prompts, [r[0] for r in refs], rows=5)
    assert bad == 0
    for i, (p, r) in enumerate(zip(prompts, refs)):
        (batch,) = encode(tok, [p + " " + r[0]])
        logp = next(next_token_logprobs(model, [batch]))[0].double()
        n_ref = len(tok(" " + r[0], add_special_tokens=False)["input_ids"])
        target = batch.input_ids[0, -n_ref:]
        rows = logp[-n_ref:]
        assert loglik[i] == pytest.approx(float(rows[torch.arange(n_ref), target].mean()), abs=1e-5)
        assert brier[i] == pytest.approx(brier_score(rows.exp().numpy(), target.numpy()), abs=1e-5)


def test_summary_ranks_against_sklearn():
    from sklearn.metrics import average_precision_score, roc_auc_score

    rng = np.random.default_rng(0)
    correct = rng.random((40, 3)) < 0.4
    ent = rng.random((40, 3)) + 0.5 * ~correct
    ll = rng.normal(size=40)
    s = QAScores(correct, ent, ll, rng.random(40), ("x",) * 40).summary()
    assert s["accuracy"] == pytest.approx(correct.mean())
    assert s["auroc_entropy"] == pytest.approx(roc_auc_score(correct.ravel(), -ent.ravel()))
    assert s["auprc_entropy"] == pytest.approx(average_precision_score(correct.ravel(), -ent.ravel()))
    assert s["auroc_loglik"] == pytest.approx(roc_auc_score(correct.ravel(), np.repeat(ll, 3)))
    one_class = QAScores(np.zeros((5, 2), bool), np.ones((5, 2)), np.zeros(5), np.zeros(5), ("x",) * 5).summary()
    assert one_class["auroc_entropy"] is None and one_class["accuracy"] == 0.0


def test_unknown_word_share_on_a_word_level_tokenizer_and_none_on_the_zoos_bpe(zoo_m):
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    clean = ["question : where does yusuf price live ? answer :"]
    words = ["<unk>"] + sorted(set(clean[0].split()) | {"montreal"})
    word_level = Tokenizer(models.WordLevel(vocab={w: i for i, w in enumerate(words)}, unk_token="<unk>"))
    word_level.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tok = PreTrainedTokenizerFast(tokenizer_object=word_level, unk_token="<unk>")
    assert unknown_word_share(tok, clean, ["question : where does yusfu price live ? answer :"]) == (1, 1)
    # a swap makes no new word; an inserted known word is not unknown
    assert unknown_word_share(tok, clean, ["question : does where yusuf price live ? answer :"]) == (0, 0)
    assert unknown_word_share(tok, clean, ["question : where does yusuf price live montreal ? answer :"]) == (1, 0)
    # the zoo's byte-level BPE spells any edit in known pieces
    _, bpe = zoo_m
    assert unknown_word_share(bpe, clean, ["question : whree dose YUSUF pr1ce 😀 live ? answer :"]) == (5, 0)


def test_qa_files_are_checked(tmp_path):
    good = tmp_path / "qa.jsonl"
    good.write_text('{"prompt": "Q: capital of France? A:", "answers": ["Paris"]}\n{"question": "Q: 2+2? A:", "answer": "4"}\n')
    qa = read_qa_file(good)
    assert qa.prompts[1] == "Q: 2+2? A:" and qa.answers == (("Paris",), ("4",))
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"prompt": "Q", "answers": []}\n')
    with pytest.raises(ValueError, match=r"'answers' to be a non-empty list .* row 1 of .*bad.jsonl"):
        read_qa_file(bad)
    with pytest.raises(ValueError, match="does not exist"):
        read_qa_file(tmp_path / "missing.jsonl")
    sub = zoo_qa().subsample(50, seed=3)
    assert len(sub) == 50 and sub == zoo_qa().subsample(50, seed=3) and sub != zoo_qa().subsample(50, seed=4)


def test_qa_strata_are_read_kept_when_subsampled_and_all_or_none(tmp_path):
    good = tmp_path / "qa.jsonl"
    good.write_text("".join(f'{{"prompt": "Q{i}", "answers": ["a"], "stratum": "{"recall" if i % 3 else "utilization"}"}}\n'
                            for i in range(30)))
    qa = read_qa_file(good)
    assert qa.strata == tuple("recall" if i % 3 else "utilization" for i in range(30))
    sub = qa.subsample(10, seed=1)
    assert [s for p, s in zip(qa.prompts, qa.strata) if p in sub.prompts] == list(sub.strata)
    assert read_qa_file(tmp_path / "qa.jsonl").subsample(None, 0).strata == qa.strata
    none = tmp_path / "none.jsonl"
    none.write_text('{"prompt": "Q", "answers": ["a"]}\n')
    assert read_qa_file(none).strata == ()
    mixed = tmp_path / "mixed.jsonl"
    mixed.write_text('{"prompt": "Q", "answers": ["a"], "stratum": "recall"}\n{"prompt": "R", "answers": ["b"]}\n')
    with pytest.raises(ValueError, match=r"'stratum' in every row of .*mixed.jsonl or in none, but row 1 has one and row 2"):
        read_qa_file(mixed)
    empty = tmp_path / "empty.jsonl"
    empty.write_text('{"prompt": "Q", "answers": ["a"], "stratum": " "}\n')
    with pytest.raises(ValueError, match=r"'stratum' to be a non-empty string in row 1"):
        read_qa_file(empty)


def test_zoo_robustness_prompts_carry_their_strata():
    qa = zoo_qa()
    assert len(qa.strata) == len(qa.prompts) == qa.total
    assert set(qa.strata) <= {"recall", "utilization", "utilization_heldout"}
    assert all(("country" in p) == (s != "recall") for p, s in zip(qa.prompts, qa.strata))


def test_nan_logits_are_counted_per_prompt(zoo_m, prompts):
    """A model with a NaN weight: every prompt is flagged, so the gate reports the problem
    (measures/robustness.py) instead of scoring answers drawn from garbage."""
    import copy

    from pytest_qrel.measures.generation import GenerationSettings, score_qa

    model, tok = zoo_m
    broken = copy.deepcopy(model)
    with torch.no_grad():
        broken.get_output_embeddings().weight[5, 0] = float("nan")
    drawn = sample_answers(broken, tok(prompts)["input_ids"], [0] * len(prompts), 2, 0.7, 4, [])
    assert drawn.nonfinite == tuple(range(len(prompts)))
    answers = list(zoo_qa().answers[: len(prompts)])
    scores = score_qa(broken, tok, prompts, answers, list(range(len(prompts))), GenerationSettings(2, 0.7, 4))
    assert scores.nonfinite == len(prompts)
    assert score_qa(model, tok, prompts, answers, list(range(len(prompts))), GenerationSettings(2, 0.7, 4)).nonfinite == 0


def test_a_prompt_longer_than_the_models_context_is_an_error_naming_it(zoo_m):
    """Issue 15: positions past the context are not what the model was trained on."""
    from pytest_qrel.measures.generation import GenerationSettings, score_qa

    model, tokenizer = zoo_m
    context = model.config.max_position_embeddings
    long = "question : " + " ".join(["alice"] * context) + " answer :"
    with pytest.raises(ValueError, match=rf"the longest prompt has \d+ tokens, and with 4 answer tokens it does not fit "
                                         rf"the model's context of {context}: 'question : alice alice"):
        score_qa(model, tokenizer, ["question : who ? answer :", long], [["x"], ["y"]], [0, 1], GenerationSettings(1, 0.0, 4))


def test_one_prefill_per_prompt_whatever_the_samples(zoo_m, prompts, monkeypatch):
    """Item 7 of issue 17: the prompt runs once and its KV cache is repeated for its samples;
    the draws equal those of prefilling every sample (the path for a cache that cannot be
    repeated), token for token and entropy for entropy."""
    from transformers import cache_utils

    model, tok = zoo_m
    ids = tok(prompts)["input_ids"]
    widths = []
    hook = model.register_forward_pre_hook(lambda m, args, kwargs: widths.append(kwargs["input_ids"].shape),
                                           with_kwargs=True)
    try:
        shared = sample_answers(model, ids, list(range(len(ids))), 4, 0.7, 6, stop_token_ids(tok))
        prefills = [w for w in widths if w[1] > 1]
        assert prefills == [(len(ids), max(map(len, ids)))]  # one pass over the prompts, not 4 x
        owner = next(c for c in type.mro(cache_utils.DynamicCache) if "batch_repeat_interleave" in vars(c))
        monkeypatch.delattr(owner, "batch_repeat_interleave")
        widths.clear()
        repeated = sample_answers(model, ids, list(range(len(ids))), 4, 0.7, 6, stop_token_ids(tok))
        assert [w for w in widths if w[1] > 1][-1] == (4 * len(ids), max(map(len, ids)))
    finally:
        hook.remove()
    np.testing.assert_array_equal(shared.tokens, repeated.tokens)
    np.testing.assert_array_equal(shared.entropy, repeated.entropy)


def test_one_token_references_are_scored_from_the_sampling_prefill(zoo_m, prompts, monkeypatch):
    """The zoo's references are one token after the prompt's own tokens: score_qa reads eq. 4
    and 5 from the prefill it samples from (no teacher-forced pass), equal to that pass; a
    reference of several tokens is teacher forced as before."""
    from pytest_qrel.measures import generation
    from pytest_qrel.measures.generation import GenerationSettings, score_qa

    model, tok = zoo_m
    answers = list(zoo_qa().answers[: len(prompts)])
    want = reference_scores(model, tok, prompts, [a[0] for a in answers])
    forced = []
    monkeypatch.setattr(generation, "reference_scores", lambda *a, **k: forced.append(a) or want)
    got = score_qa(model, tok, prompts, answers, list(range(len(prompts))), GenerationSettings(2, 0.7, 4))
    assert not forced
    np.testing.assert_allclose(got.ref_loglik, want[0], atol=1e-5)
    np.testing.assert_allclose(got.ref_brier, want[1], atol=1e-5)
    longer = [[f"{a[0]} and more"] for a in answers]
    score_qa(model, tok, prompts, longer, list(range(len(prompts))), GenerationSettings(2, 0.7, 4))
    assert len(forced) == 1


def test_ended_sequences_stop_being_computed_and_the_draws_stay_the_same(zoo_m, prompts, monkeypatch):
    """Once half of a pass's sequences have ended, the rest run alone (the KV cache keeps
    their rows): the same tokens as running every row to the end, fewer rows computed."""
    from transformers import cache_utils

    model, tok = zoo_m
    ids = tok(prompts)["input_ids"]
    rows = []
    hook = model.register_forward_pre_hook(lambda m, args, kwargs: rows.append(kwargs["input_ids"].shape[0]),
                                           with_kwargs=True)
    dot = tok(" .", add_special_tokens=False)["input_ids"][-1]
    stops = [t for t in range(len(tok)) if t % 3 == 0 and t != dot]  # at 1.5: some end at once, some ramble
    try:
        compact = sample_answers(model, ids, list(range(len(ids))), 4, 1.5, 12, stops)
        compact_rows = sum(rows[1:])
        owner = next(c for c in type.mro(cache_utils.DynamicCache) if "batch_select_indices" in vars(c))
        monkeypatch.delattr(owner, "batch_select_indices")
        rows.clear()
        full = sample_answers(model, ids, list(range(len(ids))), 4, 1.5, 12, stops)
        full_rows = sum(rows[1:])
    finally:
        hook.remove()
    np.testing.assert_array_equal(compact.tokens, full.tokens)
    np.testing.assert_allclose(compact.entropy, full.entropy, atol=1e-5)
    assert compact_rows < full_rows, (compact_rows, full_rows)


def test_stop_tokens_are_kept_per_tokenizer_and_follow_its_vocabulary():
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(zoo_dir() / "zoo-xs")
    stops = stop_token_ids(tok)
    assert tok.eos_token_id in stops and stops  # a newline, "." or "," token, and the end
    assert all(any(s in tok.decode([i]) for s in ("\n", ".", ",")) for i in stops - {tok.eos_token_id})
    assert stop_token_ids(tok) is stops  # kept: not decoded again
    tok.add_tokens(["zzz.stop"])  # a new token holding "."
    grown = stop_token_ids(tok)
    assert grown == stops | {tok.convert_tokens_to_ids("zzz.stop")}
