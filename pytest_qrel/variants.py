"""Variants (model x method x bits x group size) and their bit accounting."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Literal, Mapping, cast

from .schema import VariantEntry


def effective_bits(bits: int, group_size: int | None, scale_bits: int = 16, symmetric: bool = False) -> float:
    """Bits stored per weight by a group-wise quantizer (paper 002, App. D table).

    ``b_eff = b + (b_scale + b_zero) / G`` with ``b_zero = b`` for asymmetric schemes (a
    zero point per group, stored at the weight's bit-width) and 0 for symmetric ones.
    A ``group_size`` of None means one scale per output row is negligible: ``b_eff = b``.

    >>> effective_bits(4, 128)
    4.15625
    >>> effective_bits(4, 64, symmetric=True)
    4.25
    """
    if not isinstance(bits, int) or isinstance(bits, bool) or bits < 1:
        raise ValueError(f"Expected `bits` to be a positive integer, but got {bits!r}")
    if group_size is None:
        return float(bits)
    if not isinstance(group_size, int) or isinstance(group_size, bool) or group_size < 1:
        raise ValueError(f"Expected `group_size` to be a positive integer or None, but got {group_size!r}")
    zero_bits = 0 if symmetric else bits
    return bits + (scale_bits + zero_bits) / group_size


def total_model_bits(param_bits: Iterable[tuple[int, float]]) -> float:
    """Total model bits ``B = sum over tensors of numel x bits per element`` (paper 000 §4).

    ``param_bits`` yields (number of elements, bits per element) for every tensor of the
    model, quantized weights at their effective bit-width and the rest at their dtype.
    """
    return float(sum(n * b for n, b in param_bits))


@dataclass(frozen=True)
class Sparsity:
    """What is asked: a share ``fraction`` of the weights pruned, unstructured (``m == 0``) or
    ``n`` of each ``m`` consecutive weights of a row."""

    fraction: float
    n: int = 0
    m: int = 0

    @classmethod
    def parse(cls, text: str) -> Sparsity:
        """``"0.5"`` (unstructured) or ``"2:4"`` (n:m)."""
        if ":" in text:
            n, m = (int(p) for p in text.split(":"))
            if not 0 < n < m:
                raise ValueError(f"Expected n:m with 0 < n < m, but got {text!r}")
            return cls(n / m, n, m)
        value = float(text)
        if not 0 < value < 1:
            raise ValueError(f"Expected a sparsity in (0, 1) or n:m, but got {text!r}")
        return cls(value)

    @property
    def text(self) -> str:
        """How the option and results.json write it: ``"0.5"``, ``"2:4"``."""
        return f"{self.n}:{self.m}" if self.m else repr(self.fraction)

    def __str__(self) -> str:  # as written in an error message
        return self.text

    @property
    def label(self) -> str:
        """What a variant id says: ``s50`` for 0.5, ``2of4`` for 2:4."""
        return f"{self.n}of{self.m}" if self.m else f"s{self.fraction * 100:g}"

    def row_count(self, width: int) -> int:
        """Weights pruned of a ``width``-wide row (unstructured): never fewer than asked."""
        return min(width, math.ceil(self.fraction * width - 1e-9))


# A pruned variant is gated at the thresholds of this bit-width (its ``bits``): a 16-bit weight
# pruned to 50% costs 8 bits of values and 1 of mask, the size of an 8-bit quantized one, and
# paper 000 §4.2 (Figs. 9-10 against Fig. 6) compares pruning with quantization at equal size.
PRUNED_BITS = 8


@dataclass(frozen=True)
class Variant:
    """One quantized variant of a model: what a test id names.

    ``skip_reason`` is set when the backend cannot produce this variant (an unsupported
    method x bits pair, a backend whose package is missing); the test is then skipped with
    that reason and the report lists it.
    """

    model: str  # short model name used in ids, e.g. "zoo-m"
    source: str  # where the model comes from: a local directory or a hub id
    method: str
    bits: int
    group_size: int | None
    quant_ratio: float = 1.0  # share of linear weights quantized (paper 004's Q_r)
    granularity: str = "matmul"  # what mixed precision allocates: "layer" or "matmul"
    checkpoint: str | None = None  # a pre-quantized checkpoint's directory: loaded, not quantized
    # a pruned variant's asked sparsity (its bits are then PRUNED_BITS, the thresholds it is gated at)
    sparsity: Sparsity | None = None
    skip_reason: str | None = field(default=None, compare=False)

    @property
    def family(self) -> str:
        """Which variants one fitted law spans (law_family): its bit-width's, or its sparsity's."""
        return law_family({"bits": self.bits, "sparsity": None if self.sparsity is None else self.sparsity.text})

    @property
    def id(self) -> str:
        if self.sparsity is not None:
            return f"{self.model}-{self.method}-{self.sparsity.label}"
        group = f"-g{self.group_size}" if self.group_size else ""
        mixed = f"-q{self.quant_ratio:g}{self.granularity[0]}" if self.quant_ratio < 1 else ""
        ckpt = f"-ckpt-{id_safe(Path(self.checkpoint).name)}" if self.checkpoint else ""
        return f"{self.model}-{self.method}-{self.bits}b{group}{mixed}{ckpt}"


@dataclass
class QuantizedInfo:
    """What a backend really did to a model, measured after quantization.

    ``coverage`` is the share of the weights asked to be quantized (``requested_layers``)
    that really were; ``skipped`` names each asked-for layer left at full precision and
    why, ``regrouped`` each layer quantized with another group size than asked and why.
    ``effective_bits`` is paper 002's b + (16 + z) / G averaged over the quantized weights;
    ``storage_bits`` what they really store per weight on this device; ``total_bits`` counts
    quantized weights at their effective bits and every other tensor at the checkpoint's
    own dtype, so that it is the same on every device."""

    quantized_layers: list[str]
    requested_layers: list[str]
    linear_layers: int
    group_size: int | None
    effective_bits: float
    storage_bits: float
    params: int
    total_bits: float
    state_dict_bytes: int
    quantized_fraction: float  # measured share of all linear-layer weights that were quantized
    coverage: float
    base_total_bits: float = 0.0  # the full-precision base: every tensor at the checkpoint's dtype
    skipped: dict[str, str] = field(default_factory=dict)
    regrouped: dict[str, str] = field(default_factory=dict)
    # a pruned variant: the share of zeros over the weights asked to be pruned (None: not pruned)
    measured_sparsity: float | None = None

    def as_dict(self) -> dict:
        return {
            "quantized_layers": len(self.quantized_layers),
            "linear_layers": self.linear_layers,
            "group_size": self.group_size,
            "effective_bits": round(self.effective_bits, 6),
            "storage_bits": round(self.storage_bits, 6),
            "params": self.params,
            "total_bits": self.total_bits,
            "base_total_bits": self.base_total_bits,
            "state_dict_bytes": self.state_dict_bytes,
            "quantized_fraction": round(self.quantized_fraction, 6),
            "coverage": round(self.coverage, 6),
            "skipped": dict(self.skipped),
            "regrouped": dict(self.regrouped),
            **({} if self.measured_sparsity is None else {"measured_sparsity": round(self.measured_sparsity, 6)}),
        }


# where a variant's weights came from: its cache entry ("hit"), quantized and stored ("miss"),
# quantized without a cache ("off"), or a pre-quantized checkpoint loaded as it is
CacheState = Literal["hit", "miss", "off", "prequantized"]


@dataclass
class VariantInfo:
    """What one process learned of a variant: what its quantization measured and where its
    weights came from, or why it could not be quantized; and the base forward passes its KL
    test ran. ``as_dict`` is the form a test's report and results.json's "variants" carry."""

    quantized: QuantizedInfo | None = None
    cache: CacheState | None = None
    error: str | None = None  # one line; set alone (a quantization error replaces the rest)
    # base forward passes of its KL test, 0 when the stored base outputs were read back
    # (run-dependent, like the cache state); kept when the variant is quantized again
    kl_base_forward_passes: int | None = None

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {} if self.error is None else {"error": self.error}
        out.update(self.quantized.as_dict() if self.quantized is not None else {})
        out.update({} if self.cache is None else {"cache": self.cache})
        out.update({} if self.kl_base_forward_passes is None else {"kl_base_forward_passes": self.kl_base_forward_passes})
        return out


def variant_record(variant: Variant, info: Mapping | None) -> VariantEntry:
    """The ``variants`` entry of results.json for one variant (schema.VariantEntry), with
    ``info``: what its quantization measured."""
    rec: VariantEntry = {
        "id": variant.id,
        "model": variant.model,
        "source": variant.source,
        "method": variant.method,
        "bits": variant.bits,
        "group_size": variant.group_size,
        "quant_ratio": variant.quant_ratio,
        "granularity": variant.granularity if variant.quant_ratio < 1 else None,
        "checkpoint": variant.checkpoint,
        "sparsity": None if variant.sparsity is None else variant.sparsity.text,
        "params": None,
        "total_bits": None,
        "effective_bits": None,
        "skip_reason": variant.skip_reason,
    }
    return cast(VariantEntry, {**rec, **info}) if info else rec


def bits_label(v: Mapping[str, Any]) -> str:
    """A variant entry's bits as the tables show them: its bit-width, or a pruned variant's
    asked sparsity and, once pruned, what was measured (e.g. ``0.1 sparse (0.109)``)."""
    if v.get("sparsity") is None:
        return str(v["bits"])
    measured = v.get("measured_sparsity")
    return f"{v['sparsity']} sparse" + ("" if measured is None else f" ({measured:.3f})")


def law_family(v: Mapping[str, Any]) -> str:
    """Which variants one fitted law spans (paper 000 eq. 6 is fitted per bit-width over the
    models): those of a bit-width, or a pruned variant's, those of its sparsity."""
    return f"{v['bits']}-bit" if v.get("sparsity") is None else f"sparsity {v['sparsity']}"


def id_safe(name: str) -> str:
    """``name`` with every run of characters a test id should not hold replaced by ``_``."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name)
