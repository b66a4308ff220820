"""A measure's model outputs, each computed once per (weights, data, settings) across workers
and reruns (issue 17 item 1): a family's per-question scores of the base and of each variant,
fuzzing's greedy answers of the base, kept in the cache directory as arrays under their lock.

The first process that needs an output computes it and writes it; another one that finds it
being computed (its lock held) does other work first and then reads it (``ahead``: try, and
defer what is busy); a rerun reads it. The key is conservative: the model's weights (the base's
content digest and tokenizer, or the variant's quantization key, itself on the base's content),
the device kind, the data's content and every setting the output depends on, the installed
torch and transformers, and the source of the code that computes it. Any change is a miss.
A pre-quantized checkpoint's outputs are not kept (its key would need its files' digest): each
process that needs them computes them.
"""

from __future__ import annotations

import hashlib
import warnings
from contextlib import ExitStack
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Hashable, Iterable, TypeVar

from ..cache import QuantCache, cache_key, installed_version, read_arrays, write_arrays
from ..errors import QrelCacheWarning

if TYPE_CHECKING:
    from ..config import QrelConfig
    from ..store import ModelStore
    from ..variants import Variant

OUTPUTS_FORMAT = 1  # the stored outputs' layout; a change is a miss
Score = TypeVar("Score")
Unit = Hashable


@lru_cache(maxsize=None)
def code_digest() -> str:
    """SHA-256 of the package's source that computes outputs (the engine and the measures): an
    edited engine never reads outputs an older one wrote."""
    root = Path(__file__).resolve().parent.parent
    h = hashlib.sha256()
    for path in [root / "engine.py", root / "rows.py", *sorted((root / "measures").glob("*.py"))]:
        h.update(path.name.encode() + b"\0" + path.read_bytes())
    return h.hexdigest()


def data_digest(*parts: Iterable[Any]) -> str:
    """SHA-256 of sequences of texts or numbers, in order (a unit's data)."""
    h = hashlib.sha256()
    for part in parts:
        for x in part:
            h.update(repr(x).encode() + b"\0")
        h.update(b"\1")
    return h.hexdigest()


class Outputs:
    """The run's stored outputs (None when caching is off: everything is computed)."""

    def __init__(self, config: QrelConfig, store: ModelStore) -> None:
        self.config, self.store = config, store
        self.cache = QuantCache(config.cache_dir) if config.cache_dir is not None else None

    def model_key(self, variant: Variant, base: bool) -> str | None:
        """What identifies the weights that compute an output: ``variant``'s base, or the
        variant itself; None for a pre-quantized checkpoint (its outputs are not kept)."""
        if not base and variant.checkpoint:
            return None
        loaded = self.store.base(variant)
        device = next(loaded.model.parameters()).device.type
        if base:
            digests = self.store.digests(variant)
            return f"base:{digests.weights}:{digests.tokenizer}:{device}"
        return f"variant:{self.store.cache_key(variant)}:{device}"

    def get(
        self,
        kind: str,
        model: str | None,
        units: list[Unit],
        describe: Callable[[Unit], dict[str, Any]],
        compute: Callable[[list[Unit]], dict[Unit, Score]],
        encode: Callable[[Score], dict[str, Any]],
        decode: Callable[[dict[str, Any]], Score],
        ahead: bool = False,
    ) -> dict[Unit, Score] | None:
        """``units``' outputs by ``model`` (``model_key``): read, or computed together in one
        ``compute`` call and written, each under its own lock (taken in key order, so two
        processes never wait for each other). ``ahead``: None, and nothing done, if another
        process holds one of the locks."""
        if self.cache is None or model is None or not units:
            return compute(units) if units else {}
        keys = {u: cache_key({"kind": kind, "outputs_format": OUTPUTS_FORMAT, "model": model, "unit": repr(u),
                              **describe(u), "code": code_digest(), "torch": installed_version("torch"),
                              "transformers": installed_version("transformers")}) for u in units}
        with ExitStack() as stack:
            try:
                for u in sorted(units, key=keys.__getitem__):
                    if ahead:
                        if not stack.enter_context(self.cache.try_lock(keys[u])):
                            return None
                    else:
                        stack.enter_context(self.cache.lock(keys[u]))
            except OSError as exc:  # the cache became unusable: compute, without it
                stack.close()
                self._warn(kind, exc)
                return compute(units)
            got: dict[Unit, Score] = {}
            for u in units:
                arrays = read_arrays(self.cache, keys[u])
                if arrays is not None:
                    got[u] = decode(arrays)
            missing = [u for u in units if u not in got]
            if missing:
                computed = compute(missing)
                for u in missing:
                    try:
                        write_arrays(self.cache, keys[u], encode(computed[u]), {"kind": kind, "unit": repr(u)})
                    except OSError as exc:  # a full or read-only disk: the outputs are used all the same
                        self._warn(kind, exc)
                got.update(computed)
        return {u: got[u] for u in units}

    def _warn(self, kind: str, exc: OSError) -> None:
        assert self.cache is not None
        warnings.warn(f"pytest-qrel could not use the cache {self.cache.root} for {kind} outputs "
                      f"({type(exc).__name__}: {exc}); they are computed without it", QrelCacheWarning, stacklevel=3)
