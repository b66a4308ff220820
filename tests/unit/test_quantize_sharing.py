"""Quantizing and reloading a variant share the base's layers they replace instead of copying
them (issue 38 item 4): the base must come out untouched, and the variant must be what a full
copy gave (the stored bytes and the outputs)."""

from __future__ import annotations

import copy

import pytest
import torch

from pytest_qrel.cache import state_dict_digest
from pytest_qrel.models import load_base, zoo_dir
from pytest_qrel.quant import get_backend
from pytest_qrel.quant.base import replace_layers, save_layers


@pytest.fixture(scope="module")
def zoo_xs():  # type: ignore[no-untyped-def]
    return load_base("zoo-xs", str(zoo_dir() / "zoo-xs"), torch.device("cpu"))


def _full_copy_quantize(backend, base, bits: int, group: int) -> torch.nn.Module:  # type: ignore[no-untyped-def]
    # the path before the sharing: a deep copy of the whole base, each layer quantized from its copy
    return replace_layers(copy.deepcopy(base.model), base.linear_layer_names,
                          lambda layer, _: backend._quantize_layer(layer, bits, group))


@pytest.mark.parametrize("method", ["rtn", "hqq"])
@pytest.mark.parametrize("bits", [3, 4, 8])
def test_quantize_leaves_the_base_whole_and_stores_the_same_bytes(zoo_xs, tmp_path, method: str, bits: int) -> None:  # type: ignore[no-untyped-def]
    backend = get_backend(method)
    if backend.missing_packages():
        pytest.skip(f"{method} is not installed")
    before = state_dict_digest(zoo_xs.model)
    model, info = backend.quantize(zoo_xs, bits, 16)
    # hqq empties the layer it quantizes: the base's own layers must still hold their weights
    assert state_dict_digest(zoo_xs.model) == before
    assert all(zoo_xs.model.get_submodule(n).weight is not None for n in zoo_xs.linear_layer_names)
    # no tensor of the variant outside the quantized layers is one of the base's
    base_ptrs = {t.data_ptr() for t in zoo_xs.model.state_dict().values()}
    assert not any(t.data_ptr() in base_ptrs for t in model.state_dict().values() if t.numel())
    reference = _full_copy_quantize(backend, zoo_xs, bits, 16)
    for name, variant in (("new", model), ("old", reference)):
        (tmp_path / name).mkdir()
        save_layers(variant, info.quantized_layers, tmp_path / name)
    assert (tmp_path / "new" / "layers.safetensors").read_bytes() == (tmp_path / "old" / "layers.safetensors").read_bytes()
    # reloaded from the stored layers (the cache's path): the same outputs, the base still whole
    loaded = backend.load_quantized(zoo_xs, bits, 16, info.quantized_layers, tmp_path / "new")
    assert state_dict_digest(zoo_xs.model) == before
    ids = torch.tensor([[1, 5, 9, 13, 2, 7]])
    with torch.no_grad():
        assert torch.equal(loaded(input_ids=ids).logits, reference(input_ids=ids).logits)
