"""Wanda and SparseGPT against independent computations written here from the papers' formulas,
the sparsity each really prunes, and a tied head left untouched."""

import math

import numpy as np
import pytest
import torch

from pytest_qrel.data import calibration_texts
from pytest_qrel.models import load_base, zoo_dir
from pytest_qrel.quant.prune import prune, sparsegpt_prune, wanda_mask
from pytest_qrel.variants import Sparsity

UNSTRUCTURED, SEMI = Sparsity(0.3), Sparsity.parse("2:4")


def _layer(out: int = 6, width: int = 16, tokens: int = 40, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    w = torch.randn(out, width, generator=g)
    # inputs of unequal scales, so that |W|·‖X‖ and |W| rank weights differently
    x = torch.randn(tokens, width, generator=g) * torch.linspace(0.1, 3.0, width)
    return w, x


def _wanda_reference(w: np.ndarray, x: np.ndarray, sparsity: Sparsity) -> np.ndarray:
    """Wanda (Sun et al. 2023, eq. 1): S_ij = |W_ij| · ‖X_j‖₂, compared per output row; the
    lowest k of a row pruned (k = ceil(s · width)), or for n:m the n lowest of each m."""
    score = np.abs(w) * np.sqrt((x**2).sum(0))
    mask = np.zeros(w.shape, dtype=bool)
    for r in range(w.shape[0]):
        if sparsity.m:
            for g in range(0, w.shape[1], sparsity.m):
                mask[r, g + np.argsort(score[r, g : g + sparsity.m])[: sparsity.n]] = True
        else:
            mask[r, np.argsort(score[r])[: math.ceil(sparsity.fraction * w.shape[1] - 1e-9)]] = True
    return mask


@pytest.mark.parametrize("sparsity", [UNSTRUCTURED, Sparsity(0.5), SEMI], ids=["s30", "s50", "2of4"])
def test_wanda_mask_is_the_per_row_lowest_score(sparsity: Sparsity) -> None:
    w, x = _layer()
    mask = wanda_mask(w, x.T @ x, sparsity).numpy()
    expected = _wanda_reference(w.double().numpy(), x.double().numpy(), sparsity)
    assert (mask == expected).all()
    magnitude_only = _wanda_reference(w.double().numpy(), np.ones((1, w.shape[1])), sparsity)
    assert (mask != magnitude_only).any()  # the activations matter: not plain magnitude pruning


def _sparsegpt_reference(w: np.ndarray, x: np.ndarray, sparsity: Sparsity, block: int) -> np.ndarray:
    """SparseGPT (Frantar & Alistarh 2023, §3-4) written out without its Cholesky and lazy-batch
    tricks: columns in order; for column i, F = the columns from i on, H_F⁻¹ inverted directly;
    a pruned weight w_i is set to 0 and the row's later weights get OBS's update
    δ_F = -w_i / [H_F⁻¹]_00 · [H_F⁻¹]_0,: . The mask: at the start of each block of ``block``
    columns (or of each m-group), the lowest w_j² / [H_{F_j}⁻¹]_00 of the row, F_j = columns from j on."""
    h = 2 * x.T @ x / x.shape[0]
    h += 0.01 * np.mean(np.diag(h)) * np.eye(h.shape[0])
    width = w.shape[1]
    inv = [np.linalg.inv(h[i:, i:]) for i in range(width)]  # H_F⁻¹ for F = {i, ..., width-1}
    pivot = np.array([inv[i][0, 0] for i in range(width)])
    w = w.copy()
    mask = np.zeros(w.shape, dtype=bool)
    for i in range(width):
        group = sparsity.m or block
        if i % group == 0:
            end = min(i + group, width)
            score = w[:, i:end] ** 2 / pivot[i:end]
            k = sparsity.n if sparsity.m else math.ceil(sparsity.fraction * end - 1e-9) - math.ceil(
                sparsity.fraction * i - 1e-9)
            for r in range(w.shape[0]):
                mask[r, i + np.argsort(score[r])[:k]] = True
        for r in np.nonzero(mask[:, i])[0]:
            w[r, i:] -= w[r, i] / inv[i][0, 0] * inv[i][0, :]
            w[r, i] = 0.0  # what the update leaves there, up to rounding
    return w


@pytest.mark.parametrize("sparsity", [UNSTRUCTURED, Sparsity(0.5), SEMI], ids=["s30", "s50", "2of4"])
def test_sparsegpt_is_the_sequential_obs_update(sparsity: Sparsity) -> None:
    w, x = _layer()
    got = sparsegpt_prune(w.double(), x.double().T @ x.double(), x.shape[0], sparsity, block=8)
    expected = _sparsegpt_reference(w.double().numpy(), x.double().numpy(), sparsity, block=8)
    assert ((got == 0).numpy() == (expected == 0)).all()
    np.testing.assert_allclose(got.numpy(), expected, atol=1e-9)


@pytest.mark.parametrize("text", ["1:3", "2:3", "3:6"])
def test_sparsegpt_n_of_m_groups_straddle_no_block_when_m_does_not_divide_it(text: str) -> None:
    # 192-wide rows: blocks of 128 columns would cut a group of 3 or 6 in two (a crash, or groups
    # with fewer than n zeros); each group of m must keep its n zeros, as Wanda's does
    sparsity = Sparsity.parse(text)
    w, x = _layer(out=8, width=192, tokens=400)
    got = sparsegpt_prune(w, x.T @ x, x.shape[0], sparsity)
    assert ((got == 0).reshape(8, -1, sparsity.m).sum(-1) == sparsity.n).all()


def test_sparsegpt_reconstructs_between_masking_and_least_squares() -> None:
    """With its own mask, SparseGPT's output error ‖(W - Ŵ)Xᵀ‖ lies between the closed-form
    least-squares optimum (each row refitted on its kept columns) and the mask applied alone."""
    w, x = (t.double() for t in _layer(out=8, width=32, tokens=200, seed=1))
    got = sparsegpt_prune(w, x.T @ x, x.shape[0], Sparsity(0.5), block=8)
    kept = got != 0
    least_squares = torch.zeros_like(w)
    for r in range(w.shape[0]):
        cols = kept[r]
        least_squares[r, cols] = torch.linalg.lstsq(x[:, cols], x @ w[r]).solution

    def error(v: torch.Tensor) -> float:
        return float(((w - v) @ x.T).norm())

    assert error(least_squares) <= error(got) < error(w * kept)
    assert error(got) < 1.2 * error(least_squares)  # close to the optimum it approximates


@pytest.mark.parametrize("text, asked, labelled", [("0.1", 0.1, "s10"), ("0.5", 0.5, "s50"), ("2:4", 0.5, "2of4")])
def test_sparsity_parse(text: str, asked: float, labelled: str) -> None:
    assert Sparsity.parse(text).fraction == asked and Sparsity.parse(text).label == labelled


@pytest.mark.parametrize("text", ["0", "1", "1.5", "4:2", "0:4", "x"])
def test_sparsity_parse_refuses(text: str) -> None:
    with pytest.raises(ValueError):
        Sparsity.parse(text)


@pytest.fixture(scope="module")
def zoo_xs():  # type: ignore[no-untyped-def]
    return load_base("zoo-xs", str(zoo_dir() / "zoo-xs"), torch.device("cpu"))


@pytest.mark.parametrize("method", ["wanda", "sparsegpt"])
@pytest.mark.parametrize("text", ["0.1", "0.5", "2:4"])
def test_pruned_zoo_model_keeps_its_tied_head_and_measures_its_sparsity(zoo_xs, method: str, text: str) -> None:  # type: ignore[no-untyped-def]
    base = zoo_xs
    head, embeddings = base.model.get_output_embeddings().weight, base.model.get_input_embeddings().weight
    assert head.data_ptr() == embeddings.data_ptr()  # the zoo's head is tied to its embeddings
    before = {k: v.clone() for k, v in base.model.state_dict().items()}
    asked = Sparsity.parse(text)
    # the head asked for too, as an ignore list that misses a tied head would let it be
    model, info = prune(base, method, asked, calibration_texts()[:16],
                        layers=[*base.linear_layer_names, "lm_head"])
    for key, value in base.model.state_dict().items():
        assert torch.equal(value, before[key]), f"the base's {key} changed"
    assert torch.equal(model.get_output_embeddings().weight, before["lm_head.weight"])
    assert torch.equal(model.get_input_embeddings().weight, before["model.embed_tokens.weight"])
    assert list(info.skipped) == ["lm_head"] and info.shortfall() is not None  # asked, left dense: said so
    assert sorted(info.sparsity) == sorted(base.linear_layer_names)
    for name in base.linear_layer_names:
        w = model.get_submodule(name).weight
        zeros = w == 0
        if asked.m:  # exactly 2 of each 4 consecutive weights of a row (none of them already 0)
            assert (zeros.reshape(w.shape[0], -1, 4).sum(-1) == 2).all()
        else:  # ceil(s · width) of each row: never fewer than asked
            assert (zeros.sum(1) == math.ceil(asked.fraction * w.shape[1] - 1e-9)).all()
        assert info.sparsity[name] == float(zeros.float().mean()) >= asked.fraction
        assert not torch.equal(w, before[f"{name}.weight"])
    _, full = prune(base, method, asked, calibration_texts()[:16])
    assert full.shortfall() is None and full.measured >= asked.fraction


def test_total_bits_count_kept_weights_and_the_mask(zoo_xs) -> None:  # type: ignore[no-untyped-def]
    base = zoo_xs
    cal = calibration_texts()[:8]
    pruned_weights = sum(base.model.get_submodule(n).weight.numel() for n in base.linear_layer_names)
    for text in ("0.5", "2:4"):
        model, info = prune(base, "wanda", Sparsity.parse(text), cal)
        assert info.base_total_bits == 32 * base.params
        zeros = sum(int((model.get_submodule(n).weight == 0).sum()) for n in base.linear_layer_names)
        if text == "2:4":  # half the weights kept at 32 bits, each with a 2-bit index
            expected = 32 * (base.params - pruned_weights) + pruned_weights // 2 * (32 + 2)
        else:  # the non-zero weights at 32 bits, and a 1-bit map of all of them
            expected = 32 * (base.params - zeros) + pruned_weights
        assert info.total_bits == expected


def test_kept_weights_are_at_the_checkpoint_dtype_they_are_billed_at(tmp_path) -> None:  # type: ignore[no-untyped-def]
    # a bfloat16 checkpoint computes in float32 on CPU: SparseGPT's updated weights must be
    # bfloat16 values, as total_bits counts them (and as a GPU run, computing in bfloat16, has them)
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    tok = AutoTokenizer.from_pretrained(zoo_dir() / "zoo-xs")
    tok.save_pretrained(tmp_path)
    torch.manual_seed(0)
    cfg = LlamaConfig(vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                      num_attention_heads=4, num_key_value_heads=4, tie_word_embeddings=True)
    LlamaForCausalLM(cfg).to(torch.bfloat16).save_pretrained(tmp_path)
    base = load_base("bf16", str(tmp_path), torch.device("cpu"))
    assert (base.checkpoint_dtype, base.dtype) == (torch.bfloat16, torch.float32)
    model, info = prune(base, "sparsegpt", Sparsity(0.5), calibration_texts()[:8])
    assert info.shortfall() is None
    for name in base.linear_layer_names:
        w = model.get_submodule(name).weight
        assert torch.equal(w, w.to(torch.bfloat16).float()), name
