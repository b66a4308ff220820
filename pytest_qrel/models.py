"""Loading base models and tokenizers: the shipped zoo, local directories, hub ids.

Loading never runs code from a checkpoint: ``trust_remote_code`` is always off, and
only safetensors weights are read unless the user passes ``--qrel-allow-pickle``.
"""

from __future__ import annotations

import json
import tempfile
from dataclasses import dataclass, field
from importlib.resources import files
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .errors import ModelLoadError
from .placement import Placement
from .variants import id_safe

if TYPE_CHECKING:
    import torch

DEFAULT_PLACEMENT = Placement()
ZOO_MODELS = ("zoo-xs", "zoo-s", "zoo-m", "zoo-l", "zoo-xl", "zoo-xxl")


def fixtures_dir() -> Path:
    return Path(str(files("pytest_qrel.fixtures")))


def zoo_dir() -> Path:
    return fixtures_dir() / "zoo"


def is_zoo_model(name: str, source: str) -> bool:
    """Whether a model is the shipped zoo's own (its name and directory): the default tasks, QA
    prompts and KL sentences are the zoo's, meaningful for it only."""
    return name in ZOO_MODELS and Path(source) == zoo_dir() / name


def resolve_model(spec: str) -> tuple[str, str]:
    """(short name for test ids, source) for one --qrel-models entry."""
    spec = spec.strip()
    if spec in ZOO_MODELS:
        return spec, str(zoo_dir() / spec)
    path = Path(spec).expanduser()
    if path.exists() or spec.startswith((".", "/", "~")) or spec.count("/") > 1:
        name = path.resolve().name or spec
        return id_safe(name), str(path.resolve())
    return id_safe(spec.rsplit("/", 1)[-1]), spec  # a hub id: org/name or name


@dataclass
class LoadedModel:
    name: str
    source: str
    path: str
    model: torch.nn.Module
    tokenizer: Any
    device: torch.device
    dtype: torch.dtype
    load_kwargs: dict = field(default_factory=dict)
    checkpoint_dtype: torch.dtype | None = None  # the dtype its weights are stored in
    # accelerate's folder of the weights offloaded to disk (--qrel-device-map=auto): removed with the model
    offload_dir: tempfile.TemporaryDirectory | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if self.checkpoint_dtype is None:
            self.checkpoint_dtype = self.dtype

    @property
    def params(self) -> int:
        return sum(p.numel() for p in self.model.parameters())

    @property
    def linear_layer_names(self) -> list[str]:
        """Every torch.nn.Linear (or transformers Conv1D, GPT-2's transposed Linear) outside
        the output head: what backends quantize."""
        import torch
        from transformers.pytorch_utils import Conv1D

        head = self.model.get_output_embeddings()
        return [n for n, m in self.model.named_modules() if isinstance(m, (torch.nn.Linear, Conv1D)) and m is not head]


def declared_base(path: Path) -> str | None:
    """The base model a quantized checkpoint names: a ``base_model`` field in its
    config.json, or in the YAML front matter of its README.md (the Hugging Face model-card
    field): a zoo name, a path (absolute, or ``./``, ``../`` relative to the checkpoint), else a
    hub id, never looked for as a directory (inside the checkpoint or the working directory)."""
    value = None
    try:
        config = json.loads((path / "config.json").read_text())
        value = config.get("base_model") if isinstance(config, dict) else None
    except (OSError, json.JSONDecodeError):
        pass
    readme = path / "README.md"
    if not value and readme.is_file():
        lines = readme.read_text(errors="replace").splitlines()
        if lines and lines[0].strip() == "---":
            for line in lines[1:]:
                if line.strip() == "---":
                    break
                key, _, rest = line.partition(":")
                if key.strip() == "base_model" and rest.strip():
                    value = rest.strip().strip("'\"")
    if not value or not isinstance(value, str):
        return None
    return base_reference(value, path)


def base_reference(value: str, directory: Path) -> str:
    """A base a checkpoint in ``directory`` names: a zoo name, a path (absolute, or ``./``,
    ``../`` relative to ``directory``, resolved), else a hub id, as it is."""
    if value in ZOO_MODELS:
        return value
    if value.startswith(("/", "~", "./", "../")):
        return str((directory / Path(value).expanduser()).resolve())
    return value  # a hub id (org/name): a checkpoint cannot make "org/name" a folder it ships


