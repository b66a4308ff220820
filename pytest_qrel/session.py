"""QrelSession: the thin facade that the hooks and the suites call."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from . import options
from .config import QrelConfig
from .matrix import build_matrix, order_items, parametrize, planned_tests, variant_of, without_default_tasks
from .measures import MEASURES
from .results import REPORT_ATTR, Results, variant_outcome
from .store import ModelStore, VariantError, one_line

if TYPE_CHECKING:
    import torch

    from .models import LoadedModel
    from .variants import Variant

__all__ = ["QrelConfig", "QrelSession"]


class QrelSession:
    """One per pytest process (controller and each xdist worker), kept in ``config.stash``:
    the config, the variant matrix, the model store, one measure per property, the results."""

    def __init__(self, config: QrelConfig, active: bool, is_worker: bool) -> None:
        self.config = config
        self.active = active  # False: a run without --qrel-* options and no qrel test
        self.is_worker = is_worker
        self.variants = build_matrix(config)
        self.store = ModelStore(config)
        self.measures = {prop: cls(config, self.store) for prop, cls in MEASURES.items()}
        self.results = Results()
        self.measures["scaling"].attach(self.variants, self.measures, self.results,
                                        lambda v: self.variant_info.get(v.id))
        self._seen: set[str] = set()  # ids of the variants whose tests reported
        self._test: str | None = None
        self._measuring: tuple[str, str] | None = None  # (property, metric) of the running test
        self._computed: tuple | None = None  # the end-of-run summary, once every report is in

    @classmethod
    def from_config(cls, config: pytest.Config) -> QrelSession:
        return cls(
            QrelConfig.from_values(options.raw_values(config), config.invocation_params.dir),
            active=options.given_on_command_line(config),
            is_worker=hasattr(config, "workerinput"),
        )

    # -- collection ----------------------------------------------------------------------

    def parametrize(self, metafunc: pytest.Metafunc) -> None:
        if parametrize(metafunc, self.variants, tuple(t.name for t in self.config.tasks), self.config.robustness):
            self.active = True

    def collected(self, items: list[pytest.Item]) -> None:
        """The run's tests are known: measures that decide families of tests learn them."""
        planned = planned_tests(items)
        for measure in self.measures.values():
            measure.plan(planned)

    def order(self, items: list[pytest.Item]) -> None:
        items[:], dropped = without_default_tasks(items, self.config)
        if dropped:
            dropped[0].config.hook.pytest_deselected(items=dropped)
        order_items(items, self.variants)

    # -- running a test ----------------------------------------------------------------------

    def begin(self, item: pytest.Item) -> None:
        self._test, self._measuring = item.name, None

    def gate(self, prop: str, variant: Variant, task: str | tuple | None = None, **params: str) -> None:
        """Measure ``prop`` on ``variant`` (on a task, or a (perturbation, intensity)), record
        each gated metric, and fail the test if one misses its threshold (significantly, for
        the statistical gates), regressed from the baseline, or the variant quantized less
        than asked; a test with nothing to gate against is skipped with the reason."""
        from .baseline import tolerance_for

        measure = self.measures[prop]
        prop = measure.property
        self._measuring = (prop, params.get("metric", measure.metric))
        try:
            gated = measure.gates(variant, task, **params)
        except VariantError as exc:
            pytest.fail(f"{variant.id}: {exc}", pytrace=False)
        test, failed, unchecked = self._test or variant.id, [], []
        for metric, measurement, threshold in gated:
            if measurement.unchecked:
                unchecked.append(self.results.skip(test, variant, prop, metric, measurement.unchecked)["reason"])
                continue
            baseline = self.config.baseline.values.get((test, metric)) if self.config.baseline else None
            record = self.results.gate(
                test, variant, prop, metric, measurement, threshold,
                measure.higher_is_better, self.store.info.get(variant), self.config.min_coverage,
                baseline, tolerance_for(self.config.compare_fail, prop, metric),
            )
            if record["status"] != "pass":
                failed.append(record["reason"])
        if failed:
            pytest.fail(f"{variant.id}: {'; '.join(dict.fromkeys(failed))}", pytrace=False)
        if unchecked and len(unchecked) == len(gated):
            pytest.skip(f"{variant.id}: {unchecked[0]}")

    def finish(self, item: pytest.Item, call: pytest.CallInfo, report: pytest.TestReport) -> None:
        """Attach the test's records to its report: a failure that recorded nothing becomes
        an ERROR record with a one-line reason, so no variant vanishes from the report."""
        variant = variant_of(item)
        if variant is None or report.when == "teardown" or (report.when == "setup" and report.passed):
            return
        if report.failed and not self.results.has_pending(item.name):
            exc = call.excinfo.value if call.excinfo else None
            reason = (
                "unknown failure" if exc is None
                else one_line(exc) if isinstance(exc, pytest.fail.Exception)
                else f"{type(exc).__name__}: {one_line(exc)}"
            )
            prop, metric = self._measuring or (None, None)
            self.results.error(item.name, variant, prop, metric, reason.removeprefix(f"{variant.id}: "))
        info = self.store.info.get(variant)
        payload = self.results.take_pending({variant.id: info} if info else {})
        payload["variant"] = variant.id
        setattr(report, REPORT_ATTR, payload)

    def merge_report(self, report: pytest.TestReport) -> None:
        payload = getattr(report, REPORT_ATTR, None)
        if self.results.merge(payload):
            self.active = True
            self._seen.add(payload["variant"])

    # -- models and values, for the suites and the plugin's own tests ----------------------------

    def base_model(self, variant: Variant) -> LoadedModel:
        return self.store.base(variant)

    def quantized_model(self, variant: Variant) -> torch.nn.Module:
        return self.store.quantized(variant)

    def kl_to_base(self, variant: Variant) -> float:
        return self.measures["kl"].measure(variant).value

    def calibration_texts(self) -> list[str]:
        return self.store.calibration_texts()

    @property
    def variant_info(self) -> dict[str, dict]:
        """What each variant's quantization measured, by id: merged from reports and local."""
        return {**self.results.variant_info, **{v.id: info for v, info in self.store.info.items()}}

    # -- report ----------------------------------------------------------------------------

    def variant_records(self, only_seen: bool = False) -> list[dict]:
        from .quant import get_backend
        from .variants import variant_record

        info = self.variant_info
        records = []
        for v in self.variants:
            if only_seen and v.id not in self._seen:
                continue
            backend = get_backend(v.method)
            known = {"weight_format": backend.weight_format, "activation_bits": backend.activation_bits}
            record = variant_record(v, {**known, **info.get(v.id, {})})
            record["status"], record["reason"] = variant_outcome(record, self.results.records)
            records.append(record)
        return records

    def _reporting(self) -> bool:
        return self.active and not self.is_worker and bool(self._seen)

    def _summary(self) -> tuple[list[dict], list[dict], list[dict], dict[str, list[dict]]]:
        """Variants, records, the run's fitted laws and its sweet spots, computed once."""
        if self._computed is None:
            from .measures.scaling import SCALED_METRICS, run_fits, sweet_spots

            variants, records = self.variant_records(only_seen=True), self.results.records
            self._computed = (variants, records, run_fits(variants, records),
                              {m: sweet_spots(variants, records, m) for m in SCALED_METRICS})
        return self._computed

    def write_report(self) -> Path | None:
        if not self._reporting():
            return None
        from .report import drift_summary, write_run

        variants, records, fits, sweet = self._summary()
        return write_run(self.config.report_dir, self.variant_records(), records, fits, sweet,
                         self.config.save_baseline, drift=drift_summary(records, variants))

    def terminal_summary(self, terminalreporter: Any) -> None:
        if not self._reporting():
            return
        from .report import drift_summary, write_drift_tables, write_tables

        variants, records, fits, sweet = self._summary()
        write_tables(terminalreporter, variants, records, self.config.report_dir, fits, sweet)
        write_drift_tables(terminalreporter, drift_summary(records, variants))
