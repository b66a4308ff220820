"""The shipped zoo carries real signal, and real quantizers degrade it in order of bits."""

import json

import pytest

from pytest_qrel.fixtures import build_zoo
from pytest_qrel.models import ZOO_MODELS, zoo_dir


def _card(name):
    return json.loads((zoo_dir() / name / "training.json").read_text())


def test_zoo_is_six_llamas_of_increasing_size_within_budget():
    params = [_card(n)["params"] for n in ZOO_MODELS]
    assert len(params) >= 6 and params == sorted(params) and len(set(params)) == len(params)
    assert params[-1] >= 30 * params[0]
    total = 0
    for name in ZOO_MODELS:
        d = zoo_dir() / name
        assert json.loads((d / "config.json").read_text())["model_type"] == "llama"
        assert (d / "tokenizer.json").is_file()
        total += sum(f.stat().st_size for f in d.glob("*.safetensors"))
        assert not list(d.glob("*.bin"))
    assert total <= 40e6


def test_fact_bits_exceed_smallest_capacity_and_fit_largest():
    # ~2 bits of stored knowledge per parameter (see DESIGN.md), counted without the embedding
    # rows (a token's row stores that token, not facts about pairs of names): the smallest
    # model cannot hold the corpus, the largest can.
    def body(name):
        return _card(name)["params"] - _card(name)["embedding_params"]

    bits = build_zoo.fact_bits()
    assert bits > 2 * body(ZOO_MODELS[0])
    assert bits < 2 * body(ZOO_MODELS[-1])


@pytest.fixture(scope="module")
def accuracies(zoo_session):
    out = {}
    for name in ZOO_MODELS:
        variant = next(v for v in zoo_session.variants if v.model == name)
        base = zoo_session.base_model(variant)
        out[name] = build_zoo.qa_accuracy(base.model, base.tokenizer)
    return out


def test_larger_zoo_models_answer_more_questions(accuracies):
    recall = [accuracies[n]["acc_recall"] for n in ZOO_MODELS]
    assert recall == sorted(recall) and recall[0] < recall[-1], recall
    # the largest learned the facts (chance is about 1/18 on average) and holds several times
    # what the smallest does
    assert recall[-1] > 0.8 and recall[-1] > 3 * recall[0], recall


@pytest.mark.parametrize("name", ZOO_MODELS)
def test_hqq_kl_strictly_ordered_by_bits(zoo_session, name):
    variants = {v.bits: v for v in zoo_session.variants if v.model == name and v.method == "hqq"}
    kl = {bits: zoo_session.kl_to_base(variants[bits]) for bits in (2, 3, 4, 8)}
    assert kl[2] > kl[3] > kl[4] > kl[8] > 0, kl
    info = zoo_session.variant_info[variants[8].id]
    assert info["quantized_layers"] == info["linear_layers"] > 0


@pytest.mark.parametrize("method, bits", [("bnb", 4), ("bnb", 8)])
def test_bnb_quantizes_every_linear_layer(zoo_session, method, bits):
    variant = next(v for v in zoo_session.variants if v.model == "zoo-m" and v.method == method and v.bits == bits)
    kl = zoo_session.kl_to_base(variant)
    info = zoo_session.variant_info[variant.id]
    assert info["quantized_layers"] == info["linear_layers"] > 0
    assert kl > 0
    assert info["effective_bits"] > bits and info["storage_bits"] > bits


def test_two_bit_costs_accuracy_that_eight_bit_does_not(zoo_session, accuracies):
    name = ZOO_MODELS[-1]
    base = accuracies[name]["acc_recall"]
    quant = {}
    for bits in (2, 8):
        variant = next(v for v in zoo_session.variants if v.model == name and v.method == "hqq" and v.bits == bits)
        quant[bits] = build_zoo.qa_accuracy(zoo_session.quantized_model(variant), zoo_session.base_model(variant).tokenizer)["acc_recall"]
    assert quant[2] < base - 0.1, (base, quant)
    assert abs(quant[8] - base) < 0.01, (base, quant)
