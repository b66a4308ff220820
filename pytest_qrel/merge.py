"""``--qrel-merge a.json b.json ...``: separate runs joined into one report (issue 17, item 4b).

Runs made apart (one per host, Slurm array task or CI matrix job, each with its own ``--qrel-models``)
each write ``results.json``; merging them runs no test and writes the report a single run over the union
would have written: its records are the runs', its tables, laws, plots and exit status computed from them
as at the end of a run (``summary.summarize``, ``report.write_run``).

What makes the union equal a single run is checked, each a one-line usage error naming the
file and the difference:

- every file is a pytest-qrel ``results.json`` of this schema that records its settings;
- the settings are equal: every option except those that say which variants a run tests and
  where it writes (``options.PER_RUN``); a threshold, seed, task or sample count that differs
  would make the union a mixture no single run produces;
- each model is in one run only: its family-wise corrections and paired tests are decided over
  all of its variants in the run that tested them;
- every variant and record is what results.json's schema says (results.record_problem), each
  record of a variant its file lists, and no record twice.

Nothing a file says of a verdict is taken on trust: every gated record's status is decided again
from its value, threshold, direction, significance, baseline and its variant's coverage
(results.gate_reasons), and every fitted-law bound is fitted again over the union as the single run
fits it (measures.scaling.law_gate): a band fitted on one run's variants alone is not the single run's.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Mapping, NamedTuple, cast

import pytest

from . import options
from .baseline import Baseline, read_results_json, tolerance_for, within_bounds
from .config import compare_fail_tolerances
from .measures import Measurement
from .measures.kl import MIN_P99_TOKENS
from .measures.scaling import law_gate
from .parsing import bit_map, floats
from .properties import CATALOG, Catalog, Metric
from .report import write_run, write_tables
from .results import Record, Results, coverage_problem, gate_reasons, record_problem
from .run_status import problem_of
from .schema import BaselineUsed, ResultsDocument, RobustnessDetail, RunInfo, Status, VariantEntry, number
from .schema_check import of_type, variant_problem
from .settings import metric_thresholds, p99_thresholds, top1_threshold
from .summary import RunSummary, summarize
from .variants import law_family


@dataclass
class MergedRun:
    """The union of several runs' results.json: their variants, records and common settings."""

    paths: tuple[Path, ...]
    variants: list[VariantEntry]
    records: list[Record]
    settings: dict[str, Any]
    models_named: list[str]  # the models the runs named with --qrel-models (their unchecked gates fail)
    baseline_used: BaselineUsed | None = None  # the --qrel-baseline file the runs compared with (run_info)
    not_run: dict[str, dict[str, str]] = field(default_factory=dict)  # the runs' not_run (each model in one run)
    _summary: RunSummary | None = None

    def summary(self, catalog) -> RunSummary:  # properties.Catalog
        if self._summary is None:
            seen = {r.variant for r in self.records}
            self._summary = summarize([v for v in self.variants if v["id"] in seen], self.records, catalog, self.not_run)
        return self._summary

    def problem(self) -> str | None:
        """Why the merged run must not pass though no gate failed (as ``run_status.run_problem``)."""
        return problem_of(self.records, self.models_named, bool(self.settings.get(options.key_of(options.ALLOW_UNCHECKED))),
                          self.settings.get(options.key_of(options.BASELINE)))

    def failed(self) -> bool:
        return any(r.status in ("fail", "error") for r in self.records) or self.problem() is not None

    def write(self, report_dir: Path, catalog, save_baseline: Path | None = None) -> Path:
        run: RunInfo = {"settings": self.settings, "models_named": self.models_named or None}
        if self.baseline_used:
            run["baseline_used"] = self.baseline_used
        if self.not_run:
            run["not_run"] = self.not_run
        return write_run(report_dir, self.summary(catalog), self.variants, save_baseline, run=run)

    def terminal_summary(self, terminalreporter, report_dir: Path, catalog) -> None:
        terminalreporter.write_sep("=", f"pytest-qrel: {len(self.paths)} runs merged "
                                        f"({', '.join(str(p) for p in self.paths)})")
        write_tables(terminalreporter, self.summary(catalog), report_dir, catalog, self.problem())


