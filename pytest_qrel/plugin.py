"""pytest hooks only: each one calls the QrelSession kept in ``config.stash``."""

from __future__ import annotations

from pathlib import Path

import pytest

from . import options
from .session import WORKEROUTPUT_KEY, QrelSession

SESSION_KEY = pytest.StashKey[QrelSession]()


def pytest_addoption(parser: pytest.Parser) -> None:
    options.add_options(parser)


@pytest.hookimpl(trylast=True)
def pytest_configure(config: pytest.Config) -> None:
    session = QrelSession.from_config(config)
    config.stash[SESSION_KEY] = session
    config.addinivalue_line("markers", "xdist_group(name): run tests of one group on one xdist worker")
    # `pytest --qrel-models=...` with no path collects the shipped suites.
    if session.active and config.args_source != pytest.Config.ArgsSource.ARGS:
        config.args = [str(suites_dir())]


def suites_dir() -> Path:
    from . import suites

    return Path(suites.__file__).parent


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    metafunc.config.stash[SESSION_KEY].parametrize(metafunc)


@pytest.fixture(scope="session")
def qrel(request: pytest.FixtureRequest) -> QrelSession:
    """The run's QrelSession: models, outputs, thresholds and the results store."""
    return request.config.stash[SESSION_KEY]


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node, error) -> None:
    node.config.stash[SESSION_KEY].merge_workeroutput(getattr(node, "workeroutput", {}))


def pytest_sessionfinish(session: pytest.Session) -> None:
    qrel = session.config.stash[SESSION_KEY]
    if qrel.is_worker:
        session.config.workeroutput[WORKEROUTPUT_KEY] = qrel.to_workeroutput()
    else:
        qrel.write_report()


def pytest_terminal_summary(terminalreporter, config: pytest.Config) -> None:
    config.stash[SESSION_KEY].terminal_summary(terminalreporter)
