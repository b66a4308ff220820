"""The plugin's own xdist scheduler (issue 17): every test of one qrel model (or variant) on one worker.

pytest-xdist's ``--dist loadgroup`` reads a test's ``xdist_group`` from a node id suffix
(``...@group``) its workers write into ``item._nodeid``, which pytest 9.2 no longer reads
(pytest-xdist issue 1386): the grouping is silently lost, so one model's tests are spread over
the workers and each of them loads the model, quantizes its variants and scores its families
again. This scheduler groups by what the test ids already say, independent of node-id
formats: a suite test's parameter id begins with its variant's id (``<variant>``,
``<variant>-<task>``, ``<variant>-<perturbation>-i<n>``), so its scope is that variant's
model; the fitted-law tests (``<metric>-<variant>``) share one scope, as their laws are fitted
over every model; any other test is its own scope (plain load balancing).

With fewer models than workers, a model's variants are spread instead (a scope per variant):
the outputs a model's family needs are computed once, by whichever worker comes first, and
read by the others (measures/outputs.py), so two workers score one model's variants about
twice as fast. With as many models as workers or more, a model per worker loads each base once;
without a cache (--qrel-no-cache) nothing is shared, so a model's tests stay on one worker.

It is used when the user gives ``-n`` without ``--dist`` and for ``--dist loadgroup``; an
explicit other ``--dist`` (load, loadscope, loadfile, worksteal, each) is left to xdist.
pytest-xdist is imported here at the top: this module is imported only from xdist's hook."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest
from xdist.scheduler import LoadScopeScheduling

from .matrix import SCALING_GROUP

if TYPE_CHECKING:
    from collections.abc import Iterable

    from .variants import Variant


def wants_own_scheduler(config: pytest.Config, qrel_run: bool = False) -> bool:
    """-n without --dist (xdist then sets ``load``), or --dist loadgroup; in a qrel run
    (``plugin.qrel_run``), also a --dist that comes from addopts rather than the command line (a
    project's ``--dist=loadscope`` for its own tests must not give a gate xdist's scheduler,
    which reruns a crashed test and loses a variant's others)."""
    dist = config.getoption("dist", "no")
    explicit = any(a == "--dist" or a.startswith("--dist=") or a.startswith("-d") and a[2:3] in ("", "=")
                   for a in config.invocation_params.args)  # the command line's, without addopts
    return dist == "loadgroup" or (not explicit and (dist == "load" or (qrel_run and dist != "no")))


def model_scope(nodeid: str, variants: Iterable[Variant], scaled_metrics: Iterable[str], workers: int = 1,
                shared: bool = True) -> str:
    """The scheduling scope of ``nodeid``: ``qrel-model:<model>`` for a test of one variant
    (``qrel-variant:<variant>`` with fewer models than ``workers`` and ``shared`` outputs), the
    scaling group for a fitted-law test, the node id itself otherwise."""
    return Scopes(variants, scaled_metrics, workers, shared)(nodeid)


class Scopes:
    """``model_scope`` with the run's variants indexed once (the scheduler asks for every test)."""

    def __init__(self, variants: Iterable[Variant], scaled_metrics: Iterable[str], workers: int = 1,
                 shared: bool = True) -> None:
        self.models = {v.id: v.model for v in variants}
        self.ids = sorted(self.models, key=len, reverse=True)  # longest first: zoo-s-x-... before zoo-s-...
        self.scaled_metrics = tuple(scaled_metrics)
        self.spread = shared and len(set(self.models.values())) < workers

    def __call__(self, nodeid: str) -> str:
        start, end = nodeid.find("["), nodeid.rfind("]")
        if start < 0 or end < start:
            return nodeid
        param = nodeid[start + 1 : end]
        for vid in self.ids:
            if param == vid or param.startswith(vid + "-"):
                return f"qrel-variant:{vid}" if self.spread else f"qrel-model:{self.models[vid]}"
        if any(param.startswith(m + "-") and param[len(m) + 1 :] in self.models for m in self.scaled_metrics):
            return SCALING_GROUP
        return nodeid


class ModelScheduling(LoadScopeScheduling):
    """xdist's scope scheduling (a scope runs whole on one worker) with qrel models as scopes."""

    def __init__(self, config: pytest.Config, log=None, variants: Iterable[Variant] = (),
                 scaled_metrics: Iterable[str] = (), shared: bool = True) -> None:
        super().__init__(config, log)
        self.scopes = Scopes(variants, scaled_metrics, self.numnodes, shared)

    def _split_scope(self, nodeid: str) -> str:
        return self.scopes(nodeid)

    def remove_node(self, node) -> str | None:  # xdist's WorkerController
        """A node that finished, or died: a dead node's unfinished tests are never queued again.

        xdist's scope scheduling puts a lost node's whole scope back in the queue, the test it
        died in included, so a replacement worker runs that test again and dies again, and a
        scope whose other workers were told to shut down waits for ever (issue 34). Here the
        test it died in is returned (xdist reports it as crashed) and each test it had not run
        is reported failed with why: the qrel session records both as ERROR and journals them,
        so --qrel-resume runs them again; the rest of the run goes on, and ends."""
        workload = self.assigned_work.pop(node)  # KeyError for an unknown node, as xdist's
        pending = [nodeid for unit in workload.values() for nodeid, done in unit.items() if not done]
        if not pending:
            return None
        for nodeid in pending[1:]:
            self._report_lost(nodeid, node, f"worker {node.gateway.id!r} crashed while running {pending[0]!r}, "
                                            f"before running {nodeid!r}")
        for other in self.assigned_work:
            self._reschedule(other)
        return pending[0]  # the test running when it died: tests run in their assigned order

    def _report_lost(self, nodeid: str, node, why: str) -> None:  # xdist's WorkerController
        """Report a test a lost worker never ran as failed, as xdist reports the test it died in."""
        fspath = nodeid.split("::")[0]
        report = pytest.TestReport(nodeid=nodeid, location=(fspath, None, fspath), keywords={}, outcome="failed",
                                   longrepr=why, when="call")
        report.node = node  # type: ignore[attr-defined]  # the terminal names the worker, as for xdist's crash report
        self.config.hook.pytest_runtest_logreport(report=report)
