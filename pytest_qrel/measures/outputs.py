"""A measure's model outputs, each computed once per (weights, data, settings) across workers
and reruns (issue 17 item 1): a family's per-question scores of the base and of each variant,
fuzzing's greedy answers of the base, kept in the cache directory as arrays under their lock.

The first process that needs an output computes it and writes it; another one that finds it
being computed (its lock held) does other work first and then reads it (``ahead``: try, and
defer what is busy); a rerun reads it. The key is conservative: the model's weights (the base's
content digest and tokenizer, or the variant's quantization key, itself on the base's content),
the device kind, the data's content and every setting the output depends on, the installed
torch and transformers, and the versions of the code that computes it (``code_versions``: the
measure's ``Measure.version`` and engine.py's, rows.py's and sampling.py's ``VERSION``). Any change
is a miss. The versions, not the source text, are in the key: a docstring or a refactor keeps
every user's cache; a change of what a measure computes must bump its version (or the shared
module's), and tests/e2e/test_measure_versions.py fails when a measure's output changes and no
version does.
A pre-quantized checkpoint's outputs are not kept (its key would need its files' digest): each
process that needs them computes them.
"""

from __future__ import annotations

import hashlib
import warnings
from contextlib import ExitStack
from typing import TYPE_CHECKING, Any, Callable, Hashable, Iterable, TypeVar

from .. import engine, rows, sampling
from ..cache import QuantCache, cache_key, installed_version, read_arrays, write_arrays
from ..errors import QrelCacheWarning

if TYPE_CHECKING:
    from ..config import QrelConfig
    from ..store import ModelStore
    from ..variants import Variant

OUTPUTS_FORMAT = 1  # the stored outputs' layout; a change is a miss
Score = TypeVar("Score")
# what one stored output is of: a family's unit (hypotheses.Unit), a fuzzing batch, a KL text's tokens
Part = TypeVar("Part", bound=Hashable)


def code_versions(measure_version: int) -> dict[str, int]:
    """The code versions a stored output's key carries: the measure's own (``Measure.version``)
    and those of the shared modules below it whose numbers it stores.

    Every key carries all three shared versions, not only those of the modules a measure calls:
    the measures cross them (KL: engine's batches and rows' log-probs; the choice family: engine;
    robustness and fuzzing: sampling and engine's encodings), and a hand-kept list per measure is
    one more thing to get wrong, where a wrong list is a stale hit (old numbers) while one version
    too many costs only a miss after a rare bump."""
    return {"measure": measure_version, "engine": engine.VERSION, "rows": rows.VERSION, "sampling": sampling.VERSION}


def output_key(kind: str, model: str, part: Hashable, described: dict[str, Any], version: int) -> str:
    """The cache key of one stored output: what it is (``kind``, the layout), the weights that
    computed it (``model``), what it is of (``part``, ``described``: its data and settings), the
    code versions (``code_versions``; never the source text) and the installed torch and
    transformers."""
    return cache_key({"kind": kind, "outputs_format": OUTPUTS_FORMAT, "model": model, "unit": repr(part), **described,
                      "code": code_versions(version), "torch": installed_version("torch"),
                      "transformers": installed_version("transformers")})


def data_digest(*parts: Iterable[Any]) -> str:
    """SHA-256 of sequences of texts or numbers, in order (a unit's data)."""
    h = hashlib.sha256()
    for part in parts:
        for x in part:
            h.update(repr(x).encode() + b"\0")
        h.update(b"\1")
    return h.hexdigest()


class Outputs:
    """The run's stored outputs of one measure (``version``: its ``Measure.version``, in every
    key; ``Measure.outputs`` makes it), None when caching is off: everything is computed."""

    def __init__(self, config: QrelConfig, store: ModelStore, version: int = 1) -> None:
        self.config, self.store, self.version = config, store, version
        self.cache = QuantCache(config.cache_dir) if config.cache_dir is not None else None

    def model_key(self, variant: Variant, base: bool) -> str | None:
        """What identifies the weights that compute an output: ``variant``'s base, or the
        variant itself; None for a pre-quantized checkpoint (its outputs are not kept)."""
        if not base and variant.checkpoint:
            return None
        device = self.store.hold(variant).device_type
        if base:
            digests = self.store.digests(variant)
            return f"base:{digests.weights}:{digests.tokenizer}:{device}"
        return f"variant:{self.store.cache_key(variant)}:{device}"

    def get(
        self,
        kind: str,
        model: str | None,
        units: list[Part],
        describe: Callable[[Part], dict[str, Any]],
        compute: Callable[[list[Part]], dict[Part, Score]],
        encode: Callable[[Score], dict[str, Any]],
        decode: Callable[[dict[str, Any]], Score],
        ahead: bool = False,
    ) -> dict[Part, Score] | None:
        """``units``' outputs by ``model`` (``model_key``): read, or computed together in one
        ``compute`` call and written, each under its own lock (taken in key order, so two
        processes never wait for each other). ``ahead``: None, and nothing done, if another
        process holds one of the locks."""
        if self.cache is None or model is None or not units:
            return compute(units) if units else {}
        keys = {u: output_key(kind, model, u, describe(u), self.version) for u in units}
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
            got: dict[Part, Score] = {}
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
