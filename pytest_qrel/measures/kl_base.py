"""The KL measure's text and the base's outputs on it, stored once per (base weights, tokens,
top-k): one safetensors shard per batch in a cache entry, each checked against its digest when it
is read; computed again and held in memory where the cache cannot take them or they changed there
(``metrics/topk.py``: what is stored of the base per token)."""

from __future__ import annotations

import hashlib
import shutil
import tempfile
import warnings
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Callable

from .. import progress
from ..cache import CacheEntry, QuantCache, cache_key, installed_version
from ..errors import QrelCacheWarning, VariantError, one_line
from ..metrics import summarize_topk
from ..model_state import ModelState
from ..properties import KL
from ..rows import scored_rows
from .outputs import code_versions

if TYPE_CHECKING:
    import torch

    from ..config import QrelConfig
    from ..engine import TokenBatch
    from ..store import ModelStore
    from ..variants import Variant

KL_FORMAT = 2  # the stored base outputs' layout; a change is a cache miss


@dataclass(frozen=True)
class KLBatches:
    """One model's KL batches (the zoo's sentences, or windows of --qrel-kl-text or of the shipped
    prose, whose source is ``data.text.KLText``) and what they are, for the report."""

    batches: list[TokenBatch]
    source: str
    note: str | None = None  # a one-line warning for the summary (a model outside the zoo on the shipped prose)
    unknown_share: float = 0.0  # of its tokens, those that are the tokenizer's unknown token (engine.unknown_share)


@dataclass(frozen=True)
class BaseOutputs:
    """The base's stored outputs: one safetensors shard per batch in a cache entry (or held in memory)."""

    entry: CacheEntry | None  # None: the cache could not take them; they are held in ``held``
    topk: int | None  # None: every log-prob
    tokens: int
    forward_passes: int  # base forward passes this process ran to store them (0: read back)
    held: tuple[dict[str, torch.Tensor], ...] = ()
    # the entry also holds every log-prob of the scored tokens (issue 38: a variant whose top-k
    # bounds do not decide reads them, instead of running the base again)
    full: bool = False

    def shard(self, index: int) -> dict[str, torch.Tensor]:
        """Batch ``index``'s outputs; a stored shard is checked against its digest as it is read
        (cache.UnusableEntry if it changed since the entry was checked)."""
        if self.entry is None:
            return self.held[index]
        from safetensors.torch import load

        return load(self.entry.read_verified(f"shard-{index:05d}.safetensors"))

    def full_shard(self, index: int) -> torch.Tensor:
        """Batch ``index``'s every log-prob per scored token (float32, as computed: the exact KL
        from them equals the one with the base run live), checked against its digest as it is read."""
        if self.entry is None or not self.full:
            raise RuntimeError("Expected stored full log-probs")
        from safetensors.torch import load

        return load(self.entry.read_verified(f"full-{index:05d}.safetensors"))["logp"]


@dataclass
class StoredOutputsState(ModelState):
    """What ``StoredBaseOutputs`` keeps per base model (dropped with the base when the store moves on)."""

    # the base's outputs on the model's KL text: set by get() (or held()) at the model's first KL
    # test; its forward_passes is set to 0 once read, so only the first variant counts them
    outputs: BaseOutputs | None = None


