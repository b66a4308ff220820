"""GGUF files (llama.cpp's format) as pre-quantized variants: what a file holds (its
architecture, each tensor's type and shape, its tokenizer, the base it names), its bits from
its tensor types, how it differs from a base, and its model loaded through transformers' own
GGUF loader (``from_pretrained(..., gguf_file=)``, every tensor dequantized on load)."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import QuantizationError
from ..models import base_reference, loading_problem
from ..variants import QuantizedInfo, total_model_bits
from .base import Backend
from .stored import weight_files

if TYPE_CHECKING:
    import torch

    from ..models import LoadedModel

GGUF_MAGIC = b"GGUF"
# types that store weights as they are (not quantized), counted at their own width
FLOAT_TYPES = ("F64", "F32", "F16", "BF16")
# the base's config.json key of each llama.cpp metadata key ("<architecture>.<key>")
CONFIG_KEYS = {
    "embedding_length": "hidden_size",
    "block_count": "num_hidden_layers",
    "feed_forward_length": "intermediate_size",
    "attention.head_count": "num_attention_heads",
    "attention.head_count_kv": "num_key_value_heads",
}


@dataclass(frozen=True)
class GGUFTensor:
    """One tensor of a GGUF file: its ggml type's name and its shape as torch orders it."""

    type: str
    shape: tuple[int, ...]
    elements: int
    bytes: int


@dataclass(frozen=True)
class GGUFContents:
    """What a GGUF file holds, read without its tensor data."""

    path: Path
    architecture: str
    fields: dict[str, Any]  # every metadata key, decoded
    tensors: dict[str, GGUFTensor]  # by GGUF name (token_embd.weight, blk.0.attn_q.weight, ...)

    @property
    def linear(self) -> dict[str, GGUFTensor]:
        """The linear weights: the 2-D weights of its blocks (llama.cpp's blk.N.*.weight)."""
        return {n: t for n, t in self.tensors.items()
                if n.startswith("blk.") and n.endswith(".weight") and len(t.shape) == 2}

    @property
    def quantized_linear(self) -> dict[str, GGUFTensor]:
        return {n: t for n, t in self.linear.items() if t.type not in FLOAT_TYPES}

    @property
    def main_type(self) -> str:
        """The type most of its linear weights are stored in (by weights): what its bits name."""
        weights: dict[str, int] = {}
        for t in self.quantized_linear.values():
            weights[t.type] = weights.get(t.type, 0) + t.elements
        return max(sorted(weights), key=lambda k: weights[k])


def is_gguf(path: Path) -> bool:
    """Whether ``path`` is a file that starts as a GGUF file does."""
    try:
        with path.open("rb") as fh:
            return fh.read(4) == GGUF_MAGIC
    except OSError:
        return False


def bits_per_weight(type_name: str) -> float:
    """What one weight of a ggml type stores: its block's bytes x 8 over its block's weights
    (Q8_0: 34 bytes per 32 weights, 8.5; Q4_0 4.5; Q4_K 4.5; Q6_K 6.5625)."""
    weights, nbytes = _block(type_name)
    return nbytes * 8 / weights


def nominal_bits(type_name: str) -> int:
    """A ggml type's integer width, what per-bit-width thresholds key on: the first number of
    its name (Q8_0 8, Q4_K 4, IQ2_XXS 2, MXFP4 4, TQ1_0 1)."""
    found = re.search(r"\d+", type_name)
    if found is None:
        raise ValueError(f"Expected a ggml type named with its width, but got {type_name!r}")
    return int(found.group())


def block_size(type_name: str) -> int:
    """The weights one block of a ggml type holds (a scale's group)."""
    return _block(type_name)[0]


def _block(type_name: str) -> tuple[int, int]:
    """(weights, bytes) of one block of a ggml type, as gguf defines them."""
    from gguf import GGML_QUANT_SIZES, GGMLQuantizationType

    weights, nbytes = GGML_QUANT_SIZES[GGMLQuantizationType[type_name]]
    return int(weights), int(nbytes)