def check_checkpoint(source: str, allow_pickle: bool) -> None:
    """Refuse, before anything is loaded, what must not or cannot be loaded."""
    path = Path(source)
    if not path.exists():
        if source.startswith((".", "/", "~")) or source.count("/") > 1:
            raise ModelLoadError(f"--qrel-models: checkpoint directory {source!r} does not exist")
        return  # a hub id: resolved (from the local cache when offline) by transformers
    if not path.is_dir() or not (path / "config.json").is_file():
        raise ModelLoadError(f"--qrel-models: {source!r} is not a Hugging Face model directory (no config.json)")
    try:
        config = json.loads((path / "config.json").read_text())
    except json.JSONDecodeError as exc:
        raise ModelLoadError(f"--qrel-models: {source}/config.json is not valid JSON ({exc})") from None
    if "auto_map" in config:
        raise ModelLoadError(
            f"--qrel-models: {source!r} needs trust_remote_code (its config has auto_map); "
            "pytest-qrel never runs code from a checkpoint"
        )
    has_safetensors = any(path.glob("*.safetensors"))
    has_pickle = any(path.glob("*.bin")) or any(path.glob("*.pt")) or any(path.glob("*.pth"))
    if not has_safetensors and has_pickle and not allow_pickle:
        raise ModelLoadError(
            f"--qrel-models: {source!r} has only pickle weights, which can run code when loaded; "
            "convert it to safetensors or pass --qrel-allow-pickle"
        )
    if not has_safetensors and not has_pickle:
        raise ModelLoadError(f"--qrel-models: {source!r} has no weights (*.safetensors)")


