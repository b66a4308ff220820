"""A stored output's key carries the code's versions, not its source text (issue 35 item 4): a
docstring edited in a measure or in the engine keeps every stored output; a bumped version, of
the measure or of a shared module below it, is a miss."""

import os
import shutil
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np

import pytest_qrel
from pytest_qrel.measures.outputs import Outputs

GET = """
import sys
from types import SimpleNamespace

import numpy as np

from pytest_qrel.measures.outputs import Outputs

computed = []
Outputs(SimpleNamespace(cache_dir=sys.argv[1]), None).get(
    "kind", "model", ["u"], lambda u: {"setting": 1}, lambda us: computed.append(us) or {u: np.arange(3.0) for u in us},
    lambda a: {"x": a}, lambda d: d["x"])
print("computed" if computed else "read")
"""


def _package_copy(root: Path) -> Path:
    """The installed package copied under ``root`` (its symlinked suites and fixtures as links)."""
    shutil.copytree(Path(pytest_qrel.__file__).parent, root / "pytest_qrel", symlinks=True,
                    ignore=shutil.ignore_patterns("__pycache__"))
    return root


def _get_in(package_root: Path, cache: Path) -> str:
    out = subprocess.run([sys.executable, "-c", GET, str(cache)], capture_output=True, text=True, timeout=120,
                         cwd=package_root, env={**os.environ, "PYTHONPATH": str(package_root)})
    assert out.returncode == 0, out.stderr
    return out.stdout.strip()


def test_an_edited_docstring_keeps_the_stored_outputs(tmp_path):
    before, after, cache = _package_copy(tmp_path / "before"), _package_copy(tmp_path / "after"), tmp_path / "cache"
    for name in ("measures/drift.py", "measures/outputs.py", "engine.py", "rows.py", "sampling.py"):
        path = after / "pytest_qrel" / name
        path.write_text(path.read_text() + "\n# a comment, and nothing else, edited\n")
    assert _get_in(before, cache) == "computed"
    assert _get_in(after, cache) == "read"  # the source changed, not what it computes: a hit


def _computed(outputs: Outputs) -> bool:
    computed = []
    outputs.get("kind", "model", ["u"], lambda u: {"setting": 1},
                lambda us: computed.append(us) or {u: np.arange(3.0) for u in us}, lambda a: {"x": a}, lambda d: d["x"])
    return bool(computed)


def test_a_bumped_version_is_a_miss(tmp_path, monkeypatch):
    config = SimpleNamespace(cache_dir=tmp_path)
    assert _computed(Outputs(config, None, version=1))
    assert not _computed(Outputs(config, None, version=1))
    assert _computed(Outputs(config, None, version=2))  # the measure's version
    assert not _computed(Outputs(config, None, version=1))  # the older one's outputs are kept
    from pytest_qrel import engine, rows, sampling

    for module in (engine, rows, sampling):  # each shared module's version
        with monkeypatch.context() as m:
            m.setattr(module, "VERSION", module.VERSION + 1)
            assert _computed(Outputs(config, None, version=1)), module.__name__


def test_every_builtin_measure_keys_its_outputs_with_its_version():
    from pytest_qrel.measures import MEASURES, Measure

    measure = SimpleNamespace(config=SimpleNamespace(cache_dir=None), store=None, version=7)
    assert Measure.outputs(measure).version == 7  # type: ignore[arg-type]
    for key, cls in MEASURES.items():
        assert isinstance(cls.version, int) and cls.version >= 1, key
        owner = next(c for c in cls.__mro__ if "version" in vars(c))
        assert owner is not Measure, f"{cls.__name__} must declare its own version (base.Measure.version)"