def read_gguf(path: Path) -> GGUFContents:
    """The metadata and tensor types of the GGUF file ``path``; ValueError naming it when it is
    not one, cannot be read, or stores a tensor type transformers cannot dequantize."""
    import numpy as np

    if not is_gguf(path):
        with path.open("rb") as fh:
            head = fh.read(4)
        raise ValueError(f"{path} is not a GGUF file (it starts with {head!r}, not {GGUF_MAGIC!r}) "
                         "nor a model directory")
    try:
        from gguf import GGMLQuantizationType, GGUFReader
        from gguf.quants import dequantize
    except ImportError:
        raise ValueError(f"{path} is a GGUF file: reading it needs the gguf package: "
                         "pip install 'pytest-qrel[gguf]'") from None
    try:
        reader = GGUFReader(str(path))
        fields = {name: field.contents() for name, field in reader.fields.items()}
        tensors = {t.name: GGUFTensor(GGMLQuantizationType(t.tensor_type).name,
                                      tuple(int(d) for d in reversed(t.shape.tolist())), int(t.n_elements),
                                      int(t.n_bytes))
                   for t in reader.tensors}
    except Exception as exc:  # a damaged file: the reader raises what numpy or struct raise
        raise ValueError(f"{path} is not a readable GGUF file ({type(exc).__name__}: {exc})") from None
    for name, tensor in tensors.items():
        qtype = GGMLQuantizationType[tensor.type]
        try:  # transformers dequantizes each tensor with gguf's own dequantize: one empty block tells
            dequantize(np.zeros((1, _block(tensor.type)[1]), dtype=np.uint8), qtype)
        except NotImplementedError:
            raise ValueError(f"{path} stores {name} as {tensor.type}, a type transformers cannot dequantize "
                             "(gguf's dequantize does not implement it)") from None
    architecture = fields.get("general.architecture")
    if not isinstance(architecture, str):
        raise ValueError(f"{path} has no general.architecture: not a model llama.cpp or transformers loads")
    return GGUFContents(path, architecture, fields, tensors)


def identify_gguf(path: Path) -> tuple[GGUFContents, int, int | None, str | None]:
    """(contents, bits, group size, the base it names) of a GGUF file; ValueError naming it
    when it cannot be a variant: not GGUF, an architecture transformers does not load from
    GGUF, or no linear weight stored quantized. ``bits`` is the integer width of the type most
    of its linear weights have, the group size that type's block."""
    contents = read_gguf(path)
    from transformers.modeling_gguf_pytorch_utils import GGUF_SUPPORTED_ARCHITECTURES

    if contents.architecture not in GGUF_SUPPORTED_ARCHITECTURES:
        raise ValueError(f"{path} is a GGUF file of architecture {contents.architecture!r}, which transformers "
                         f"does not load from GGUF (it loads {', '.join(sorted(GGUF_SUPPORTED_ARCHITECTURES))})")
    if not contents.quantized_linear:
        types = sorted({t.type for t in contents.linear.values()})
        raise ValueError(f"{path} stores no linear weight quantized (only {', '.join(types) or 'none'}): "
                         "not a quantized variant")
    main = contents.main_type
    return contents, nominal_bits(main), block_size(main), declared_gguf_base(contents)


def declared_gguf_base(contents: GGUFContents) -> str | None:
    """The base model a GGUF file names (general.base_model.0.repo_url, a hub address read as its
    hub id, or its name), where it names exactly one; read by the rules of a directory's
    base_model field (a zoo name, a path, else a hub id)."""
    if contents.fields.get("general.base_model.count") != 1:
        return None
    value = contents.fields.get("general.base_model.0.repo_url") or contents.fields.get("general.base_model.0.name")
    if not isinstance(value, str) or not value.strip():
        return None
    value = value.strip()
    for hub in ("https://huggingface.co/", "http://huggingface.co/"):
        value = value.removeprefix(hub)
    return base_reference(value, contents.path.parent)


def hf_names(contents: GGUFContents, names: list[str]) -> dict[str, str]:
    """Each GGUF tensor name of a model's state-dict ``names`` (llama.cpp's own name map), for
    those it has one."""
    import gguf

    arch = next((k for k, v in gguf.MODEL_ARCH_NAMES.items() if v == contents.architecture), None)
    if arch is None:  # an architecture llama.cpp does not name: none of its tensors has a place
        return {}
    blocks = contents.fields.get(f"{contents.architecture}.block_count")
    name_map = gguf.get_tensor_name_map(arch, int(blocks) if isinstance(blocks, int) else 0)
    out = {}
    for name in names:
        module, _, leaf = name.rpartition(".")
        found = name_map.get_name(module)
        if found is not None:
            out[f"{found}.{leaf}"] = name
    return out


