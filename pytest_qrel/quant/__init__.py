"""Quantization backends: a registry from method name to backend.

A lookup miss raises ``ValueError`` listing the valid names; registering a name twice
raises too. Backends import their libraries only when they quantize, so the registry
(and option validation) costs nothing at start-up.
"""

from __future__ import annotations

from pathlib import Path

from .base import Backend, QuantizationError
from .bnb import BitsAndBytesBackend, BitsAndBytesFP4Backend
from .gptq import GPTQBackend
from .hqq import HQQBackend
from .quanto import QuantoBackend, QuantoFloat8Backend, QuantoFloat8W8A8Backend, QuantoW8A8Backend
from .rtn import RTNBackend

BACKENDS: dict[str, Backend] = {}


def register(backend: Backend) -> Backend:
    if backend.name in BACKENDS:
        raise ValueError(f"Expected a new backend name, but {backend.name!r} is already registered")
    BACKENDS[backend.name] = backend
    return backend


def get_backend(name: str) -> Backend:
    try:
        return BACKENDS[name]
    except KeyError:
        raise ValueError(f"Expected a quantization method in {sorted(BACKENDS)}, but got {name!r}") from None


def identify_checkpoint(path: Path) -> tuple[str, int, int | None]:
    """(method, bits, group size) of a pre-quantized checkpoint directory, read from its
    config's ``quantization_config`` (or a backend's own format); ValueError if no backend
    here made it."""
    import json

    try:
        config = json.loads((path / "config.json").read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise ValueError(f"cannot read {path / 'config.json'}: {exc}") from None
    qc = config.get("quantization_config") if isinstance(config, dict) else None
    for backend in BACKENDS.values():
        try:
            found = backend.read_checkpoint(path, qc if isinstance(qc, dict) else None)
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise ValueError(f"{path}: unreadable quantization_config for {backend.name} ({exc})") from None
        if found:
            return (backend.name, *found)
    method = (qc or {}).get("quant_method", "unknown")
    raise ValueError(
        f"{path} is quantized with quant_method {method!r}, which pytest-qrel does not load; "
        "it loads gptq (gptqmodel), bitsandbytes (nf4, fp4, int8) and optimum-quanto checkpoints"
    )


def is_prequantized(path: Path) -> bool:
    """Whether a local checkpoint directory holds quantized weights."""
    import json

    from .quanto import QUANTO_QMAP

    try:
        config = json.loads((path / "config.json").read_text())
    except (OSError, json.JSONDecodeError):
        return False
    return (isinstance(config, dict) and bool(config.get("quantization_config"))) or (path / QUANTO_QMAP).is_file()


def supported_bits() -> list[int]:
    return sorted({b for backend in BACKENDS.values() for b in backend.bits})


for _backend in (
    RTNBackend,
    HQQBackend,
    BitsAndBytesBackend,
    BitsAndBytesFP4Backend,
    GPTQBackend,
    QuantoBackend,
    QuantoFloat8Backend,
    QuantoW8A8Backend,
    QuantoFloat8W8A8Backend,
):
    register(_backend())

__all__ = [
    "BACKENDS",
    "Backend",
    "QuantizationError",
    "get_backend",
    "identify_checkpoint",
    "is_prequantized",
    "register",
    "supported_bits",
]
