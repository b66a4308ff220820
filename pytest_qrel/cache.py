"""A content-addressed on-disk cache of quantized models and of model outputs.

Quantizing is the expensive step of a run, so a quantized model is kept under a key that
hashes everything its weights depend on: the base weights' content, the backend and its
library version, and every quantization parameter. Any change of a key part is a miss.
The outputs a measure needs of a model (the base's KL top-k, a family's per-question scores,
fuzzing's greedy answers) are kept the same way, as arrays (``write_arrays``: an ``.npz``
read back without pickle), under a key of the model's weights, the data and the settings.

Entries are written into a private temporary directory and renamed into place (atomic on
POSIX), under a cross-process file lock so that two xdist workers never quantize the same
variant twice nor read a half-written entry. Every file of an entry is listed with its
SHA-256 in ``manifest.json``; an entry that fails the check (truncated, edited, partly
deleted) is discarded with a warning and rebuilt, never used.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import uuid
import warnings
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterator

from .errors import QrelCacheWarning, UnusableEntry
from .placement import offloaded_value

if TYPE_CHECKING:
    import torch

FORMAT_VERSION = 1
MANIFEST = "manifest.json"


@lru_cache(maxsize=None)
def installed_version(package: str) -> str:
    """The installed version of ``package`` (part of cache keys); read from its metadata once
    per process (``importlib.metadata.version`` scans the environment on every call: ~5 ms,
    paid per key otherwise). PackageNotFoundError as that function."""
    from importlib.metadata import version

    return version(package)


def default_cache_dir() -> Path:
    import platformdirs

    return Path(platformdirs.user_cache_dir("pytest-qrel")) / "quantized"


def state_dict_digest(model: torch.nn.Module) -> str:
    """SHA-256 of a model's weights: names, dtypes, shapes and bytes, in a fixed order."""
    import torch

    h = hashlib.sha256()
    state = model.state_dict()
    for name in sorted(state):  # an offloaded tensor read back one at a time (placement.py)
        tensor = offloaded_value(model, name) if state[name].device.type == "meta" else state[name]
        t = tensor.detach().cpu().contiguous()
        h.update(f"{name}|{t.dtype}|{tuple(t.shape)}|".encode())
        if t.numel():
            h.update(memoryview(t.view(-1).view(torch.uint8).numpy()))  # no copy of the bytes
    return h.hexdigest()


# what a config records of where and by which version it was written, not of what the model computes
_CONFIG_PROVENANCE = frozenset({"_name_or_path", "name_or_path", "transformers_version", "_commit_hash"})


def model_digest(model: torch.nn.Module) -> str:
    """SHA-256 of what a model computes with: its weights (``state_dict_digest``) and its config
    and generation config (activation, rope, norm epsilon, head counts, stop tokens, ...): the
    same tensors under another config compute other outputs, so they must not share a cache
    entry (a config edited between two runs would otherwise read the first run's outputs)."""
    configs = {}
    for name in ("config", "generation_config"):
        config = getattr(model, name, None)
        if config is not None and hasattr(config, "to_dict"):
            configs[name] = {k: v for k, v in config.to_dict().items() if k not in _CONFIG_PROVENANCE}
    blob = json.dumps(configs, sort_keys=True, default=str)
    return hashlib.sha256(f"{state_dict_digest(model)}|{blob}".encode()).hexdigest()


