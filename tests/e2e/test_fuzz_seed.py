"""The fuzzing test's batches follow its seed, not its source text (issue 35: behaviour never
follows source text). hypothesis's derandomize seeds its draws from a digest of the test
function's source, so renaming an exception the function raises drew other batches and moved
the gate's value; measures/fuzz.py fixes the seed (FUZZ_SEED)."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest_qrel

PACKAGE = Path(pytest_qrel.__file__).parent


def _package_copy(root: Path) -> Path:
    """The package copied under ``root``; its suites and fixtures linked where they really are."""
    shutil.copytree(PACKAGE, root / "pytest_qrel", symlinks=True, ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("suites", "fixtures"):
        link = root / "pytest_qrel" / name
        if link.is_symlink() or link.exists():
            target = (PACKAGE / name).resolve()
            if link.is_symlink():
                link.unlink()
            else:
                shutil.rmtree(link)
            link.symlink_to(target)
    return root


def _fuzz_records(package_root: Path, work: Path) -> list[dict]:
    """The fuzzing record of zoo-xs's rtn 2-bit variant (it fails: its batch is shrunk, along a
    path the draws choose), run with the package under ``package_root``."""
    cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:randomly", "-p", "no:cacheprovider", "-k", "fuzz",
           "--qrel-models=zoo-xs", "--qrel-methods=rtn", "--qrel-bits=2", "--qrel-qa-limit=24", "--qrel-fuzz-batch=8",
           f"--qrel-cache-dir={work / 'cache'}", f"--qrel-report-dir={work / 'report'}"]
    env = {**os.environ, "PYTHONPATH": str(package_root), "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
    out = subprocess.run(cmd, cwd=work, env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode in (0, 1), out.stdout[-2000:] + out.stderr[-2000:]
    return [r for r in json.loads((work / "report" / "results.json").read_text())["results"]
            if r["metric"] == "answer_agreement"]


def test_an_edit_of_the_fuzzing_function_draws_the_same_batches(tmp_path):
    before, after = _package_copy(tmp_path / "before"), _package_copy(tmp_path / "after")
    fuzz = after / "pytest_qrel" / "measures" / "fuzz.py"
    text = fuzz.read_text()
    assert "        def agree(batch: list) -> None:\n" in text
    fuzz.write_text(text.replace("        def agree(batch: list) -> None:\n",
                                 "        def agree(batch: list) -> None:\n            unused = \"a statement that changes nothing\"  # noqa: F841\n"))
    (tmp_path / "run-before").mkdir()
    (tmp_path / "run-after").mkdir()
    old, new = _fuzz_records(before, tmp_path / "run-before"), _fuzz_records(after, tmp_path / "run-after")
    assert len(old) == 1 and old[0]["shrunk_example"]
    for o, n in zip(old, new):
        assert (n["value"], n.get("shrunk_example")) == (o["value"], o.get("shrunk_example")), n["test"]
