"""The catalog of reliability properties: each property's gated metrics, option keys,
direction, default thresholds and levels, and how its tests are parametrized (a leaf).

Everything else reads a property from here: ``options`` writes the threshold options'
defaults and help from it, ``config`` validates thresholds and levels against it,
``matrix`` parametrizes a suite by its ``axis``, the measures register against its key,
and the report lays its tables out by it. A property from outside the package (a plugin,
a conftest) is one more ``Property`` given through the ``pytest_qrel_register_properties``
hook (see ``hooks.py``) with its ``Measure`` class.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterator, Literal, Mapping

# How a property's tests are parametrized: one per variant; per variant and multiple-choice
# task (ids <variant>-<task>); per variant and (perturbation, intensity) (ids
# <variant>-<perturbation>-i<intensity>); per (fitted metric, variant) for a fitted-law bound.
Axis = Literal["variant", "task", "condition", "scaled"]
Harm = Literal["higher", "lower"]


@dataclass(frozen=True)
class Metric:
    """One gated metric: its results.json name, its key in the threshold and level options
    (``--qrel-calibration-threshold=ece:0.05``, ``--qrel-alpha=ece:0.01``), which direction
    is harm, its default threshold (per bit-width for KL; None where the bound comes with the
    measurement, as a fitted law's band) and its default significance level (None: the gate
    has no statistical test)."""

    name: str
    key: str
    harm: Harm = "higher"
    threshold: float | Mapping[int, float] | None = None
    alpha: float | None = None
    # True: the value is already a change from the base (an increase, a drop): the report
    # shows the base's level beside it, never a difference of the two
    change: bool = False
    # a threshold must be below it: no harm of the metric can reach it (an accuracy drop of 1)
    upper: float | None = None
    # the option that sets this metric's threshold on its own, instead of the property's
    # threshold option; with no default threshold the metric is off unless it is given
    option: str | None = None
    # True: a measured value with its threshold is always decided (no significance test or
    # sample-size power leaves it not checked): a record "not checked" past its threshold hides
    # a failure (--qrel-merge refuses it)
    checked_when_measured: bool = False

    @property
    def higher_is_better(self) -> bool:
        return self.harm == "lower"

    @property
    def per_bit_width(self) -> bool:
        """Whether its threshold is one per bit-width (its option takes bits:value pairs)."""
        return isinstance(self.threshold, Mapping)


@dataclass(frozen=True)
class Property:
    """One reliability property: the name a suite asks ``qrel.gate`` for (``key``), the
    property its records carry in results.json (``records_as``, default ``key``), its gated
    metrics, its parametrization, the option that sets its thresholds, and whether the
    report fits scaling laws on its values."""

    key: str
    title: str  # one line, for the report and --help
    metrics: tuple[Metric, ...]
    axis: Axis = "variant"
    # e.g. --qrel-calibration-threshold (metric:value pairs); a plugin property's option is made from it alone
    threshold_option: str | None = None
    fitted: bool = False  # paper 000 eq. 6 / paper 002 laws are fitted on its values in the report
    records_as: str = ""  # results.json's property of its records; "" (the default): ``key``
    scales: tuple[str, ...] = field(default=())  # for axis "scaled": the properties whose laws it bounds

    def __post_init__(self) -> None:
        if not self.records_as:
            object.__setattr__(self, "records_as", self.key)

    def metric(self, name_or_key: str) -> Metric:
        for m in self.metrics:
            if name_or_key in (m.name, m.key):
                return m
        raise ValueError(f"Expected a metric of property {self.key!r} ({', '.join(m.name for m in self.metrics)}), "
                         f"but got {name_or_key!r}")

    @property
    def keys(self) -> tuple[str, ...]:
        return tuple(m.key for m in self.metrics)

    @property
    def option_keys(self) -> tuple[str, ...]:
        """The keys its threshold option (metric:value pairs) sets: those without an option of their own."""
        return tuple(m.key for m in self.metrics if m.option is None)

    def default_thresholds(self) -> dict[str, float]:
        """metric key -> default threshold, for the metrics with one number."""
        return {m.key: m.threshold for m in self.metrics if isinstance(m.threshold, (int, float))}


# Paper 000 Fig. 6: 4-bit models keep a small KL at every scale while 2-bit ones shift
# behaviour substantially; these bounds pass 8- and 4-bit variants that stay close to their
# base and fail 2-bit variants that do not (mean token KL in nats, per bit-width).
KL = Property(
    "kl", "KL to base: mean token KL(P_base || P_quant) on held-out text (paper 000 eq. 7)",
    (Metric("kl_to_base", "kl", threshold={2: 0.5, 3: 0.2, 4: 0.1, 8: 0.01}, checked_when_measured=True),
     # off unless their options set a threshold: the KL's tail and top-1 agreement (issue 16)
     Metric("kl_p99", "kl_p99", option="--qrel-kl-p99-threshold", checked_when_measured=True),
     Metric("top1_agreement", "top1", harm="lower", option="--qrel-top1-threshold", checked_when_measured=True)),
    threshold_option="--qrel-kl-threshold", fitted=True,
)
# Paper 003: 4-bit GPTQ costs 7B models 1-3 points of true-class confidence (Tables 2, 5) and
# raises calibration error by up to ~10% (Table 1). A drift fails only when it is also
# significant after the family-wise correction (--qrel-alpha, --qrel-correction).
# Dutta et al. 2024 (arXiv 2407.09141, §3 "flips"): a compressed model can keep its base's
# accuracy while changing which questions it gets right; the flip rate (right->wrong plus
# wrong->right, a share of the questions) is gated when --qrel-flips-threshold sets a bound.
CALIBRATION = Property(
    "calibration", "calibration drift: ECE, adaptive CE and Brier increase per task (paper 003 Table 1)",
    (Metric("ece_increase", "ece", threshold=0.05, alpha=0.05, change=True, upper=1.0),
     Metric("ace_increase", "ace", threshold=0.03, alpha=0.05, change=True, upper=1.0),
     Metric("brier_increase", "brier", threshold=0.1, alpha=0.05, change=True, upper=2.0),
     Metric("flip_rate", "flips", alpha=0.05, change=True, upper=1.0, option="--qrel-flips-threshold")),
    axis="task", threshold_option="--qrel-calibration-threshold", fitted=True,
)
CONFIDENCE = Property(
    "confidence", "confidence shift: true-class confidence drop, entropy increase per task (paper 003 Table 2)",
    (Metric("conf_true_drop", "conf_true", threshold=0.05, alpha=0.05, change=True, upper=1.0),
     Metric("entropy_increase", "entropy", threshold=0.1, alpha=0.05, change=True)),
    axis="task", threshold_option="--qrel-confidence-threshold", fitted=True,
)
# Paper 000 §3.2, Fig. 3: 4-bit models keep the base's accuracy and AUROC under every
# perturbation: accuracy and AUROC(-entropy) below the base under the same perturbation, and
# the extra accuracy / AUROC a variant loses from its unperturbed value beyond the base's.
ROBUSTNESS = Property(
    "robustness", "perturbation robustness: accuracy and AUROC(-entropy) of sampled answers (paper 000 Fig. 3)",
    (Metric("accuracy_drop", "accuracy", threshold=0.05, alpha=0.05, change=True, upper=1.0),
     Metric("auroc_drop", "auroc", threshold=0.05, alpha=0.05, change=True, upper=1.0),
     Metric("robust_accuracy_drop", "robust_accuracy", threshold=0.05, alpha=0.05, change=True, upper=1.0),
     Metric("robust_auroc_drop", "robust_auroc", threshold=0.05, alpha=0.05, change=True, upper=1.0)),
    axis="condition", threshold_option="--qrel-robustness-threshold",
)
FUZZ = Property(
    "fuzz", "fuzzing: greedy answers agree with the base's on hypothesis batches of perturbed prompts",
    (Metric("answer_agreement", "fuzz_agreement", harm="lower", threshold=0.5),),
    records_as="robustness",
)
SCALING = Property(
    "scaling", "fitted-law bounds: a variant inside the band of the law fitted on the others (paper 000 eq. 6)",
    (Metric("kl_to_base", "kl"),),
    axis="scaled", scales=("kl",),
)

BUILTIN: tuple[Property, ...] = (KL, CALIBRATION, CONFIDENCE, ROBUSTNESS, FUZZ, SCALING)


class Catalog:
    """The run's properties by key, in a fixed order: the built-in ones, then those a plugin
    registered. A duplicate key is an error; a lookup miss names the valid keys."""

    def __init__(self, properties: tuple[Property, ...] = BUILTIN) -> None:
        self._by_key: dict[str, Property] = {}
        for p in properties:
            self.add(p)

    def add(self, prop: Property) -> None:
        if not isinstance(prop, Property):
            raise TypeError(f"Expected a pytest_qrel.properties.Property, but got {prop!r}")
        if prop.key in self._by_key:
            raise ValueError(f"property {prop.key!r} is registered twice")
        if not prop.metrics:
            raise ValueError(f"property {prop.key!r} has no gated metric")
        self._by_key[prop.key] = prop

    def __getitem__(self, key: str) -> Property:
        try:
            return self._by_key[key]
        except KeyError:
            raise ValueError(f"unknown property {key!r}; valid: {', '.join(self._by_key)}") from None

    def __iter__(self) -> Iterator[Property]:
        return iter(self._by_key.values())

    def __contains__(self, key: object) -> bool:
        return key in self._by_key

    def with_axis(self, axis: Axis) -> tuple[Property, ...]:
        return tuple(p for p in self if p.axis == axis)

    def recorded(self) -> tuple[str, ...]:
        """results.json's properties, in catalog order."""
        return tuple(dict.fromkeys(p.records_as for p in self))

    def tested_keys(self) -> tuple[str, ...]:
        """The metric keys of every gate with a statistical test (what --qrel-alpha sets)."""
        return tuple(dict.fromkeys(m.key for p in self for m in p.metrics if m.alpha is not None))

    def metric(self, prop: str, name: str) -> Metric:
        """The metric ``name`` as recorded under results.json property ``prop``."""
        for p in self:
            if p.records_as == prop:
                for m in p.metrics:
                    if m.name == name:
                        return m
        raise ValueError(f"unknown metric {name!r} of property {prop!r}")

    def scaled_metrics(self) -> dict[str, str]:
        """metric name -> the property that measures it, for every fitted-law bound."""
        return {self[k].metrics[0].name: k for p in self.with_axis("scaled") for k in p.scales}

    def fitted(self) -> tuple[str, ...]:
        """results.json properties whose values the report's laws are fitted on."""
        return tuple(p.records_as for p in self if p.fitted)


CATALOG = Catalog()