def _read(path: Path) -> ResultsDocument:
    """One run's results.json, every variant and record checked against the schema (schema.py):
    a usage error naming the file, the entry and what was expected, never a KeyError later."""
    doc = read_results_json(path, options.MERGE)
    if not isinstance(doc.get("settings"), dict):
        raise pytest.UsageError(f"{options.MERGE}: {path} records no settings (written by an older pytest-qrel): rerun it")
    named = doc.get("models_named")
    if not of_type(named, ResultsDocument, "models_named"):
        raise pytest.UsageError(f"{options.MERGE}: {path}: expected models_named to be a list of names, but got {named!r}")
    used = doc.get("baseline_used")
    if used is not None and not of_type(used, ResultsDocument, "baseline_used"):
        raise pytest.UsageError(f"{options.MERGE}: {path}: expected baseline_used to hold a path and a sha256, but got {used!r}")
    if not of_type(doc.get("not_run", {}), ResultsDocument, "not_run"):
        raise pytest.UsageError(f"{options.MERGE}: {path}: expected not_run to map models to properties and reasons")
    variants = doc.get("variants", [])
    if not isinstance(variants, list):
        raise pytest.UsageError(f"{options.MERGE}: {path}: expected a list of variants, but got {type(variants).__name__}")
    models: dict[str, str] = {}
    for i, v in enumerate(variants):
        problem = variant_problem(v)
        if problem is None and v["id"] in models:
            problem = f"variant {v['id']} is listed twice"
        total = number(v.get("total_bits")) if problem is None else None
        if total is not None and not (math.isfinite(total) and total > 0):  # a law's point: log(total_bits)
            problem = f"expected 'total_bits' to be a finite positive number, but got {v['total_bits']!r}"
        if problem:
            raise pytest.UsageError(f"{options.MERGE}: variant {i} of {path} is not valid: {problem}")
        models[v["id"]] = v["model"]
    seen: dict[tuple, int] = {}
    for i, r in enumerate(doc["results"]):
        problem = record_problem(r)
        if problem is None and models.get(r["variant"]) != r["model"]:
            problem = (f"its variant {r['variant']} is not among the file's variants" if r["variant"] not in models
                       else f"its model {r['model']!r} is not its variant's ({models[r['variant']]!r})")
        key = (r.get("test"), r.get("metric"), r.get("task")) if isinstance(r, dict) else None
        if problem is None and key in seen:
            problem = f"it repeats record {seen[key]} (a record counted twice would count as two gates)"
        if problem:
            name = r.get("test") if isinstance(r, dict) and isinstance(r.get("test"), str) else None
            raise pytest.UsageError(f"{options.MERGE}: record {i} of {path}" + (f" ({name})" if name else "")
                                    + f" is not valid: {problem}")
        seen[key] = i
    return doc


def read_runs(paths: tuple[Path, ...], catalog: Catalog = CATALOG, given: dict[str, Any] | None = None) -> MergedRun:
    """The union of the runs in ``paths``; a usage error if they cannot make one run or
    ``given`` (the settings given to the merge itself) are not the runs' own."""
    if len(paths) < 2:
        raise pytest.UsageError(f"{options.MERGE}: expected at least two results.json files, but got {len(paths)}")
    docs = [_read(p) for p in paths]
    first, settings = paths[0], docs[0]["settings"]
    for path, doc in zip(paths[1:], docs[1:]):
        for key in sorted(set(settings) | set(doc["settings"])):
            mine, theirs = settings.get(key), doc["settings"].get(key)
            if mine != theirs:  # strings, lists and tables as the runs read them (options.run_settings)
                raise pytest.UsageError(f"{options.MERGE}: {path} was run with --qrel-{key}={theirs!r}, {first} with "
                                        f"{mine!r}: runs with different settings cannot be merged")
    for key, value in (given or {}).items():
        if settings.get(key) != value:
            raise pytest.UsageError(f"{options.MERGE}: --qrel-{key}={value!r} given to the merge, but the runs were run "
                                    f"with {settings.get(key)!r}: a merge decides with the runs' settings")
    used = [doc.get("baseline_used") for doc in docs]
    if settings.get(options.key_of(options.BASELINE)) is not None:
        reference: BaselineUsed | None = None  # the first run's
        for path, u in zip(paths, used):
            if u is None:
                raise pytest.UsageError(f"{options.MERGE}: {path} records no digest of the {options.BASELINE} it "
                                        "compared with (written by an older pytest-qrel): rerun it")
            reference = u if reference is None else reference
            if u["sha256"] != reference["sha256"]:
                raise pytest.UsageError(f"{options.MERGE}: {path} compared with {options.BASELINE} {u['path']}, "
                                        f"{first} with {reference['path']}, a different file: they cannot be merged")
    decider = _Decider(settings, [], catalog, set())
    for path, doc in zip(paths, docs):
        for i, r in enumerate(doc["results"]):
            problem = decider.problem(Record.from_dict({k: number(v) for k, v in r.items()}))
            if problem:
                raise pytest.UsageError(f"{options.MERGE}: record {i} of {path} ({r['test']}) is not valid: {problem}")
    owner: dict[str, Path] = {}
    variants: list[VariantEntry] = []
    records: list[Record] = []
    named: list[str] = []
    for path, doc in zip(paths, docs):
        models = {v["model"] for v in doc.get("variants", [])} | {r["model"] for r in doc["results"]}
        for model in sorted(models):
            if model in owner:
                raise pytest.UsageError(f"{options.MERGE}: model {model} is in both {owner[model]} and {path}: each "
                                        "model must be tested in one run (its family-wise corrections and fitted laws "
                                        "are decided over all of its variants)")
            owner[model] = path
        variants += doc.get("variants", [])
        records += [Record.from_dict({k: number(v) for k, v in r.items()}) for r in doc["results"]]
        named += [m for m in doc.get("models_named") or [] if m not in named]
    not_run = {m: props for doc in docs for m, props in (doc.get("not_run") or {}).items()}
    return MergedRun(tuple(paths), variants, _decided_again(records, variants, settings, catalog, used[0]), settings,
                     named, used[0], not_run)


