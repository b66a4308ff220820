"""A pre-quantized checkpoint is measured as its own library loads it: its config (tied
embeddings or not), every tensor it stores, its tokenizer. A stored tensor the load would
ignore or overwrite, or a tokenizer that is not its base's, is an error naming it (issue 34,
items 4 and 8). Checkpoints of zoo-xs, each written by its own library."""

import json
import shutil
from pathlib import Path

import pytest
import torch

from compressed_checkpoints import make_ct_checkpoint
from helpers import session_for
from pytest_qrel.data import calibration_texts
from pytest_qrel.errors import VariantError
from pytest_qrel.models import load_base, zoo_dir
from pytest_qrel.quant import get_backend

ZOO_XS = zoo_dir() / "zoo-xs"
# checkpoint directory -> (method, bits): every format pytest-qrel loads pre-quantized
FORMATS = {"quanto-8": ("quanto", 8), "gptq-4": ("gptq", 4), "bnb-4": ("bnb", 4), "bnb-fp4-4": ("bnb-fp4", 4),
           "bnb-8": ("bnb", 8), "ct-4": ("ct", 4), "ct-a8-8": ("ct-a8", 8)}
# the compressed-tensors ones: (its preset, group size), made with compressed-tensors' own API
CT_PRESETS = {"ct-4": ("W4A16", 16), "ct-a8-8": ("W8A8", None)}


@pytest.fixture(scope="module")
def base():
    return load_base("zoo-xs", str(ZOO_XS), torch.device("cpu"))


@pytest.fixture(scope="module")
def honest(base, tmp_path_factory) -> Path:
    """zoo-xs quantized by each library and saved by its own save: quanto qint8 through
    ``QuantizedModelForCausalLM``, gptqmodel's and transformers' (bitsandbytes) saves,
    compressed-tensors' ModelCompressor."""
    from optimum.quanto import QuantizedModelForCausalLM, qint8
    from transformers import AutoModelForCausalLM

    out = tmp_path_factory.mktemp("honest")
    QuantizedModelForCausalLM.quantize(
        AutoModelForCausalLM.from_pretrained(ZOO_XS), weights=qint8, exclude="lm_head"
    ).save_pretrained(out / "quanto-8")
    for name, (method, bits) in list(FORMATS.items())[1:]:
        if name in CT_PRESETS:
            make_ct_checkpoint("zoo-xs", CT_PRESETS[name][0], out / name, CT_PRESETS[name][1])
            continue
        backend = get_backend(method)
        model, info = backend.quantize(base, bits, 64, calibration=calibration_texts()[:32])
        (out / name).mkdir()
        backend.save_quantized(model, info.quantized_layers, out / name)
    return out


def rewrite(source: Path, target: Path, tensors=None, config=None) -> Path:
    """A copy of checkpoint ``source`` with its tensors and config changed by the given functions."""
    from safetensors import safe_open
    from safetensors.torch import load_file, save_file

    shutil.copytree(source, target)
    if tensors:
        (file,) = target.glob("*.safetensors")
        with safe_open(str(file), "pt") as f:
            metadata = f.metadata()
        save_file(tensors(load_file(str(file))), str(file), metadata=metadata)
    if config:
        data = json.loads((target / "config.json").read_text())
        config(data)
        (target / "config.json").write_text(json.dumps(data))
    return target


def damaged_untied(source: Path, target: Path) -> Path:
    """The checkpoint of issue 34: ``tie_word_embeddings: false``, its input embeddings
    shuffled between tokens, and its own output head (the base's embeddings)."""

    def tensors(t: dict) -> dict:
        embeddings = t["model.embed_tokens.weight"]
        order = torch.randperm(embeddings.shape[0], generator=torch.Generator().manual_seed(0))
        return {**t, "lm_head.weight": embeddings.clone(), "model.embed_tokens.weight": embeddings[order].contiguous()}

    return rewrite(source, target, tensors, lambda c: c.update(tie_word_embeddings=False))


