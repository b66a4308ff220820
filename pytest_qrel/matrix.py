"""The variant matrix of a run (models x methods x bits x ratios, plus pre-quantized
checkpoints paired with their base) and its parametrization of the suites."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Iterable

import pytest

from . import options
from .models import is_zoo_model
from .quant import PRUNERS, get_backend
from .schema import NotRun
from .variants import PRUNED_BITS, Variant

if TYPE_CHECKING:
    from .config import QrelConfig

VARIANT_ARG = "qrel_variant"
SCALED_ARG = "qrel_scaled"  # (metric, variant) of a fitted-law bound test
SCALING_GROUP = "qrel-scaling"
TASK_ARG = "qrel_task"  # the multiple-choice task of a calibration or confidence test
PERTURB_ARG = "qrel_perturbation"  # the (perturbation, intensity) of a robustness test
PROPERTY_MARK = "qrel_property"  # @pytest.mark.qrel_property("calibration") on a suite's test
# why a property of a model outside the zoo was not run: the default tasks and QA prompts are the zoo's
NEEDS_TASKS = f"name its tasks with {options.TASKS}=…"  # lm-eval task names or task YAMLs
NEEDS_QA = f"give {options.QA_FILE}=…"  # a JSONL file of questions and answers
# raised while the quantization libraries import their dependencies: not the user's concern
SUITE_WARNINGS = ("ignore:`torch.jit.script_method` is deprecated:DeprecationWarning",)


def suite_marks(prop: str) -> list[pytest.MarkDecorator]:
    """A suite module's ``pytestmark``: the property its tests gate (so the run plans its
    families and the report its tables) and the warning filter every suite shares."""
    return [getattr(pytest.mark, PROPERTY_MARK)(prop), *(pytest.mark.filterwarnings(w) for w in SUITE_WARNINGS)]


def build_matrix(config: QrelConfig) -> list[Variant]:
    """Every variant the run tests, in a fixed order; ids are unique (a usage error otherwise)."""
    out = []
    for name, source in config.models:
        for method in config.methods:
            if method in PRUNERS:  # one variant per sparsity, gated at the 8-bit thresholds
                out += [Variant(model=name, source=source, method=method, bits=PRUNED_BITS, group_size=None,
                                sparsity=s) for s in config.sparsities]
                continue
            backend = get_backend(method)
            for bits in config.bits:
                for ratio in config.quant_ratios:
                    out.append(
                        Variant(
                            model=name,
                            source=source,
                            method=method,
                            bits=bits,
                            group_size=backend.group_size_for(bits, config.group_size),
                            quant_ratio=ratio,
                            granularity=config.granularity,
                            skip_reason=backend.unsupported_reason(bits),
                        )
                    )
    for c in config.checkpoints:
        out.append(
            Variant(
                model=c.base_name,
                source=c.base_source,
                method=c.method,
                bits=c.bits,
                group_size=c.group_size,
                checkpoint=c.path,
                skip_reason=get_backend(c.method).unsupported_reason(c.bits),
            )
        )
    seen: dict[str, Variant] = {}
    for v in out:
        other = seen.setdefault(v.id, v)
        if other is not v and v.sparsity is not None:
            raise pytest.UsageError(f"{options.SPARSITIES}: {other.sparsity.text} and {v.sparsity.text} would "  # type: ignore[union-attr]
                                    f"share the test id {v.id!r}; give sparsities that differ in a percent")
        if other is not v:
            raise pytest.UsageError(
                f"{options.QUANT_RATIO}: ratios {other.quant_ratio!r} and {v.quant_ratio!r} would share the test id "
                f"{v.id!r}; give ratios that differ in their first six significant digits"
            )
    return out


def parametrize(metafunc: pytest.Metafunc, variants: list[Variant], config: QrelConfig) -> bool:
    """Parametrize a test that takes ``qrel_variant`` over ``variants`` (and one that also takes
    ``qrel_task`` over the run's tasks: ids ``<variant>-<task>``; or ``qrel_perturbation`` over
    the run's (perturbation, intensity) pairs: ids ``<variant>-<perturbation>-i<intensity>``), or
    one that takes ``qrel_scaled`` over (metric, variant) pairs of every metric a fitted-law
    property of the catalog bounds; False if it takes neither."""
    if VARIANT_ARG in metafunc.fixturenames:
        # One xdist group per model: with --dist loadgroup a worker loads each model once.
        metafunc.parametrize(VARIANT_ARG, [_param(v, v, v.id, v.model) for v in variants])
        if TASK_ARG in metafunc.fixturenames:
            tasks = [t.name for t in config.tasks]
            metafunc.parametrize(TASK_ARG, tasks, ids=tasks)
        if PERTURB_ARG in metafunc.fixturenames:
            r = _perturbed(config)
            conds = [(p, i) for p in r.perturbations for i in r.intensities]
            metafunc.parametrize(PERTURB_ARG, conds, ids=[f"{p}-i{i}" for p, i in conds])
        return True
    if SCALED_ARG in metafunc.fixturenames:
        # a law is fitted over every model's variants: all its tests on one worker, run last
        metafunc.parametrize(SCALED_ARG, [_param((metric, v), v, f"{metric}-{v.id}", SCALING_GROUP)
                                          for metric in config.catalog.scaled_metrics() for v in variants])
        return True
    return False


def _perturbed(config: QrelConfig) -> Any:
    """The settings that say the run's perturbations and intensities: those of the catalog's
    property parametrized per perturbation condition."""
    for prop in config.catalog.with_axis("condition"):
        settings = config.property_settings.get(prop.key)
        if hasattr(settings, "perturbations"):
            return settings
    raise ValueError("Expected a property of axis 'condition' whose settings name perturbations, but the catalog has none")


def _param(value: object, v: Variant, test_id: str, group: str) -> object:
    marks = [pytest.mark.xdist_group(group)]
    if v.skip_reason:
        marks.append(pytest.mark.skip(reason=v.skip_reason))
    return pytest.param(value, id=test_id, marks=marks)


def without_default_tasks(items: list[pytest.Item], config: QrelConfig) -> tuple[list[pytest.Item], list[pytest.Item], NotRun]:
    """(kept, deselected, not run): the default tasks and QA prompts are the zoo's synthetic facts,
    meaningful for zoo models only; a model of the user's is tested on calibration and
    confidence once --qrel-tasks names its tasks (e.g. hellaswag or a local YAML), and on
    robustness once --qrel-qa-file gives its questions. Not run: per model, each property whose
    tests were deselected so and what would run them, for the summary, report.md and
    results.json (no property of a user's model vanishes silently)."""

    kept: list[pytest.Item] = []
    dropped: list[pytest.Item] = []
    not_run: NotRun = {}
    for item in items:
        v = variant_of(item)
        callspec = getattr(item, "callspec", None)
        mark = item.get_closest_marker(PROPERTY_MARK)
        on_task = callspec is not None and TASK_ARG in callspec.params and not config.tasks_given
        # a property of QA prompts (its settings name a QA file) on the zoo's own prompts
        on_qa = mark is not None and bool(mark.args) and getattr(
            config.property_settings.get(str(mark.args[0])), "qa_file", "") is None
        if v is None or not (on_task or on_qa) or is_zoo_model(v.model, v.source):
            kept.append(item)
            continue
        dropped.append(item)
        if mark is not None and mark.args:
            not_run.setdefault(v.model, {})[str(mark.args[0])] = NEEDS_TASKS if on_task else NEEDS_QA
    return kept, dropped, not_run


def planned_tests(items: list[pytest.Item]) -> set[tuple[Variant, str | None, str]]:
    """(variant, task, property) of every collected test that names its property."""
    out = set()
    for item in items:
        v, mark = variant_of(item), item.get_closest_marker(PROPERTY_MARK)
        if v is not None and mark is not None and mark.args:
            params = item.callspec.params  # type: ignore[attr-defined]  # a parametrized pytest.Function
            out.add((v, params.get(TASK_ARG, params.get(PERTURB_ARG)), str(mark.args[0])))
    return out


def variant_of(item: pytest.Item) -> Variant | None:
    """The variant a collected test runs on, or None for a test that takes none."""
    callspec = getattr(item, "callspec", None)
    value = callspec.params.get(VARIANT_ARG, callspec.params.get(SCALED_ARG)) if callspec else None
    if isinstance(value, tuple) and len(value) == 2:
        value = value[1]
    return value if isinstance(value, Variant) else None


def progress_label(item: pytest.Item, variants: list[Variant]) -> str:
    """What a test measures, for its progress lines: ``zoo-m · variant 3/8 zoo-m-hqq-4b-g64``."""
    variant = variant_of(item)
    if variant is None:
        return item.name
    same = [v for v in variants if v.model == variant.model]
    where = f"variant {same.index(variant) + 1}/{len(same)} " if variant in same else ""
    return f"{variant.model} · {where}{variant.id}"


def variant_of_nodeid(nodeid: str, variants: list[Variant], scaled_metrics: Iterable[str] = ()) -> Variant | None:
    """The variant a test id names (``...::test_kl_to_base[zoo-m-hqq-4b-g64]``, with a task or a
    perturbation after the variant id, or a fitted-law test's ``<metric>-<variant id>``), for a
    report that carries nothing else (a worker died)."""
    param = nodeid.rsplit("::", 1)[-1].partition("[")[2].rstrip("]")
    params = [param, *(param[len(m) + 1:] for m in scaled_metrics if param.startswith(f"{m}-"))]
    return max((v for v in variants for p in params if p == v.id or p.startswith(f"{v.id}-")),
               key=lambda v: len(v.id), default=None)


def order_items(items: list[pytest.Item], variants: list[Variant]) -> None:
    """Run the tests of one model together, and every property of one variant in a row:
    each base model is loaded and each variant quantized once, whatever the number of
    suites (stable: tests without a variant and ties keep their collected order)."""
    position = {v: i for i, v in enumerate(variants)}
    models = list(dict.fromkeys(v.model for v in variants))

    def key(indexed: tuple[int, pytest.Item]) -> tuple[int, int, int]:
        i, item = indexed
        v = variant_of(item)
        if v is None or v not in position:
            return (-1, -1, i)
        if SCALED_ARG in item.callspec.params:  # type: ignore[attr-defined]  # after every value it fits on
            return (len(models), position[v], i)
        return (models.index(v.model), position[v], i)

    items[:] = [item for _, item in sorted(enumerate(items), key=key)]
