"""--qrel-progress: a progress line on a terminal's stderr, and nothing under -q, without a
terminal (CI logs), in an xdist worker, or with off."""

import os
import pty
import subprocess
import sys
import threading

import pytest

from pytest_qrel import progress

KL_RUN = ["-p", "no:randomly", "-p", "no:cacheprovider", "-k", "test_kl_to_base", "--qrel-models=zoo-xs",
          "--qrel-methods=rtn", "--qrel-bits=8", "--qrel-no-cache"]


def _run(args: list[str], cwd, terminal: bool) -> str:
    """A user's ``python -m pytest args``: its stderr (a pseudo-terminal when ``terminal``)."""
    if not terminal:
        proc = subprocess.run([sys.executable, "-m", "pytest", *args], cwd=cwd, capture_output=True, text=True)
        assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
        return proc.stderr
    main, side = pty.openpty()
    proc = subprocess.Popen([sys.executable, "-m", "pytest", *args], cwd=cwd, stdout=subprocess.PIPE,
                            stderr=side, text=True)
    os.close(side)
    chunks: list[bytes] = []

    def drain() -> None:  # a full pty buffer would block the child
        while True:
            try:
                data = os.read(main, 4096)
            except OSError:  # EIO: the child closed its end
                return
            if not data:
                return
            chunks.append(data)

    reader = threading.Thread(target=drain)
    reader.start()
    out = proc.stdout.read()
    assert proc.wait() == 0, out[-2000:]
    reader.join()
    os.close(main)
    return b"".join(chunks).decode(errors="replace")


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """One short KL run per way of watching it (each about 10 s: a fresh process)."""
    cwd = tmp_path_factory.mktemp("progress")
    return {
        "terminal": _run(KL_RUN, cwd, terminal=True),
        "terminal -q": _run([*KL_RUN, "-q"], cwd, terminal=True),
        "no terminal": _run(KL_RUN, cwd, terminal=False),
        "no terminal, on": _run([*KL_RUN, "--qrel-progress=on"], cwd, terminal=False),
    }


def test_a_terminal_shows_the_model_the_variant_the_step_and_its_rate(runs):
    shown = runs["terminal"]
    assert "zoo-xs · variant 1/1 zoo-xs-rtn-8b-g64" in shown, shown[-2000:]
    assert "quantizing zoo-xs-rtn-8b-g64" in shown and "base · KL base outputs" in shown
    assert "zoo-xs-rtn-8b-g64 · KL" in shown and "tok/s" in shown


def test_silent_under_q_and_without_a_terminal(runs):
    for name in ("terminal -q", "no terminal"):
        assert "tok/s" not in runs[name] and "KL base outputs" not in runs[name], (name, runs[name][-2000:])


def test_on_shows_it_without_a_terminal(runs):
    assert "KL base outputs" in runs["no terminal, on"]


@pytest.mark.parametrize(
    "mode, worker, verbosity, tty, shown",
    [("auto", False, 0, True, True), ("auto", False, -1, True, False), ("auto", False, 0, False, False),
     ("auto", True, 0, True, False), ("on", True, -1, False, True), ("off", False, 1, True, False)],
)
def test_auto_means_a_person_is_watching(monkeypatch, mode, worker, verbosity, tty, shown):
    monkeypatch.setattr(sys, "stderr", type("Err", (), {"isatty": lambda self: tty})())
    assert progress.wanted(mode, worker, verbosity, None) is shown


def test_a_bad_mode_is_a_usage_error(pytester):
    result = pytester.runpytest("--qrel-models=zoo-xs", "--qrel-progress=sometimes")
    result.stderr.fnmatch_lines(["*--qrel-progress: expected one of auto, on, off, but got 'sometimes'*"])