def kl_from_base(base, model) -> float:
    """Mean KL(base || model) per token over a few zoo documents, computed here directly."""
    batch = base.tokenizer(calibration_texts()[:8], return_tensors="pt", padding=True)
    with torch.no_grad():
        ref = torch.log_softmax(base.model(**batch).logits, -1)
        out = torch.log_softmax(model(**batch).logits.float(), -1)
    kl = (ref.exp() * (ref - out)).sum(-1)
    return float(kl[batch.attention_mask.bool()].mean())


@pytest.fixture(scope="module")
def cache(tmp_path_factory) -> Path:
    """One cache for the module: the base's KL outputs are computed once (a checkpoint's never are)."""
    return tmp_path_factory.mktemp("cache")


def measure(ckpt: Path, cache: Path) -> float:
    session = session_for(ckpt, cache, base="zoo-xs")
    (variant,) = session.variants
    return session.kl_to_base(variant)


def test_the_damaged_quanto_checkpoint_is_measured_as_quanto_loads_it(base, honest, tmp_path, pytester):
    from optimum.quanto import QuantizedModelForCausalLM

    damaged = damaged_untied(honest / "quanto-8", tmp_path / "damaged")
    # its own library deploys a model far from the base; the honest one stays close
    deployed = QuantizedModelForCausalLM.from_pretrained(damaged)
    assert kl_from_base(base, deployed) > 2.0
    assert kl_from_base(base, QuantizedModelForCausalLM.from_pretrained(honest / "quanto-8")) < 0.01
    # pytest-qrel computes what quanto's own load computes, logit for logit
    loaded = get_backend("quanto").load_checkpoint(damaged, base)
    ids = base.tokenizer(calibration_texts()[0], return_tensors="pt").input_ids
    with torch.no_grad():
        torch.testing.assert_close(loaded(ids).logits, deployed(ids).logits, rtol=1e-5, atol=1e-5)
    # and the shipped KL gate fails it, where the honest checkpoint passes; one whose config
    # ties the head it stores to the embeddings is an ERROR naming the tensor
    tied = rewrite(honest / "quanto-8", tmp_path / "tied",
                   lambda t: {**t, "lm_head.weight": t["model.embed_tokens.weight"].flip(0).contiguous()})
    result = pytester.runpytest("-p", "no:cacheprovider", "--qrel-cache-dir=cache", "-k", "test_kl_to_base",
                                f"--qrel-models={honest / 'quanto-8'},{damaged},{tied}", "--qrel-base=zoo-xs")
    out = result.stdout.str()
    assert "2 failed, 1 passed" in out, out[-3000:]
    result.stdout.fnmatch_lines(["zoo-xs-quanto-8b-ckpt-damaged * FAIL*",
                                 f"zoo-xs-quanto-8b-ckpt-tied * ERROR: --qrel-models: {tied} does not load as it is "
                                 "stored: its stored * (loading overwrites it, tied to * by its config)"])


@pytest.mark.parametrize("fmt", FORMATS)
def test_every_format_honours_the_checkpoints_config_and_tensors(fmt, base, honest, tmp_path, cache):
    assert measure(honest / fmt, cache) < 0.2
    # untied by its config, with its own head and shuffled embeddings: measured as deployed
    assert measure(damaged_untied(honest / fmt, tmp_path / "untied"), cache) > 2.0

    def stray(t: dict) -> dict:  # no module of the model has this name: the load ignores it
        return {**t, "model.layers.0.mlp.extra.weight": torch.ones(4, 4)}

    def without_norm(t: dict) -> dict:  # the model has it: the load would leave it at its initial value
        return {k: v for k, v in t.items() if k != "model.norm.weight"}

    for name, edit, message in [
        ("stray", stray, "it stores model.layers.0.mlp.extra.weight, which the model its config describes has no "
                         "place for (loading ignores it)"),
        ("no-norm", without_norm, "it does not store model.norm.weight, which the model its config describes has"),
    ]:
        ckpt = rewrite(honest / fmt, tmp_path / name, edit)
        with pytest.raises(VariantError) as error:
            measure(ckpt, cache)
        assert str(error.value).startswith(f"--qrel-models: {ckpt} does not load as it is stored: "), error.value
        assert message in str(error.value) and "\n" not in str(error.value)

    # the config ties the head to the input embeddings, yet the checkpoint stores a head of its
    # own: transformers (bitsandbytes, gptqmodel) leaves them untied and computes with both, and
    # is measured so; quanto's load writes one over the other in the tied tensor, an error
    flipped = rewrite(honest / fmt, tmp_path / "tied-head",
                      lambda t: {**t, "lm_head.weight": t["model.embed_tokens.weight"].flip(0).contiguous()})
    if FORMATS[fmt][0] != "quanto":
        assert measure(flipped, cache) > 2.0
        return
    with pytest.raises(VariantError) as error:
        measure(flipped, cache)
    assert str(error.value).startswith(f"--qrel-models: {flipped} does not load as it is stored: its stored "), error.value
    assert "is not what the loaded model computes with (loading overwrites it, tied to " in str(error.value)


