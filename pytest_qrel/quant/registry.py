"""The registry of quantization backends: method name -> backend, with its supported bits."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .awq import AWQBackend
from .base import Backend
from .bnb import BitsAndBytesBackend, BitsAndBytesFP4Backend
from .compressed import CT_BACKENDS
from .gguf import GGUFBackend
from .gptq import GPTQBackend
from .hqq import HQQBackend
from .pruner import PRUNERS, Pruner
from .quanto import (
    QuantoBackend,
    QuantoFloat8Backend,
    QuantoFloat8W8A8Backend,
    QuantoW8A8Backend,
)
from .rtn import RTNBackend
from .smoothquant import SmoothQuantBackend

if TYPE_CHECKING:
    from ..variants import Variant

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


def backend_for(variant: Variant) -> Backend | Pruner:
    """What builds, measures, stores and reads back ``variant``: its method's backend, or its
    pruning method bound to its sparsity."""
    if variant.sparsity is not None:
        return PRUNERS[variant.method].at(variant.sparsity)
    return get_backend(variant.method)


def supported_bits() -> list[int]:
    return sorted({b for backend in BACKENDS.values() if backend.quantizes for b in backend.bits})


for _backend in (
    RTNBackend,
    HQQBackend,
    BitsAndBytesBackend,
    BitsAndBytesFP4Backend,
    GPTQBackend,
    AWQBackend,
    QuantoBackend,
    QuantoFloat8Backend,
    QuantoW8A8Backend,
    QuantoFloat8W8A8Backend,
    SmoothQuantBackend,
    *CT_BACKENDS,
    GGUFBackend,
):
    register(_backend())
