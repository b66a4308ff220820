"""The example CI job (examples/github-actions/checkpoint-regression.yml) cannot rot silently:
it is valid YAML shaped as a GitHub Actions workflow, every --qrel-* option it passes exists,
it pins the README's torch, passes --junitxml, keys the cache it restores on the model and
itself, and uploads what the run writes."""

import re
from pathlib import Path

import yaml

from pytest_qrel.options import OPTIONS

ROOT = Path(__file__).resolve().parents[2]
WORKFLOW = ROOT / "examples" / "github-actions" / "checkpoint-regression.yml"


def _steps() -> list[dict]:
    doc = yaml.safe_load(WORKFLOW.read_text())
    assert {"name", "jobs"} <= set(doc) and (True in doc or "on" in doc), sorted(map(str, doc))  # YAML 1.1 reads on: as True
    (job,) = doc["jobs"].values()
    assert job["runs-on"] and all("uses" in s or "run" in s for s in job["steps"])
    return job["steps"]


def _gate_command() -> str:
    (command,) = [s["run"] for s in _steps() if "run" in s and s["run"].startswith("pytest ")]
    return command


def test_every_qrel_option_it_uses_exists():
    declared = {opt.flag for opt in OPTIONS}
    used = set(re.findall(r"--qrel-[a-z0-9-]+", WORKFLOW.read_text()))  # its comments' too
    assert used and used <= declared, sorted(used - declared)
    assert {"--qrel-models", "--qrel-baseline", "--qrel-cache-dir", "--qrel-report-dir"} <= used


def test_it_pins_the_readmes_torch_and_gates_against_a_baseline_into_junit_xml():
    readme_pin = re.search(r"pip install (torch==[0-9.]+)", (ROOT / "README.md").read_text())
    assert readme_pin
    install = next(s["run"] for s in _steps() if s.get("name") == "Install")
    assert f"pip install {readme_pin.group(1)} " in install and "pytest-qrel" in install
    command = _gate_command()
    assert "--qrel-baseline=" in command and "--junitxml=qrel-report/junit.xml" in command


def test_it_restores_and_saves_the_cache_the_run_uses_and_uploads_the_report():
    steps = _steps()
    command = _gate_command()
    cache_dir = re.search(r"--qrel-cache-dir=(\S+)", command)
    report_dir = re.search(r"--qrel-report-dir=(\S+)", command)
    assert cache_dir and report_dir
    restore = next(s for s in steps if str(s.get("uses", "")).startswith("actions/cache/restore@"))
    save = next(s for s in steps if str(s.get("uses", "")).startswith("actions/cache/save@"))
    assert restore["with"]["path"] == save["with"]["path"] == cache_dir.group(1)
    # keyed on the model's files and this workflow (its pins and options), under the name it is copied to
    assert "hashFiles('model/**')" in restore["with"]["key"] and f"/{WORKFLOW.name}')" in restore["with"]["key"]
    assert "--qrel-models=./model" in command
    assert save["if"].startswith("always()")  # a failed gate keeps what it quantized
    upload = next(s for s in steps if str(s.get("uses", "")).startswith("actions/upload-artifact@"))
    assert upload["if"] == "always()"
    paths = upload["with"]["path"].split()
    for name in ("report.md", "results.json", "*.png", "junit.xml"):  # the files write_run and --junitxml write
        assert f"{report_dir.group(1)}/{name}" in paths
