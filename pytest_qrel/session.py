"""QrelSession: the thin facade that the hooks and the suites call."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from . import catalog_options, junit, matrix, merge, options, progress
from .config import QrelConfig
from .errors import VariantError
from .journal import RESUMED, Journal
from .measures import MEASURES, Measure, registered_properties
from .report import write_run, write_tables
from .report.run import run_info
from .results import REPORT_ATTR, Results, variant_records
from .run_status import run_problem
from .store import ModelStore
from .summary import RunSummary, summarize

if TYPE_CHECKING:
    import torch

    from .models import LoadedModel
    from .schema import VariantEntry
    from .variants import Variant

__all__ = ["QrelConfig", "QrelSession"]

NOT_RUN = "qrel_not_run"  # a worker's workeroutput key: its properties not run (matrix.NotRun)


class QrelSession:
    """One per pytest process (controller and each xdist worker), kept in ``config.stash``:
    the config, the variant matrix, the model store, one measure per property, the results."""

    def __init__(self, config: QrelConfig, active: bool, is_worker: bool,
                 measures: dict[str, type[Measure]] | None = None, resumed: list[str] | None = None) -> None:
        self.config = config
        self.active = active  # False: a run without --qrel-* options and no qrel test
        self.requested = active  # --qrel-* options on the command line: a gate run, whatever it selects
        self.is_worker = is_worker
        self.variants = matrix.build_matrix(config)
        self.store = ModelStore(config)
        classes = measures or MEASURES
        self.measures: dict[str, Measure] = {p.key: classes[p.key](config, self.store) for p in config.catalog}
        self.results = Results()
        for measure in (m for m in self.measures.values() if hasattr(m, "attach")):  # a fitted-law bound's values
            measure.attach(self.variants, self.measures, self.results.recorded_value, lambda v: self.variant_info.get(v.id))
        self._seen: set[str] = set()  # ids of the variants whose tests reported
        self._test: str | None = None
        self._measuring: tuple[str, str] | None = None  # (property, metric) of the running test
        self._computed: RunSummary | None = None  # the end-of-run summary, once every report is in
        self.journal = Journal(config.report_dir, config.resume, config.journal_settings, resumed)
        self._planned: set[tuple[Variant, str | None, str]] | None = None  # with --qrel-resume: every test, the journaled ones too
        self._selected = True  # with --qrel-resume: whether the run selected a test (journaled or to run)
        # per model, the properties whose tests were deselected for want of data, and why (the
        # controller of -n learns them from its workers: worker_finished)
        self.not_run: matrix.NotRun = {}
        ids = {v.id for v in self.variants}
        for payload in [] if is_worker else self.journal.loaded:  # a resumed run's finished tests
            if payload["variant"] not in ids:  # its settings are this run's: only an edit puts it there
                raise pytest.UsageError(f"{options.RESUME}: {self.journal.path} holds {payload['variant']}, which is "
                                        "not in this run's matrix: run without --qrel-resume")
            self.merge_report_payload(payload)
        self.merged = merge.read_runs(config.merge, config.catalog, config.merge_given) if config.merge and not is_worker else None  # --qrel-merge

    @classmethod
    def from_config(cls, config: pytest.Config) -> QrelSession:
        catalog, measures = registered_properties(config)
        opts = catalog_options.for_catalog(catalog)  # a plugin property's threshold option too
        return cls(QrelConfig.from_values(options.raw_values(config, opts), config.invocation_params.dir, catalog),
                   active=options.given_on_command_line(config), is_worker=hasattr(config, "workerinput"),
                   measures=measures, resumed=getattr(config, "workerinput", {}).get(RESUMED))

    def start(self, session: pytest.Session, qrel_run: bool) -> None:
        """The controller of a fresh qrel run (--qrel-* options or the shipped suites named; not
        --co, not --qrel-merge) starts a fresh journal now. Any other run leaves it alone: a
        plain ``pytest`` must not wipe a killed run's journal; a run gated from [tool.qrel] alone
        starts it fresh at its first record (Journal.append)."""
        if not self.is_worker and self.merged is None and not session.config.option.collectonly and qrel_run:
            self.journal.reset()

    # -- collection ----------------------------------------------------------------------

    def parametrize(self, metafunc: pytest.Metafunc) -> None:
        if matrix.parametrize(metafunc, self.variants, self.config):
            self.active = True

    def collected(self, items: list[pytest.Item]) -> None:
        """The run's tests are known: measures that decide families of tests learn them (all of
        them on a resumed run, so a family is decided as it was)."""
        planned = self._planned if self._planned is not None else matrix.planned_tests(items)
        for measure in self.measures.values():
            measure.plan(planned)

    def order(self, items: list[pytest.Item]) -> None:
        items[:], dropped, not_run = matrix.without_default_tasks(items, self.config)
        self._add_not_run(not_run)
        if self.is_worker and dropped:  # the controller of -n collects nothing: it reads them at the worker's end
            dropped[0].config.workeroutput[NOT_RUN] = self.not_run  # type: ignore[attr-defined]  # xdist's
        if self.config.resume:
            self._planned, done = matrix.planned_tests(items), self.journal.done()
            self._selected = bool(items)  # False: -k/-m left nothing, journaled or not
            dropped += [i for i in items if i.name in done]
            items[:] = [i for i in items if i.name not in done]
        if dropped:
            dropped[0].config.hook.pytest_deselected(items=dropped)
        matrix.order_items(items, self.variants)

    # -- running a test ----------------------------------------------------------------------

    def begin(self, item: pytest.Item) -> None:
        self._test, self._measuring = item.name, None
        progress.set_context(matrix.progress_label(item, self.variants))

    def gate(self, prop: str, variant: Variant, task: str | tuple | None = None, **params: str) -> None:
        """Measure ``prop`` on ``variant`` (on a task, or a (perturbation, intensity)), record
        each gated metric, and fail the test if one misses its threshold (significantly, for
        the statistical gates), regressed from the baseline, or the variant quantized less
        than asked; a test with nothing to gate against is skipped with the reason."""

        measure = self.measures[prop]
        prop = measure.property
        self._measuring = (prop, params.get("metric", measure.metric))
        try:
            gated = measure.gates(variant, task, **params)
        except VariantError as exc:
            pytest.fail(f"{variant.id}: {exc}", pytrace=False)
        test = self._test or variant.id
        info = self.store.info.get(variant)
        failed, unchecked = self.results.record_gates(test, variant, measure.spec, gated, info.as_dict() if info else None,
                                                      self.config)
        if failed:
            pytest.fail(f"{variant.id}: {'; '.join(dict.fromkeys(failed))}", pytrace=False)
        if unchecked and len(unchecked) == len(gated):
            pytest.skip(f"{variant.id}: {unchecked[0]}")

    def finish(self, item: pytest.Item, call: pytest.CallInfo, report: pytest.TestReport) -> None:
        """Attach the test's records to its report, and to its JUnit properties: a failure that
        recorded nothing becomes an ERROR record with a one-line reason, so no variant vanishes
        from the report."""
        variant = matrix.variant_of(item)
        if variant is not None and report.when == "teardown" and report.failed:  # an ERROR of its property
            mark = item.get_closest_marker(matrix.PROPERTY_MARK)
            setattr(report, REPORT_ATTR, self.results.lost(item.name, variant, str(report.longrepr or "no report"),
                                                           f"teardown of {item.name} failed",
                                                           str(mark.args[0]) if mark and mark.args else None))
            junit.add(item, report, variant, self.variant_info.get(variant.id), getattr(report, REPORT_ATTR)["results"])
        if variant is None or report.when == "teardown" or (report.when == "setup" and report.passed):
            return
        if report.failed and not self.results.has_pending(item.name, failed=True):
            # it failed before it recorded, or after its gates passed (a suite's own check): an ERROR, not their pass
            measuring = (self._measuring[0], None) if self._measuring and self.results.has_pending(item.name) \
                else self._measuring
            self.results.failed_unrecorded(item.name, variant, measuring, call.excinfo.value if call.excinfo else None)
        info = self.store.info.get(variant)
        payload = {**self.results.take_pending({variant.id: info.as_dict()} if info else {}),
                   "variant": variant.id, "test": item.name}
        setattr(report, REPORT_ATTR, payload)
        # its JUnit properties (--junitxml), from the same records
        junit.add(item, report, variant, self.variant_info.get(variant.id), payload["results"])

    def worker_finished(self, output: dict[str, Any]) -> None:
        """An xdist worker ended: what it did not run (its workeroutput)."""
        self._add_not_run(output.get(NOT_RUN) or {})

    def _add_not_run(self, not_run: matrix.NotRun) -> None:
        for model, props in not_run.items():
            self.not_run.setdefault(model, {}).update(props)

    def worker_input(self) -> dict[str, Any]:  # what an xdist worker starts with: a resumed run's journaled tests
        return {RESUMED: sorted(self.journal.done())} if self.config.resume else {}

    def merge_report(self, report: pytest.TestReport) -> None:
        payload = getattr(report, REPORT_ATTR, None)
        if payload is None and report.failed:  # xdist's report of a test whose worker died (when "???"), with
            # no records, or a teardown that failed
            test = report.nodeid.rsplit("::", 1)[-1]
            variant = matrix.variant_of_nodeid(report.nodeid, self.variants, self.config.catalog.scaled_metrics())
            crash = report.when not in ("setup", "call", "teardown")
            payload = self.results.lost(test, variant, str(report.longrepr or "no report"),
                                        f"worker crashed during {test}" if crash else f"{report.when} of {test} failed")
        if payload is not None and self.merge_report_payload(payload) and not self.is_worker:  # the controller's journal only:
            self.journal.append(payload)  # a worker's hook sees its own reports, which reach the controller too

    def merge_report_payload(self, payload: dict | None) -> bool:
        if payload is None or not self.results.merge(payload):
            return False
        self.active = True
        self._seen.add(payload["variant"])
        return True

    # -- models and values, for the suites and the plugin's own tests ----------------------------

    def base_model(self, variant: Variant) -> LoadedModel:
        return self.store.base(variant)

    def quantized_model(self, variant: Variant) -> torch.nn.Module:
        return self.store.quantized(variant)

    def kl_to_base(self, variant: Variant) -> float:
        """The variant's mean KL to base, measured by the property the catalog says measures it
        (the fitted-law property's ``scales``: the one whose values its laws are fitted on)."""
        return self.measures[self.config.catalog.scaled_metrics()["kl_to_base"]].measure(variant).value

    def calibration_texts(self) -> list[str]:
        return self.store.calibration.texts()

    @property
    def variant_info(self) -> dict[str, dict]:
        """What each variant's quantization measured, by id: merged from reports and local."""
        return {**self.results.variant_info, **{v.id: info.as_dict() for v, info in self.store.info.items()}}

    # -- report ----------------------------------------------------------------------------

    def variant_records(self, only_seen: bool = False) -> list[VariantEntry]:
        variants = [v for v in self.variants if not only_seen or v.id in self._seen]
        return variant_records(variants, self.variant_info, self.results.records)

    def _reporting(self) -> bool:
        return self.active and not self.is_worker and bool(self._seen)

    def _summary(self) -> RunSummary:
        """The records and what the report shows of them (fits, sweet spots, tables), computed once."""
        if self._computed is None:
            self._computed = summarize(self.variant_records(only_seen=True), self.results.records, self.config.catalog,
                                       self._not_run())
        return self._computed

    def write_report(self) -> Path | None:
        if self.merged is not None:
            return self.merged.write(self.config.report_dir, self.config.catalog, self.config.save_baseline)
        if not self._reporting():
            return None
        run = run_info(self.config)
        if self.not_run:
            run["not_run"] = self._not_run()
        return write_run(self.config.report_dir, self._summary(), self.variant_records(), self.config.save_baseline,
                         run, self.config.catalog.fitted())

    def _not_run(self) -> matrix.NotRun:
        """``not_run`` in the matrix's model order and the catalog's property order (whatever
        order the workers ended in: the same run writes the same results.json)."""
        models = list(dict.fromkeys(v.model for v in self.variants))
        order = {p: i for i, p in enumerate(self.config.catalog.recorded())}
        return {m: dict(sorted(self.not_run[m].items(), key=lambda kv: (order.get(kv[0], len(order)), kv[0])))
                for m in sorted(self.not_run, key=lambda m: (models.index(m) if m in models else len(models), m))}

    def end_of_run(self, session: pytest.Session) -> None:
        """Write the report; a run that checked nothing fails (run_status.run_problem), and so do a
        resumed run's journaled failures, as they failed the run they came from."""
        if session.config.option.collectonly:  # --co runs nothing: no report, no status of its own
            return
        self.write_report()
        if self.merged is not None:  # no test ran: the merged runs' outcome is the exit status
            session.exitstatus = pytest.ExitCode.TESTS_FAILED if self.merged.failed() else pytest.ExitCode.OK
            return
        failed = any(r.status in ("fail", "error") for r in self.results.records)
        problem = self._problem()
        if self.config.resume and self.journal.loaded and self._selected \
                and session.exitstatus == pytest.ExitCode.NO_TESTS_COLLECTED:
            session.exitstatus = pytest.ExitCode.OK  # every test was journaled: the run's status is theirs
        if self._gating() and (problem or failed) and session.exitstatus == pytest.ExitCode.OK:
            session.exitstatus = pytest.ExitCode.TESTS_FAILED

    def _gating(self) -> bool:
        """Whether this run's status is a gate's: it reported a qrel test, or it was asked for on the
        command line (--qrel-* options) with models and must check each of them even if none of its
        tests was selected (models from [tool.qrel] alone do not make a plain ``pytest -k`` a gate)."""
        return self._reporting() or (self.requested and not self.is_worker and self.config.models_given)

    def _problem(self) -> str | None:  # run_status.run_problem, with why the matrix skipped a variant that reported
        skipped = next((f"e.g. {v.id}: {v.skip_reason}" for v in self.variants if v.skip_reason and v.id in self._seen),
                       None if self._seen else "no qrel test was selected")
        return run_problem(self.results.records, self.config, skipped)

    def terminal_summary(self, terminalreporter: Any) -> None:
        if self.merged is not None:
            self.merged.terminal_summary(terminalreporter, self.config.report_dir, self.config.catalog)
        elif self._reporting():
            write_tables(terminalreporter, self._summary(), self.config.report_dir, self.config.catalog,
                         self._problem())
        elif self._gating() and not terminalreporter.config.option.collectonly and self._problem():
            terminalreporter.write_line(f"qrel: FAILED, {self._problem()}; pass --qrel-allow-unchecked to accept it",
                                        red=True)  # no qrel test ran: no report, the reason alone

