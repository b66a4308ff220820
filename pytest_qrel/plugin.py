"""pytest hooks only: each one calls the QrelSession kept in ``config.stash``."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from . import catalog_options, engine, hooks, options, parsing, progress
from .placement import GPUS_PER_WORKER
from .properties import Property
from .session import QrelSession

SESSION_KEY = pytest.StashKey[QrelSession]()


def pytest_addhooks(pluginmanager: pytest.PytestPluginManager) -> None:
    pluginmanager.add_hookspecs(hooks)


def pytest_addoption(parser: pytest.Parser, pluginmanager: pytest.PytestPluginManager) -> None:
    options.add_options(parser)
    pluginmanager.register(_PropertyOptions(parser), "qrel-property-options")


class _PropertyOptions:
    """Adds the threshold option a plugin's property declares (``Property.threshold_option``)
    as its plugin or conftest.py is registered, so that it works on the command line, in
    ``[tool.qrel]`` and in --help like a built-in one (pytest_plugin_registered is historic:
    plugins registered before this one are seen too)."""

    def __init__(self, parser: pytest.Parser) -> None:
        self.parser = parser
        self.added = {opt.flag for opt in options.OPTIONS}

    def pytest_plugin_registered(self, plugin: object) -> None:
        register_properties = getattr(plugin, "pytest_qrel_register_properties", None)
        if not callable(register_properties):
            return
        props: list = []
        # a malformed property is left to registered_properties, which makes it a usage error
        register_properties(register=lambda prop, measure: props.append(prop) if isinstance(prop, Property) else None)
        new = tuple(opt for opt in catalog_options.for_catalog(props) if opt.flag not in self.added)
        self.added.update(opt.flag for opt in new)
        options.add_options(self.parser, new, merge=False)


@pytest.hookimpl(trylast=True)
def pytest_configure(config: pytest.Config) -> None:
    if hasattr(config, "workerinput"):  # an xdist worker: its GPU (in a qrel run), its share of the cores
        if qrel_run(config):
            per_worker = options.raw_values(config).get("qrel_gpus_per_worker", "1")
            engine.pin_worker_gpu(int(str(config.workerinput.get("workerid", "gw0")).removeprefix("gw") or 0),
                                  per_worker=parsing.integer(GPUS_PER_WORKER, per_worker, 1))
        engine.threads_for_worker(int(config.workerinput.get("workercount", 1)))
    if not hasattr(config, "workerinput") and config.getoption("dist", "no") == "each" and qrel_run(config):
        # every test on every worker: each variant's verdict counted once per worker
        raise pytest.UsageError("--dist each: runs every test on every worker, so a gate would count each variant "
                                "once per worker; use -n alone (the plugin's scheduler) or --dist loadgroup")
    session = QrelSession.from_config(config)
    config.stash[SESSION_KEY] = session
    progress.install_for(config, session.config.progress, session.is_worker)
    config.pluginmanager.register(_ReportListener(session), "qrel-reports")
    config.addinivalue_line("markers", "xdist_group(name): run tests of one group on one xdist worker")
    config.addinivalue_line("markers", "qrel_property(name): the reliability property a qrel suite test gates")
    # `pytest --qrel-models=...` with no path collects the shipped suites.
    if session.active and config.args_source != pytest.Config.ArgsSource.ARGS:
        config.args = [str(suites_dir())]


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_auto_num_workers(config: pytest.Config) -> int | None:
    """``-n auto`` in a qrel run: one worker per visible GPU when there are GPUs (else, and in
    any other project's run, xdist's CPU count)."""
    return (len(engine.visible_gpus()) or None) if qrel_run(config) else None


def qrel_run(config: pytest.Config) -> bool:
    """Whether this run gates models (--qrel-* options, or the shipped suites named): only then
    does the plugin give each worker a GPU of its own or size -n auto by the GPUs."""
    if options.given_on_command_line(config):
        return True
    suites = suites_dir().resolve()
    paths = (Path(str(a).split("::")[0]).resolve() for a in config.invocation_params.args if not str(a).startswith("-"))
    return any(p == suites or suites in p.parents for p in paths)


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log):  # xdist's hook
    """Every test of one qrel model on one worker (``schedule.py``): for -n without --dist and
    for --dist loadgroup, whose grouping pytest 9.2 + xdist 3.8 lose."""
    from . import schedule

    if not schedule.wants_own_scheduler(config, qrel_run(config)):
        return None
    session = config.stash[SESSION_KEY]
    return schedule.ModelScheduling(config, log, session.variants, session.config.catalog.scaled_metrics(),
                                    shared=session.config.cache_dir is not None)


@pytest.hookimpl(optionalhook=True)
def pytest_configure_node(node) -> None:  # xdist's WorkerController
    node.workerinput.update(node.config.stash[SESSION_KEY].worker_input())


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node, error) -> None:  # xdist's: a worker ended, with its workeroutput
    node.config.stash[SESSION_KEY].worker_finished(getattr(node, "workeroutput", None) or {})


def suites_dir() -> Path:
    # found, not imported: pytest_qrel.suites is suites/ mapped by setuptools' package-dir
    # (pyproject.toml), which a type checker run on a checkout does not see
    spec = importlib.util.find_spec("pytest_qrel.suites")
    if spec is None or spec.origin is None:
        raise pytest.UsageError("pytest-qrel: its shipped suites (pytest_qrel.suites) are not installed")
    return Path(spec.origin).parent


def pytest_sessionstart(session: pytest.Session) -> None:
    session.config.stash[SESSION_KEY].start(session, qrel_run(session.config))


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    metafunc.config.stash[SESSION_KEY].parametrize(metafunc)


def pytest_collection(session: pytest.Session) -> bool | None:
    if session.config.stash[SESSION_KEY].merged is None:
        return None
    session.items = []  # --qrel-merge: no test is collected or run
    return True


@pytest.hookimpl(trylast=True)  # after -k / -m deselection: the run's final tests
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    config.stash[SESSION_KEY].order(items)


def pytest_collection_finish(session: pytest.Session) -> None:
    session.config.stash[SESSION_KEY].collected(session.items)


@pytest.fixture(scope="session")
def qrel(request: pytest.FixtureRequest) -> QrelSession:
    """The run's QrelSession: models, measures, thresholds and the results store."""
    return request.config.stash[SESSION_KEY]


def pytest_runtest_setup(item: pytest.Item) -> None:
    item.config.stash[SESSION_KEY].begin(item)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    report = yield
    item.config.stash[SESSION_KEY].finish(item, call, report)
    return report


class _ReportListener:
    """Receives every test report: in the only process, or on the xdist controller for each
    worker's report as it arrives (a report hook has no ``config`` to find the session by)."""

    def __init__(self, session: QrelSession) -> None:
        self.session = session

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        self.session.merge_report(report)


def pytest_sessionfinish(session: pytest.Session) -> None:
    session.config.stash[SESSION_KEY].end_of_run(session)


def pytest_terminal_summary(terminalreporter, config: pytest.Config) -> None:
    config.stash[SESSION_KEY].terminal_summary(terminalreporter)
