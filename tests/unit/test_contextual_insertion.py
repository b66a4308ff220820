"""Contextual word insertion (paper 000 App. B): the inserted words are the masked LM's
predictions, drawn reproducibly, and the prompt's scaffolding is kept; a directory that is
not a safetensors masked LM is refused with its path."""

import random

import pytest
import torch

from pytest_qrel.perturb import load_masked_lm, masked_lm_insertion, perturb, perturb_prompt

WORDS = ["question", "answer", "where", "does", "yusuf", "price", "live", "banana", "mango", "kiwi", "plum"]


@pytest.fixture(scope="module")
def masked_lm(tmp_path_factory):
    """A tiny BERT whose output bias makes 'banana' then 'mango' its likeliest words anywhere."""
    from transformers import BertConfig, BertForMaskedLM, BertTokenizerFast

    path = tmp_path_factory.mktemp("mlm")
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", ":", "?", *WORDS]
    tokenizer = BertTokenizerFast(vocab={w: i for i, w in enumerate(vocab)}, do_lower_case=True)
    torch.manual_seed(0)
    config = BertConfig(vocab_size=len(vocab), hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                        intermediate_size=32, max_position_embeddings=64)
    model = BertForMaskedLM(config).eval()
    with torch.no_grad():
        bias = model.cls.predictions.decoder.bias if model.cls.predictions.decoder.bias is not None else model.cls.predictions.bias
        bias.zero_()
        bias[vocab.index("banana")] = 50.0
        bias[vocab.index("mango")] = 40.0
        bias[vocab.index("[MASK]")] = 60.0  # a special token is never inserted
    model.save_pretrained(path, safe_serialization=True)
    tokenizer.save_pretrained(path)
    return path


def test_inserted_words_are_the_masked_lms_predictions(masked_lm):
    model, tokenizer = load_masked_lm(masked_lm)
    top1 = masked_lm_insertion(model, tokenizer, top_k=1)
    out = top1("where does yusuf price live", 3, random.Random(0))
    words = out.split()
    assert len(words) == 5 + 3 and words.count("banana") == 3
    top2 = masked_lm_insertion(model, tokenizer, top_k=2)
    inserted = [w for w in top2("where does yusuf price live", 5, random.Random(1)).split()
                if w not in {"where", "does", "yusuf", "price", "live"}]
    assert len(inserted) == 5 and set(inserted) <= {"banana", "mango"}


def test_contextual_insertion_is_seeded_and_keeps_the_scaffolding(masked_lm):
    insertion = masked_lm_insertion(*load_masked_lm(masked_lm), top_k=2)
    prompt = "question : where does yusuf price live ? answer : montreal"
    a = perturb_prompt(prompt, "word_insertion", 4, seed=3, function=insertion)
    assert a == perturb_prompt(prompt, "word_insertion", 4, seed=3, function=insertion)
    assert a.startswith("question : ") and a.endswith(" ? answer : montreal") and len(a.split()) == len(prompt.split()) + 4
    assert any(perturb_prompt(prompt, "word_insertion", 4, seed=s, function=insertion) != a for s in range(4, 10))
    # without a masked LM the shipped list is used, as before
    assert "banana" not in perturb("where does yusuf price live", "word_insertion", 3, seed=0)


def test_a_directory_that_is_not_a_safetensors_masked_lm_is_refused(tmp_path, masked_lm):
    with pytest.raises(ValueError, match=r"Expected a local masked-LM directory at .*nowhere, but it does not exist"):
        load_masked_lm(tmp_path / "nowhere")
    pickled = tmp_path / "pickled"
    pickled.mkdir()
    for f in masked_lm.iterdir():
        if f.suffix != ".safetensors":
            (pickled / f.name).write_bytes(f.read_bytes())
    with pytest.raises(ValueError, match=r"Expected a masked LM with safetensors weights at .*pickled"):
        load_masked_lm(pickled)


def test_the_robustness_suite_inserts_the_configured_masked_lms_words(masked_lm, tmp_path):
    from pytest_qrel.config import QrelConfig
    from pytest_qrel.measures.robustness import RobustnessMeasure

    values = {"qrel_models": "zoo-xs", "qrel_no_cache": True, "qrel_qa_limit": "5", "qrel_insertion_model": str(masked_lm)}
    measure = RobustnessMeasure(QrelConfig.from_values(values, tmp_path), store=None)
    perturbed, _ = measure.prompts(("word_insertion", 4))
    from collections import Counter

    for clean, p in zip(measure.qa().prompts, perturbed):
        inserted = Counter(p.split()) - Counter(clean.split())
        # four words, each one the masked LM knows (none of the shipped filler list's)
        assert sum(inserted.values()) == 4 and set(inserted) <= set(WORDS), (clean, p)
    swapped, _ = measure.prompts(("word_swap", 4))  # other perturbations are not affected
    assert not any("banana" in p for p in swapped)
