"""Progress lines while a model is quantized or evaluated (issue 17, item 5).

One tqdm line on the terminal's stderr: the model, the variant (i of K of its model), the step
(quantizing, the base's outputs, scoring a task, sampling), its rate (tokens, questions or
prompts per second) and the time left. ``--qrel-progress``: ``on``, ``off``, or ``auto`` (the
default): on only where a person watches, i.e. in the controlling pytest process (not an xdist
worker, whose stderr nobody sees), with stderr a terminal, and not under ``-q``. CI logs are
not terminals, so nothing is printed there unless ``--qrel-progress=on`` asks for it.

pytest captures stderr while a test runs; the lines are written with its capture suspended
(``CaptureManager.global_and_fixture_disabled``, as pytest's own live logging does), so they
reach the terminal and never a test's captured output. Code that measures calls ``step()``
whether or not progress is on: off, it is a no-op.
"""

from __future__ import annotations

import contextlib
import sys
import weakref
from typing import Any, Iterator

MODES = ("auto", "on", "off")


class _NoBar:
    def update(self, n: int = 1) -> None:
        pass


class _Terminal:
    """A file for tqdm that writes to the real stderr, with pytest's capture suspended."""

    def __init__(self, capture: Any) -> None:  # pytest's CaptureManager, or None
        self.capture = capture

    def _suspended(self):
        return self.capture.global_and_fixture_disabled() if self.capture is not None else contextlib.nullcontext()

    def write(self, text: str) -> None:
        with self._suspended():
            sys.stderr.write(text)
            sys.stderr.flush()

    def flush(self) -> None:
        pass

    def isatty(self) -> bool:
        with self._suspended():
            return sys.stderr.isatty()


class Progress:
    """Where progress goes: ``file`` (None: nowhere) and the test's context (model, variant)."""

    def __init__(self, file: Any = None) -> None:
        self.file = file
        self.context = ""

    @contextlib.contextmanager
    def step(self, what: str, total: int | None = None, unit: str = "it", model: Any = None) -> Iterator[Any]:
        if self.file is None:
            yield _NoBar()
            return
        from tqdm import tqdm

        desc = " · ".join(filter(None, (self.context, _labels.get(model) if model is not None else None, what)))
        bar = tqdm(total=total, desc=desc, unit=unit, unit_scale=True, file=self.file, leave=False,
                   dynamic_ncols=True, mininterval=0.5,  # a step of no known size: its name and elapsed time
                   bar_format=None if total is not None else "{desc}: {elapsed}")
        try:
            yield bar
        finally:
            bar.close()


_active = Progress()
_labels: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # model -> "base" or a variant's id


def step(what: str, total: int | None = None, unit: str = "it", model: Any = None):  # a bar's context
    """A progress bar for one step of the running test, on ``model`` if given (named by
    ``name_model``); a no-op when progress is off."""
    return _active.step(what, total, unit, model)


def name_model(model: Any, label: str) -> None:
    """What ``model`` is, in the progress lines of steps run on it ("base", a variant's id)."""
    with contextlib.suppress(TypeError):  # an object that takes no weak reference goes unnamed
        _labels[model] = label


def set_context(text: str) -> None:
    """What the running test measures: shown before every step's name."""
    _active.context = text


def wanted(mode: str, is_worker: bool, verbosity: int, capture: Any) -> bool:
    """Whether ``--qrel-progress=mode`` shows progress in this process."""
    if mode != "auto":
        return mode == "on"
    return not is_worker and verbosity >= 0 and _Terminal(capture).isatty()


def install(enabled: bool, capture: Any = None) -> None:
    """Turn progress on (to the terminal's stderr, around ``capture``) or off for this process."""
    global _active
    _active = Progress(_Terminal(capture) if enabled else None)


def install_for(config: Any, mode: str, is_worker: bool) -> None:
    """Progress on or off for the pytest process of ``config`` (a ``pytest.Config``)."""
    capture = config.pluginmanager.getplugin("capturemanager")
    install(wanted(mode, is_worker, config.get_verbosity(), capture), capture)
