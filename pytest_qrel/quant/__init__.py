"""Quantization backends: a registry from method name to backend.

A lookup miss raises ``ValueError`` listing the valid names; registering a name twice
raises too. Backends import their libraries only when they quantize, so the registry
(and option validation) costs nothing at start-up.
"""

from ..errors import QuantizationError
from .base import Backend
from .pruner import PRUNERS
from .registry import BACKENDS, backend_for, get_backend, register, supported_bits

__all__ = [
    "BACKENDS",
    "Backend",
    "PRUNERS",
    "QuantizationError",
    "backend_for",
    "get_backend",
    "register",
    "supported_bits",
]