def load_base(name: str, source: str, device: torch.device, allow_pickle: bool = False,
              placement: Placement = DEFAULT_PLACEMENT) -> LoadedModel:
    """The base ``source`` on ``device``; with ``placement.dispatched``, placed by accelerate
    (sharded over the visible GPUs, offloaded to CPU and disk: placement.py) instead."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    check_checkpoint(source, allow_pickle)
    dtype = placement.torch_dtype(device)
    kwargs = {"trust_remote_code": False, "use_safetensors": None if allow_pickle else True}
    offload = tempfile.TemporaryDirectory(prefix="qrel-offload-") if placement.dispatched else None
    placed = placement.load_kwargs(offload.name) if offload is not None else {}
    try:
        # the dtype the weights are stored in: loading overwrites the config's with ours
        # (transformers' own default, float32, when the config does not say)
        stored = AutoConfig.from_pretrained(source, trust_remote_code=False).dtype or torch.float32
        stored = getattr(torch, stored) if isinstance(stored, str) else stored
        tokenizer = AutoTokenizer.from_pretrained(source, trust_remote_code=False)
        model, loading = AutoModelForCausalLM.from_pretrained(source, dtype=dtype, output_loading_info=True,
                                                              **kwargs, **placed)
        if not placed:
            model = model.to(device)
    except (OSError, ValueError, KeyError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ModelLoadError(f"--qrel-models: cannot load {source!r} as a causal LM: {first}") from exc
    problem = loading_problem(loading)
    if problem:
        raise ModelLoadError(f"--qrel-models: {source!r} does not load as it is stored: {problem}")
    model.eval()
    return LoadedModel(name, source, source, model, tokenizer_with_padding(tokenizer), device, dtype, kwargs, stored,
                       offload)


def loading_problem(loading: dict) -> str | None:
    """Why a model transformers loaded (its ``output_loading_info``) does not compute with
    exactly the weights its directory stores, or None: a stored weight the model has no place
    for (ignored: e.g. a quantized checkpoint's codes when its config lost its
    quantization_config), or a weight of the model that is not stored (randomly initialised).
    Tied weights and the keys an architecture declares ignorable are not reported by transformers."""
    unexpected, missing = sorted(loading.get("unexpected_keys") or ()), sorted(loading.get("missing_keys") or ())
    mismatched = sorted(str(k[0] if isinstance(k, tuple) else k) for k in loading.get("mismatched_keys") or ())
    if unexpected:
        return (f"it stores {unexpected[0]} ({len(unexpected)} tensors in all), which the model its config describes "
                "has no place for (loading ignores it; a quantized checkpoint without its quantization_config?)")
    if missing:
        return (f"it does not store {missing[0]} ({len(missing)} tensors in all), which the model its config "
                "describes has (loading leaves it at a random initial value)")
    if mismatched:
        return f"its stored {mismatched[0]} has another shape than the model its config describes"
    return None


def tokenizer_with_padding(tokenizer: Any) -> Any:
    """``tokenizer``, padding with its end-of-sequence token where it has no pad token (batches need one)."""
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


# the files a saved tokenizer consists of (any one of them means the checkpoint ships one)
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "tokenizer.model",
                   "vocab.json", "vocab.txt", "merges.txt")


def checkpoint_tokenizer(path: Path) -> Any | None:
    """The tokenizer a checkpoint directory ships (as the base's is loaded: no remote code),
    or None where it ships none (it is then used with its base's)."""
    if not any((path / name).is_file() for name in TOKENIZER_FILES):
        return None
    from transformers import AutoTokenizer

    try:
        return tokenizer_with_padding(AutoTokenizer.from_pretrained(str(path), trust_remote_code=False))
    except Exception as exc:  # its files are the user's input (the tokenizers library raises its own types)
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ModelLoadError(f"--qrel-models: cannot load the tokenizer of {path}: {first}") from exc


def tokenizer_difference(tokenizer: Any, base: Any) -> str | None:
    """How ``tokenizer`` turns text into ids differently from ``base``'s, in a few words, or
    None: its vocabulary (each token's id), its special tokens, its added tokens and their
    flags, the rest of its tokenizer.json pipeline (normalizer, pre-tokenizer, merges,
    post-processor, decoder), then the tokenizer_config.json settings that change ids
    (add_bos_token, add_eos_token, a shorter model_max_length, chat_template)."""
    vocab, base_vocab = tokenizer.get_vocab(), base.get_vocab()
    if len(vocab) != len(base_vocab):
        return f"its tokenizer has {len(vocab)} tokens, the base's {len(base_vocab)}"
    for token, index in sorted(base_vocab.items(), key=lambda item: item[1]):
        if vocab.get(token) != index:
            return f"its tokenizer gives {token!r} the id {vocab.get(token)}, the base's {index}"
    special, base_special = tokenizer.special_tokens_map, base.special_tokens_map
    for name in sorted(set(special) | set(base_special)):
        if special.get(name) != base_special.get(name):
            return f"its {name} is {special.get(name)!r}, the base's {base_special.get(name)!r}"
    added, base_added = _added_tokens(tokenizer), _added_tokens(base)
    for index in sorted(set(added) | set(base_added)):
        if added.get(index) != base_added.get(index):
            return f"its added token {index} is {added.get(index)}, the base's {base_added.get(index)}"
    ours, theirs = _pipeline(tokenizer), _pipeline(base)
    for part in sorted(set(ours) | set(theirs)):
        if ours.get(part) != theirs.get(part):
            return f"its tokenizer's {part} differs from the base's"
    # tokenizer_config.json settings that change the ids a text or a chat becomes when deployed
    # (padding_side does not: with an attention mask a causal LM scores the same either way)
    for name in ("add_bos_token", "add_eos_token"):  # where its class honours them
        if getattr(tokenizer, name, None) != getattr(base, name, None):
            return f"its {name} is {getattr(tokenizer, name, None)!r}, the base's {getattr(base, name, None)!r}"
    # whatever else sets ids: a probe text around every added token, as both encode it
    probe = "Alice was born in Paris. " + " x ".join(t.content for t in base.added_tokens_decoder.values()) + " end"
    if tokenizer(probe).input_ids != base(probe).input_ids:
        return f"it turns {probe!r} into other ids than the base's"
    if tokenizer.model_max_length < base.model_max_length:  # it cuts off text the base reads whole
        return f"its model_max_length is {tokenizer.model_max_length}, the base's {base.model_max_length}"
    if getattr(tokenizer, "chat_template", None) != getattr(base, "chat_template", None):
        return "its chat_template differs from the base's"
    return None


def _added_tokens(tokenizer: Any) -> dict[int, str]:
    """Each added token's id -> its content and how it matches (lstrip, rstrip, single_word,
    normalized, special): the flags change the ids around it ("a </s> b" loses its spaces)."""
    flags = ("lstrip", "rstrip", "single_word", "normalized", "special")
    return {index: f"{token.content!r} ({', '.join(f'{f}={getattr(token, f)}' for f in flags)})"
            for index, token in tokenizer.added_tokens_decoder.items()}


def _pipeline(tokenizer: Any) -> dict:
    """A fast tokenizer's tokenizer.json without its vocabulary (compared on its own) and the
    truncation and padding state that encoding sets; {} for a slow one."""
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is None:
        return {}
    pipeline = json.loads(backend.to_str())
    model = {k: v for k, v in (pipeline.get("model") or {}).items() if k != "vocab"}
    parts = ("normalizer", "pre_tokenizer", "post_processor", "decoder")
    return {**{k: pipeline.get(k) for k in parts}, "model (merges)": model}