class StoredBaseOutputs:
    """The base's outputs on each model's KL text (``text``), once per model and run: read from
    the cache, or computed and written there (a rerun, or another worker, reads them back)."""

    def __init__(self, config: QrelConfig, store: ModelStore, text: Callable[[Variant], KLBatches],
                 version: int) -> None:
        self.config, self.store, self.text = config, store, text
        self.version = version  # KLMeasure's: in the stored outputs' key (outputs.code_versions)
        self.settings = config.property_settings[KL.key]  # KLSettings
        self._tmp: tempfile.TemporaryDirectory | None = None  # the outputs' home when caching is off

    def _cache(self) -> QuantCache:
        if self.config.cache_dir is not None:
            return QuantCache(self.config.cache_dir)
        if self._tmp is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="qrel-kl-")
        return QuantCache(Path(self._tmp.name))

    def get(self, variant: Variant) -> BaseOutputs:
        """The base's outputs on the KL text: read from the cache, or computed and written there
        (once per model and run; a rerun, or another worker, reads them back)."""
        self.store.hold(variant)
        state = self.store.state(variant, StoredOutputsState)
        if state.outputs is not None:
            state.outputs = again = replace(state.outputs, forward_passes=0)
            return again
        from safetensors import SafetensorError
        from safetensors.torch import save_file

        text, base = self.text(variant), self.store.base(variant)
        topk = self.settings.topk
        cache = self._cache()
        full = self._keep_full(variant, text, base.model, topk, cache.root)
        key = cache_key({"kind": "kl_base", "kl_format": KL_FORMAT, "base_weights": self.store.digests(variant).weights,
                         "tokens": tokens_digest(text), "topk": topk, "device": next(base.model.parameters()).device.type,
                         "code": code_versions(self.version), "torch": installed_version("torch"),
                         "transformers": installed_version("transformers"), **({"full": True} if full else {})})
        passes = [0]
        try:
            with cache.lock(key):
                entry = cache.read(key)
                if entry is None:
                    meta = {"kind": "kl_base", "topk": "all" if topk is None else topk, "text": text.source, "tokens": 0,
                            "full": full}

                    def save(directory: Path) -> None:
                        def put(i: int, shard: dict[str, torch.Tensor]) -> None:
                            if full:
                                save_file({"logp": shard.pop("full_logp")}, str(directory / f"full-{i:05d}.safetensors"))
                            save_file(shard, str(directory / f"shard-{i:05d}.safetensors"))

                        meta["tokens"] = self._shards(text, base.model, topk, passes, put, full)

                    entry = cache.write(key, save, meta)
            outputs = BaseOutputs(entry, topk, int(entry.meta["tokens"]), passes[0], full=full)
        except (OSError, SafetensorError) as exc:  # a full disk, a read-only or vanished cache directory
            outputs = self.held(variant, exc, passes[0])
        state.outputs = outputs
        return outputs

    def held(self, variant: Variant, exc: Exception, passes: int = 0) -> BaseOutputs:
        """The base's outputs computed again and held in memory for this run, when the cache could
        not take them or they changed there after they were checked (as a quantized entry that
        cannot be written is measured uncached, store.py): one warning per model."""

        warnings.warn(f"pytest-qrel could not use the cache {self._cache().root} for {variant.model}'s KL base outputs "
                      f"({type(exc).__name__}: {one_line(exc)}); they are computed without it", QrelCacheWarning,
                      stacklevel=3)
        held: list[dict[str, torch.Tensor]] = []
        count = [passes]
        topk = self.settings.topk
        tokens = self._shards(self.text(variant), self.store.base(variant).model, topk, count,
                                   lambda i, shard: held.append(shard))
        outputs = BaseOutputs(None, topk, tokens, count[0], tuple(held))
        self.store.state(variant, StoredOutputsState).outputs = outputs
        return outputs

    def _keep_full(self, variant: Variant, text: KLBatches, model: torch.nn.Module, topk: int | None, root: Path) -> bool:
        """Whether the base pass also stores every log-prob of the scored tokens: when the top-k
        bounds can be inexact (a vocabulary larger than k) and they fit in half the cache's free
        disk (float32: 4 bytes x vocabulary per token); otherwise a variant whose bounds do not
        decide runs the base again beside it (K + 1 forward passes become up to 2K + 1), said once."""
        vocab = int(model.get_output_embeddings().weight.shape[0])
        if topk is None or vocab <= topk:
            return False
        need = scored_tokens(text) * vocab * 4
        try:
            root.mkdir(parents=True, exist_ok=True)
            free = shutil.disk_usage(root).free
        except OSError:  # the cache cannot be written: the outputs are held in memory, without them
            return False
        if need <= free / 2:
            return True
        warnings.warn(f"pytest-qrel: {variant.model}'s full log-probs on the KL text need {need / 2**30:.1f} GiB, more than "
                      f"half the {free / 2**30:.1f} GiB free at {root}: a variant whose top-{topk} KL bounds do not decide "
                      f"runs the base again", QrelCacheWarning, stacklevel=3)
        return False

    @staticmethod
    def _shards(text: KLBatches, model: torch.nn.Module, topk: int | None, passes: list[int],
                put: Callable[[int, dict[str, torch.Tensor]], None], full: bool = False) -> int:
        """The base's outputs on ``text``, one shard per batch handed to ``put`` (with ``full``,
        also every log-prob as ``full_logp``); the number of scored tokens. ``passes[0]`` counts
        the forward passes (an error mid-way keeps the count)."""
        import torch

        tokens = 0
        with progress.step("KL base outputs", scored_tokens(text), "tok", model) as bar:
            for i, batch in enumerate(text.batches):
                parts: dict[str, list[torch.Tensor]] = {}
                try:
                    for block in scored_rows(model, [batch]):
                        rows = ({"logp": block.logp, "ref_logp": block.logp.gather(-1, block.ref[:, None]).squeeze(-1)}
                                if topk is None else summarize_topk(block.logp, topk, block.ref).as_tensors())
                        if full:
                            rows["full_logp"] = block.logp
                        for name, t in rows.items():
                            parts.setdefault(name, []).append(t)
                        tokens += len(block.ref)
                        bar.update(len(block.ref))
                except (FloatingPointError, MemoryError) as exc:  # the base's own logits are NaN, or do not fit
                    raise VariantError(f"the base model: {exc}") from None
                passes[0] += 1
                put(i, {k: torch.cat(v).contiguous() for k, v in parts.items()})
        return tokens


def scored_tokens(text: KLBatches) -> int:
    return sum(int(b.score_mask.sum()) for b in text.batches)


def tokens_digest(text: KLBatches) -> str:
    """SHA-256 of the KL text's batches as tokens (what the base's and a variant's outputs are on)."""
    digest = hashlib.sha256()
    for b in text.batches:
        digest.update(b.input_ids.numpy().tobytes() + b.attention_mask.numpy().tobytes() + f"|{b.score_from}|".encode())
    return digest.hexdigest()