def cache_key(parts: dict[str, Any]) -> str:
    """The key of an entry: SHA-256 of its key parts as canonical JSON."""
    blob = json.dumps({"format": FORMAT_VERSION, **parts}, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()


def _file_digest(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


@dataclass(frozen=True)
class CacheEntry:
    directory: Path
    meta: dict[str, Any]
    files: dict[str, str] = field(default_factory=dict)  # name -> SHA-256, from the manifest

    def read_verified(self, name: str) -> bytes:
        """The bytes of the entry's file ``name``, checked against its manifest digest at this read:
        an entry read lazily (a file at a time, long after ``QuantCache.read`` checked it) can
        change meanwhile (deleted, overwritten by another process); UnusableEntry if it did."""
        try:
            data = (self.directory / name).read_bytes()
        except OSError as exc:
            raise UnusableEntry(f"{name}: {type(exc).__name__}: {exc}") from None
        if hashlib.sha256(data).hexdigest() != self.files.get(name):
            raise UnusableEntry(f"checksum mismatch in {name}")
        return data


class QuantCache:
    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def entry_dir(self, key: str) -> Path:
        return self.root / key[:2] / key

    @contextmanager
    def lock(self, key: str) -> Iterator[None]:
        from filelock import FileLock

        with FileLock(str(self._lock_path(key))):
            yield

    @contextmanager
    def try_lock(self, key: str) -> Iterator[bool]:
        """The lock of ``key`` if no other process holds it now (True), else nothing (False):
        a worker that finds an output being computed elsewhere does other work meanwhile."""
        from filelock import FileLock, Timeout

        lock = FileLock(str(self._lock_path(key)), timeout=0)
        try:
            lock.acquire()
        except Timeout:
            yield False
            return
        try:
            yield True
        finally:
            lock.release()

    def _lock_path(self, key: str) -> Path:
        path = self.root / key[:2] / f"{key}.lock"
        path.parent.mkdir(parents=True, exist_ok=True)
        return path

    def read(self, key: str) -> CacheEntry | None:
        """The verified entry for ``key``, or None (a corrupt entry is discarded, with a warning)."""
        directory = self.entry_dir(key)
        if not directory.exists():
            return None
        problem = self._verify(directory)
        if problem is None:
            manifest = json.loads((directory / MANIFEST).read_text())
            return CacheEntry(directory, manifest["meta"], manifest["files"])
        self.discard(key, problem)
        return None

    def discard(self, key: str, reason: str) -> None:
        warnings.warn(
            f"pytest-qrel cache entry {key[:12]} is unusable ({reason}); discarding it and computing it again",
            QrelCacheWarning,
            stacklevel=2,
        )
        shutil.rmtree(self.entry_dir(key), ignore_errors=True)

    @staticmethod
    def _verify(directory: Path) -> str | None:
        try:
            manifest = json.loads((directory / MANIFEST).read_text())
            files = manifest["files"]
        except (OSError, ValueError, KeyError, TypeError) as exc:
            return f"unreadable manifest: {type(exc).__name__}"
        for name, digest in files.items():
            path = directory / name
            if not path.is_file():
                return f"missing file {name}"
            if _file_digest(path) != digest:
                return f"checksum mismatch in {name}"
        return None

    def write(self, key: str, save: Callable[[Path], None], meta: dict[str, Any]) -> CacheEntry:
        """Build an entry with ``save(directory)`` in a temporary directory, then rename it
        into place; a failure leaves no entry behind."""
        final = self.entry_dir(key)
        final.parent.mkdir(parents=True, exist_ok=True)
        tmp = final.parent / f".tmp-{key[:12]}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        tmp.mkdir()
        try:
            save(tmp)
            files = {p.name: _file_digest(p) for p in sorted(tmp.iterdir()) if p.is_file()}
            (tmp / MANIFEST).write_text(json.dumps({"files": files, "meta": meta}, indent=1, sort_keys=True, default=str))
            if final.exists():  # an unusable leftover: the lock guarantees no one else is writing it
                shutil.rmtree(final)
            os.rename(tmp, final)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        return CacheEntry(final, meta, files)


ARRAYS = "arrays.npz"


def write_arrays(cache: QuantCache, key: str, arrays: dict[str, Any], meta: dict[str, Any]) -> CacheEntry:
    """An entry of named numeric or string arrays (``np.savez``: no pickled objects)."""
    import numpy as np

    def save(directory: Path) -> None:
        # mypy matches the **kwargs to savez's allow_pickle: bool
        np.savez(directory / ARRAYS, **{k: np.asarray(v) for k, v in arrays.items()})  # type: ignore[arg-type]

    return cache.write(key, save, meta)


def read_arrays(cache: QuantCache, key: str) -> dict[str, Any] | None:
    """The arrays of a verified entry of ``write_arrays``, or None; an entry that verifies but
    does not load (an object array, a file of another kind) is discarded like a corrupt one."""
    import numpy as np

    entry = cache.read(key)
    if entry is None:
        return None
    try:
        with np.load(entry.directory / ARRAYS, allow_pickle=False) as data:
            return {k: data[k] for k in data.files}
    except (OSError, ValueError, KeyError) as exc:
        cache.discard(key, f"{type(exc).__name__}: {exc}")
        return None