def base_mismatch(contents: GGUFContents, config: dict, shapes: dict[str, tuple[int, ...]]) -> str | None:
    """How the GGUF file differs from a base of this ``config`` (its config.json) and tensor
    ``shapes`` (state-dict name -> shape), or None: its architecture, vocabulary size, sizes,
    a tensor shaped otherwise, stored where the base has none, or missing."""
    arch, model_type = contents.architecture, str(config.get("model_type"))
    if arch.replace("-", "_") != model_type and arch != model_type.replace("_", ""):
        return f"its architecture is {arch}, the base's {model_type}"
    tokens = contents.fields.get("tokenizer.ggml.tokens")
    vocab = contents.fields.get(f"{arch}.vocab_size") or (len(tokens) if isinstance(tokens, list) else None)
    if vocab != config.get("vocab_size"):
        return f"its vocabulary has {vocab} tokens, the base's {config.get('vocab_size')}"
    for key, name in CONFIG_KEYS.items():
        ours = contents.fields.get(f"{arch}.{key}")
        if ours is not None and config.get(name) is not None and ours != config[name]:
            return f"its {arch}.{key} is {ours}, the base's {name} {config[name]}"
    # a rope scaling llama.cpp applies and transformers' loader does not: the model measured is not the one run
    scaling = contents.fields.get(f"{arch}.rope.scaling.type")
    rope = config.get("rope_parameters") or config.get("rope_scaling") or {}
    rope_type = rope.get("rope_type", rope.get("type", "default")) if isinstance(rope, dict) else "default"
    if scaling not in (None, "none", rope_type):
        return (f"its {arch}.rope.scaling.type is {scaling!r}, the base's rope_type {rope_type!r} "
                "(transformers' GGUF loader does not apply it, llama.cpp does)")
    mapped = hf_names(contents, list(shapes))
    tied = bool(config.get("tie_word_embeddings"))
    for name, tensor in contents.tensors.items():
        if name not in mapped:
            why = ", a head of its own where the base ties its head to the embeddings" if tied and name == "output.weight" else ""
            return f"it stores {name}, which the base has no place for{why}"
        if tensor.shape != tuple(shapes[mapped[name]]):
            return f"its {name} has shape {list(tensor.shape)}, the base's {mapped[name]} {list(shapes[mapped[name]])}"
    for gguf_name, name in mapped.items():
        if gguf_name not in contents.tensors and not (tied and gguf_name == "output.weight"):
            return f"it does not store {gguf_name}, the base's {name}"
    return None


def base_dir_mismatch(contents: GGUFContents, directory: Path) -> str | None:
    """``base_mismatch`` against a base directory, from its config.json and its safetensors
    headers (no weight read)."""
    from safetensors import safe_open

    try:
        config = json.loads((directory / "config.json").read_text())
        shapes: dict[str, tuple[int, ...]] = {}
        for shard in weight_files(directory):
            with safe_open(str(shard), "np") as f:
                shapes.update({k: tuple(f.get_slice(k).get_shape()) for k in f.keys()})
    except (OSError, ValueError, QuantizationError):
        return None  # a base that cannot be read fails when it is loaded, naming itself
    return base_mismatch(contents, config if isinstance(config, dict) else {}, shapes)


def tokenizer_difference(contents: GGUFContents, base: Any) -> str | None:
    """How the tokenizer a GGUF file embeds (what llama.cpp tokenizes with) differs from the
    base's, or None: each token's id, the BPE merges, the special tokens' ids, whether it adds
    BOS or EOS, the chat template. A file that embeds none is used with the base's."""
    fields = contents.fields
    tokens = fields.get("tokenizer.ggml.tokens")
    if tokens is None:
        return None
    vocab = base.get_vocab()
    if len(tokens) != len(vocab):
        return f"its tokenizer has {len(tokens)} tokens, the base's {len(vocab)}"
    for index, token in enumerate(tokens):
        if vocab.get(token) != index:
            return f"its tokenizer gives {token!r} the id {index}, the base's {vocab.get(token)}"
    model = json.loads(base.backend_tokenizer.to_str()).get("model", {}) if hasattr(base, "backend_tokenizer") else {}
    # the same tokens under another algorithm tokenize otherwise: llama.cpp's name of the base's
    kind = {"BPE": ("BPE with byte fallback", "llama") if model.get("byte_fallback") else
            ("BPE without byte fallback", "gpt2"), "WordPiece": ("WordPiece", "bert")}.get(model.get("type", ""))
    if kind and fields.get("tokenizer.ggml.model", kind[1]) != kind[1]:
        return (f"its tokenizer.ggml.model is {fields['tokenizer.ggml.model']!r}, the base's tokenizer is {kind[0]}, "
                f"which llama.cpp names {kind[1]!r}")
    merges = [m if isinstance(m, str) else " ".join(m) for m in model.get("merges", [])]
    if "tokenizer.ggml.merges" in fields and fields["tokenizer.ggml.merges"] != merges:
        return "its tokenizer's BPE merges differ from the base's"
    for key, name in (("bos", "bos_token_id"), ("eos", "eos_token_id"), ("unknown", "unk_token_id"),
                      ("padding", "pad_token_id")):
        ours = fields.get(f"tokenizer.ggml.{key}_token_id")
        if ours is not None and ours != getattr(base, name, None):
            return f"its {name} is {ours}, the base's {getattr(base, name, None)}"
    probe = base("x").input_ids
    adds = {"bos": bool(probe) and probe[0] == base.bos_token_id, "eos": bool(probe) and probe[-1] == base.eos_token_id}
    for which, added in adds.items():
        flag = fields.get(f"tokenizer.ggml.add_{which}_token")
        if flag is not None and bool(flag) != added:
            return f"it {'adds' if flag else 'does not add'} {which.upper()}, the base {'does' if added else 'does not'}"
    if fields.get("tokenizer.chat_template") != getattr(base, "chat_template", None):
        return "its chat_template differs from the base's"
    return None