class _Identity(NamedTuple):
    """A record's variant as Results records it (what a Variant's id and fields give)."""

    id: str
    model: str
    method: str
    bits: int
    group_size: int | None


class _Decider:
    """The run's gate settings, read from the runs' common settings, to decide records again."""

    def __init__(self, settings: dict[str, Any], variants: list[VariantEntry], catalog: Catalog, errored: set[str],
                 baseline_used: BaselineUsed | None = None) -> None:
        def setting(flag: str, default: str) -> Any:
            value = settings.get(options.key_of(flag))
            return default if value is None else value

        self.catalog, self.settings = catalog, settings
        self.tolerances = compare_fail_tolerances({"qrel_compare_fail": setting(options.COMPARE_FAIL,
                                                                                options.DEFAULT_COMPARE_FAIL)}, catalog)
        self.min_coverage = floats(options.MIN_COVERAGE, setting(options.MIN_COVERAGE, "1.0"))[0]
        self.confidence = floats(options.SCALING_CONFIDENCE, setting(options.SCALING_CONFIDENCE,
                                                                     options.DEFAULT_SCALING_CONFIDENCE))[0]
        self.strict = bool(settings.get(options.key_of(options.BASELINE_STRICT)))
        self.by_id = {v["id"]: v for v in variants}
        self.errored = errored  # variants whose tests errored
        self._baseline: Baseline | None = None
        self.baseline_used = baseline_used
        # the thresholds a run with these settings gates with (config.QrelConfig's parsing):
        # a record's own threshold is checked against them, never trusted
        raw = {**options.defaults(), **{"qrel_" + k.replace("-", "_"): v for k, v in settings.items() if v is not None}}
        # by (results.json property, metric): each property's threshold option, per bit-width or
        # by metric (metric:value pairs); a metric with an option of its own, by that option (a
        # metric whose threshold no option sets, as the fuzz's, is not checked: None)
        self.by_bits: dict[tuple[str, str], dict[int, float]] = {}
        self.by_metric: dict[tuple[str, str], float] = {}
        for p in catalog:
            dest = "qrel_" + options.key_of(p.threshold_option or "").replace("-", "_")
            if p.threshold_option is None or dest not in raw:
                continue
            own = [m for m in p.metrics if m.option is None]
            if any(m.per_bit_width for m in own):
                table = bit_map(p.threshold_option, raw[dest])
                self.by_bits.update({(p.records_as, m.name): table for m in own})
            else:
                self.by_metric.update({(p.records_as, p.metric(k).name): t for k, t in metric_thresholds(raw, p).items()})
        p99, top1 = raw.get("qrel_kl_p99_threshold"), top1_threshold(raw.get("qrel_top1_threshold"))
        self.by_option: dict[str, Callable[[int], float | None]] = {
            options.KL_P99_THRESHOLD: lambda bits: (p99_thresholds(p99, (bits,)) or {}).get(bits),  # by its bit-width
            options.TOP1_THRESHOLD: lambda bits: top1,
        }

    def expected_threshold(self, r: Record, metric: Metric) -> float | None:
        """The threshold the settings give ``r``'s gate (of ``metric``), or None where a merge cannot tell it."""
        key = (str(r.property), str(r.metric))
        if key in self.by_bits:
            return self.by_bits[key].get(r.bits)
        if key in self.by_metric:
            return self.by_metric[key]
        parse = self.by_option.get(metric.option or "")
        return parse(r.bits) if parse is not None and isinstance(r.bits, int) else None

    def problem(self, r: Record) -> str | None:
        """Why a record cannot be decided again as the settings and the catalog decide it, or None."""
        if r.property is None or r.metric is None:
            return None if r.status == "error" else f"expected a property and a metric of a {r.status}ped record"
        try:
            metric = self.catalog.metric(r.property, r.metric)
        except ValueError:
            return f"its metric {r.metric!r} of property {r.property!r} is not one the catalog gates"
        laws = {p.records_as for p in self.catalog.with_axis("scaled")}
        if r.property in laws:
            return None  # fitted again over the union: its threshold and direction are the law's
        if r.higher_is_better is not None and r.higher_is_better != metric.higher_is_better:
            return (f"it says higher_is_better={r.higher_is_better}, but {r.metric} is "
                    f"{'better higher' if metric.higher_is_better else 'better lower'}")
        expected = self.expected_threshold(r, metric)
        if r.threshold is not None and expected is not None and not math.isclose(float(r.threshold), expected):
            return (f"its threshold {r.threshold!r} is not the {expected:g} its run's settings give (a merge decides "
                    "with the runs' settings)")
        value = r.value if isinstance(r.value, (int, float)) else math.nan
        if r.status == "skip" and r.threshold is not None and math.isfinite(value) and _never_unchecked(r, metric) and gate_reasons(
                str(r.metric), Measurement(value, r.base_value, None, {}), float(r.threshold), metric.higher_is_better,
                None, None, None)[0]:
            return f"it is skipped, but its value {value:g} is past its threshold {r.threshold:g}: a run fails it"
        held = r.detail.get("baseline_bounds")
        if held is not None and not (isinstance(held, list) and len(held) == 2 and isinstance(r.baseline_value, (int, float))
                                     and within_bounds(float(r.baseline_value), number(held[0]), number(held[1]))):
            return f"its baseline_value {r.baseline_value!r} is not within its baseline_bounds {held!r}"
        conditions = {p.records_as for p in self.catalog.with_axis("condition")}
        if r.property in conditions and r.detail.get("comparison") is not None and not (
                of_type(r.detail.get("perturbation"), RobustnessDetail, "perturbation")
                and of_type(r.detail.get("intensity"), RobustnessDetail, "intensity")):
            return "expected a robustness comparison to name its 'perturbation' and 'intensity'"
        return None

    def baseline(self) -> Baseline | None:
        """The runs' --qrel-baseline, read when a re-decided law gate needs a value of it: the
        very file they compared with (its absolute path and digest, as they recorded it), never
        one the setting's relative path names from the merge's own directory."""
        if self.settings.get(options.key_of(options.BASELINE)) is None or self.baseline_used is None:
            return None
        if self._baseline is None:
            path = Path(self.baseline_used["path"])
            try:
                self._baseline = Baseline.read(path)
            except pytest.UsageError as exc:
                raise pytest.UsageError(f"{options.MERGE}: cannot read the {options.BASELINE} the runs compared with "
                                        f"({exc})") from None
            if self._baseline.sha256 != self.baseline_used["sha256"]:
                raise pytest.UsageError(f"{options.MERGE}: {path} is not the {options.BASELINE} the runs compared with "
                                        "(its sha256 differs): put that file back there to merge them")
        return self._baseline

    def gated(self, r: Record) -> Record:
        """A pass or fail record decided again from what it holds; as it was when that agrees."""
        if r.status == "fail" and r.value is None:  # failed by its variant's coverage, no value to decide again
            return r  # (schema_check.valueless_failure: only such a record is read back without a value)
        significant = r.detail.get("significant")
        # a gated record has both (result_problem checked them when its file was read)
        value, threshold = cast(float, r.value), cast(float, r.threshold)
        measurement = Measurement(float(value), r.base_value, None, {**r.detail, "task": r.task},
                                  significant=significant if isinstance(significant, bool) else None)
        held = r.detail.get("baseline_bounds")
        reasons, change = gate_reasons(str(r.metric), measurement, float(threshold), bool(r.higher_is_better),
                                       r.baseline_value, tolerance_for(self.tolerances, r.property, r.metric),
                                       coverage_problem(self.by_id.get(r.variant), self.min_coverage),
                                       tuple(held) if isinstance(held, list) and len(held) == 2 else None)
        if self.strict and r.baseline_value is None and r.detail.get("baseline") == "not in the baseline":
            reasons.append(f"{r.metric} is not in the baseline {self.settings.get('baseline')} (--qrel-baseline-strict)")
        status: Status = "fail" if reasons else "pass"
        return r if status == r.status else replace(r, status=status, reason="; ".join(reasons) or None, change=change)

    def law(self, r: Record, values: dict[tuple[str, str], float]) -> Record:
        """A fitted-law record fitted again over the union: the band of its bit-width's other
        variants (every model's), exactly as the single run over the union fits it."""
        metric = str(r.metric)
        own: Mapping[str, Any] = self.by_id.get(r.variant, {})
        # pruned variants are fitted over their sparsity's (a variant entry without one is not pruned)
        fitted = [v for v in self.by_id.values() if v.get("bits") == r.bits and v.get("sparsity") == own.get("sparsity")
                  and v["id"] != r.variant and not v.get("skip_reason")]
        for v in fitted:  # the single run measures a variant no test of it recorded; a merge cannot
            if (v["id"], metric) not in values and v["id"] not in self.errored:
                raise pytest.UsageError(f"{options.MERGE}: the law bounding {r.test} is fitted on every other "
                                        f"{r.bits}-bit variant, but no record holds {v['id']}'s {metric} (were its "
                                        "tests deselected?): rerun its run with them")
        # total bits as _read accepted them: a number or None (it refuses a non-finite one's name)
        others = [(values.get((v["id"], metric), math.nan), cast("float | None", v.get("total_bits"))) for v in fitted]
        value = values.get((r.variant, metric), math.nan)
        gate = law_gate(metric, law_family({"bits": r.bits, "sparsity": own.get("sparsity")}), value, own.get("total_bits"), others, self.confidence,
                        self.catalog.metric(str(r.property), metric).higher_is_better)
        results, ident = Results(), _Identity(r.variant, r.model, r.method, r.bits, r.group_size)
        m = gate.measurement
        if m.unchecked:
            return results.skip(r.test, ident, str(r.property), metric, m.unchecked, own, self.min_coverage,  # type: ignore[arg-type]
                                m, gate.threshold)
        baseline, detail = r.baseline_value, {}
        if baseline is None and r.detail.get("baseline") == "not in the baseline":
            detail = {"baseline": "not in the baseline"}  # its run looked it up
        elif baseline is None and self.baseline() is not None:  # not checked in its run: never looked up
            baseline = self.baseline().values.get((r.test, metric))  # type: ignore[union-attr]
            detail = {} if baseline is not None else {"baseline": "not in the baseline"}
        record = results.gate(r.test, ident, str(r.property), metric, m, gate.threshold,  # type: ignore[arg-type]
                              self.catalog.metric(str(r.property), metric).higher_is_better, own, self.min_coverage,
                              baseline, tolerance_for(self.tolerances, r.property, metric))
        record.detail.update(detail)
        if detail and self.strict:
            why = f"{metric} is not in the baseline {self.settings.get('baseline')} (--qrel-baseline-strict)"
            record.status, record.reason = "fail", "; ".join(filter(None, (record.reason, why)))
        return record