def test_a_checkpoints_tokenizer_must_be_its_bases(honest, tmp_path, cache):
    def with_tokenizer(name: str, vocab=None, config=None) -> Path:
        ckpt = shutil.copytree(honest / "quanto-8", tmp_path / name)
        for file in ("tokenizer.json", "tokenizer_config.json"):
            shutil.copy(ZOO_XS / file, ckpt / file)
        if vocab:
            data = json.loads((ckpt / "tokenizer.json").read_text())
            vocab(data["model"]["vocab"])
            (ckpt / "tokenizer.json").write_text(json.dumps(data))
        if config:
            data = json.loads((ckpt / "tokenizer_config.json").read_text())
            config(data)
            (ckpt / "tokenizer_config.json").write_text(json.dumps(data))
        return ckpt

    def shuffle(vocab: dict) -> None:  # the ids of the ordinary tokens (4 and up) permuted
        tokens = [t for t, i in vocab.items() if i >= 4]
        order = torch.randperm(len(tokens), generator=torch.Generator().manual_seed(0)).tolist()
        vocab.update({t: 4 + order[k] for k, t in enumerate(tokens)})

    assert measure(with_tokenizer("same"), cache) < 0.05
    # the checkpoint gptqmodel saved ships its (the base's) tokenizer, and passes
    assert (honest / "gptq-4" / "tokenizer.json").is_file()
    assert measure(honest / "gptq-4", cache) < 0.2
    for ckpt, difference in [
        (with_tokenizer("shuffled", vocab=shuffle), "its tokenizer gives '!' the id "),
        (with_tokenizer("eos", config=lambda c: c.update(eos_token="<unk>")), "its eos_token is '<unk>', the base's '</s>'"),
    ]:
        with pytest.raises(VariantError) as error:
            measure(ckpt, cache)
        assert str(error.value).startswith(f"--qrel-models: {ckpt} does not tokenize as its base {ZOO_XS}: "), error.value
        assert difference in str(error.value), error.value


def refused(ckpt: Path, cache: Path, **opts) -> str:
    """The one-line error measuring ``ckpt``'s one variant ends in."""
    session = session_for(ckpt, cache, **{"base": "zoo-xs", **opts})
    (variant,) = session.variants
    with pytest.raises(VariantError) as error:
        session.kl_to_base(variant)
    assert "\n" not in str(error.value)
    return str(error.value)


def test_only_the_files_its_library_reads_are_measured(honest, tmp_path, cache):
    """quanto's from_pretrained reads model.safetensors (or its index's shards): an honest copy
    of the codes in another file is not what it deploys, and neither is a folder without it."""
    from safetensors.torch import load_file, save_file

    stray = shutil.copytree(honest / "quanto-8", tmp_path / "stray")
    good = load_file(str(stray / "model.safetensors"))
    noise = torch.Generator().manual_seed(0)
    save_file({k: torch.randint(-127, 127, v.shape, generator=noise, dtype=torch.int8) if v.dtype == torch.int8 else v
               for k, v in good.items()}, str(stray / "model.safetensors"))
    save_file({k: v for k, v in good.items() if v.dtype == torch.int8}, str(stray / "model_orig.safetensors"))
    assert refused(stray, cache) == (f"--qrel-models: {stray} does not load as it is stored: it has model_orig.safetensors, "
                                     "a weights file its library does not read (only model.safetensors)")
    renamed = shutil.copytree(honest / "quanto-8", tmp_path / "renamed")
    (renamed / "model.safetensors").rename(renamed / "weights.safetensors")
    assert refused(renamed, cache).endswith(f"{renamed} has no model.safetensors and no model.safetensors.index.json: "
                                            "its library loads nothing")