class GGUFBackend(Backend):
    """GGUF files, loaded as they are (never made here): transformers dequantizes every tensor
    on load, and the bits are those the file's tensor types store."""

    name = "gguf"
    bits = (1, 2, 3, 4, 5, 6, 8)
    requires = ("gguf", "accelerate")  # transformers loads a GGUF file only with accelerate
    extra = "gguf"
    quantizes = False
    mixed_precision = False

    def _is_quantized(self, module: torch.nn.Module) -> bool:
        return False  # dequantized on load: its bits are read from the file (measure_gguf)

    def load_checkpoint(self, path: Path, base: LoadedModel) -> torch.nn.Module:
        """The model the GGUF file ``path`` holds, through transformers' own loader, every tensor
        dequantized, in the base's dtype and on its device; QuantizationError when the load
        leaves a weight unset."""
        from transformers import AutoModelForCausalLM, GgufConfig

        model, loading = AutoModelForCausalLM.from_pretrained(
            str(path.parent), gguf_file=str(path), dtype=base.dtype, trust_remote_code=False,
            quantization_config=GgufConfig(dequantize=True), output_loading_info=True)
        problem = loading_problem(loading)
        if problem:
            raise QuantizationError(f"--qrel-models: {path} does not load as it is stored: {problem}")
        return model.to(base.device).eval()


def measure_gguf(contents: GGUFContents, base: LoadedModel) -> QuantizedInfo:
    """What the GGUF file stores of ``base``, in QuantizedInfo's terms: its quantized layers are
    the linear layers stored in a quantized type, their effective (and storage) bits those
    types' bits per weight, every other tensor counted in the total at the bits it is stored
    in (token_embd quantized counts quantized); a layer of another type than most is said."""
    import torch

    params = dict(base.model.named_parameters())  # a tied head once
    stored = {hf: contents.tensors[g] for g, hf in hf_names(contents, list(params)).items() if g in contents.tensors}
    linear = base.linear_layer_names
    numel = {n: base.model.get_submodule(n).weight.numel() for n in linear}
    quantized = [n for n in linear if stored[f"{n}.weight"].type not in FLOAT_TYPES]
    bpw = {n: bits_per_weight(stored[f"{n}.weight"].type) for n in quantized}
    weights = sum(numel[n] for n in quantized)
    main = contents.main_type
    dtype = base.checkpoint_dtype or base.dtype
    dtype_bits = torch.finfo(dtype).bits if dtype.is_floating_point else torch.iinfo(dtype).bits
    elements = [(p.numel(), bits_per_weight(stored[name].type) if name in stored else dtype_bits)
                for name, p in params.items()]
    effective = sum(bpw[n] * numel[n] for n in quantized) / weights
    others = {n: stored[f"{n}.weight"].type for n in quantized if stored[f"{n}.weight"].type != main}
    return QuantizedInfo(
        quantized_layers=sorted(quantized),
        requested_layers=list(linear),
        linear_layers=len(linear),
        group_size=block_size(main),
        effective_bits=effective,
        storage_bits=effective,  # dequantized on load, but what the file stores is what is deployed
        params=base.params,
        total_bits=total_model_bits(elements),
        base_total_bits=total_model_bits((n, dtype_bits) for n, _ in elements),
        state_dict_bytes=sum(t.bytes for t in contents.tensors.values()),
        quantized_fraction=weights / sum(numel.values()),
        coverage=weights / sum(numel.values()),
        skipped={n: f"{contents.path.name} stores it as {stored[f'{n}.weight'].type}"
                 for n in linear if n not in quantized},
        regrouped={n: f"{t} ({bits_per_weight(t):g} bits per weight), not {main}, the type most linear weights have "
                      f"and the variant's {nominal_bits(main)} bits name" for n, t in others.items()},
    )