def _never_unchecked(r: Record, metric: Metric) -> bool:
    """Whether a run never leaves ``r``'s metric not checked once it has its value and threshold
    (the catalog's ``checked_when_measured``: the KL and its top-1 agreement; the KL tail only
    when it had enough tokens): a skip of it past its threshold hides a failure. A statistical
    gate or the fuzz's may be left not checked at any value (too few samples to decide), which a
    merge cannot tell from the record."""
    if not metric.checked_when_measured:
        return False
    tokens = r.detail.get("tokens")
    return r.metric != "kl_p99" or (isinstance(tokens, int) and tokens >= MIN_P99_TOKENS)


def _decided_again(records: list[Record], variants: list[VariantEntry], settings: dict[str, Any], catalog: Catalog,
                   baseline_used: BaselineUsed | None = None) -> list[Record]:
    """The union's records with every verdict decided again (the module's docstring says how)."""
    # a variant whose test errored has no value: the single run's law has one point fewer too
    decider = _Decider(settings, variants, catalog, {r.variant for r in records if r.status == "error"}, baseline_used)
    laws = {p.records_as for p in catalog.with_axis("scaled")}
    scaled = catalog.scaled_metrics()
    # each variant's value of a bounded metric, as the single run's law takes it: the first gated
    # record of it (its own property's test, or its law test), else what its law test measured
    values: dict[tuple[str, str], float] = {}
    for r in sorted(records, key=lambda r: not r.gated):
        if r.metric in scaled and isinstance(r.value, (int, float)) and (r.gated or r.property in laws):
            values.setdefault((r.variant, r.metric), float(r.value))
    out = []
    for r in records:
        if r.property in laws and r.metric in scaled and r.status != "error":
            out.append(decider.law(r, values))
        elif r.gated:
            out.append(decider.gated(r))
        else:
            out.append(r)
    return out