def test_a_checkpoint_never_supplies_its_own_base(honest, tmp_path):
    """A base_model field is a zoo name, a path, or a hub id: "org/zoo-xs" is never the folder
    of that name the checkpoint ships, and a path into the checkpoint is refused."""
    ckpt = shutil.copytree(honest / "quanto-8", tmp_path / "selfbase")
    shutil.copytree(ZOO_XS, ckpt / "org" / "zoo-xs")
    for declared, why in [("org/zoo-xs", "is not a local directory"),
                          ("./org/zoo-xs", "lies inside the checkpoint itself")]:
        config = json.loads((honest / "quanto-8" / "config.json").read_text())
        (ckpt / "config.json").write_text(json.dumps({**config, "base_model": declared}))
        with pytest.raises(pytest.UsageError) as error:
            session_for(ckpt, tmp_path)
        assert str(error.value).startswith(f"--qrel-models: {ckpt} names base_model "), error.value
        assert why in str(error.value) and "--qrel-base=" in str(error.value)
    # the zoo name it was meant to name still pairs it
    (ckpt / "config.json").write_text(json.dumps({**config, "base_model": "zoo-xs"}))
    (variant,) = session_for(ckpt, tmp_path).variants
    assert variant.source == str(ZOO_XS)


def test_the_bits_and_group_size_it_declares_are_its_layers(honest, tmp_path, cache):
    """gptqmodel builds its layers from quantize_config.json and the tensors: a config.json that
    says 2 bits (the loose 2-bit threshold) or another group size is an ERROR naming the layer."""
    for name, edit, message in [
        ("two-bits", lambda c: c["quantization_config"].update(bits=2), "stores 4-bit codes, but zoo-xs-gptq-2b-g64"),
        ("group-32", lambda c: c["quantization_config"].update(group_size=32), "has group size 64, but 32 is declared in "),
    ]:
        ckpt = rewrite(honest / "gptq-4", tmp_path / name, config=edit)
        error = refused(ckpt, cache)
        assert error.startswith(f"--qrel-models: {ckpt} is not what it declares: its layer model.layers."), error
        assert message in error, error


def test_a_quantized_checkpoint_without_its_quantization_config_is_no_base(honest, tmp_path, cache):
    """Without quantization_config (or quanto_qmap.json) it is a full-precision model to
    transformers, which would ignore its codes and initialise its layers at random."""
    noqc = rewrite(honest / "gptq-4", tmp_path / "gptq-noqc", config=lambda c: c.pop("quantization_config"))
    error = refused(noqc, cache, base=None, methods="rtn")
    assert error.startswith(f"--qrel-models: '{noqc}' does not load as it is stored: it stores model.layers.0."), error
    assert "which the model its config describes has no place for" in error
    noqmap = shutil.copytree(honest / "quanto-8", tmp_path / "quanto-noqmap")
    (noqmap / "quanto_qmap.json").unlink()
    for file in ("tokenizer.json", "tokenizer_config.json"):  # a base needs one, as any model does
        shutil.copy(ZOO_XS / file, noqmap / file)
    assert "does not load as it is stored: it stores " in refused(noqmap, cache, base=None, methods="rtn")
    # with --qrel-base given too (a base meant for it) it is still measured as the model it is:
    # an ERROR, never a random model's quantizations that pass (a --qrel-base no entry uses is
    # not itself an error: [tool.qrel] may name one for the runs that pass checkpoints)
    error = refused(noqc, cache, base="zoo-xs", methods="rtn")
    assert "does not load as it is stored: it stores model.layers.0." in error, error
