"""Fitted-law bounds and baselines as a user runs them: a damaged checkpoint falls outside
the law of its bit-width while honest variants pass; a baseline comparison fails exactly the
variant that got worse; the report has its tables, plot and fits."""

import json
import shutil
from pathlib import Path

# imported once per process: quanto's torch operators cannot be registered a second time (pytester's
# runs keep it imported: tests/conftest.py)
import optimum.quanto as optimum_quanto
import pytest
import torch

from pytest_qrel.models import zoo_dir

RUN = ["-p", "no:randomly", "--qrel-no-cache"]


def _quanto_checkpoint(path, zoo: str, damage: float | None = None):
    """An optimum-quanto int4 checkpoint of a zoo model, written by quanto's own save; with
    ``damage``, one MLP layer's weights are scaled by it before quantization."""
    from transformers import AutoModelForCausalLM

    QuantizedModelForCausalLM, qint4 = optimum_quanto.QuantizedModelForCausalLM, optimum_quanto.qint4
    model = AutoModelForCausalLM.from_pretrained(zoo_dir() / zoo)
    if damage is not None:
        with torch.no_grad():
            model.model.layers[0].mlp.down_proj.weight.mul_(damage)
    if path.exists():
        shutil.rmtree(path)
    QuantizedModelForCausalLM.quantize(model, weights=qint4, exclude="lm_head").save_pretrained(path)
    return path


def _results(path, report="qrel-report"):
    return json.loads((path / report / "results.json").read_text())


@pytest.mark.parametrize("xdist", [[], ["-n", "2", "--dist", "loadgroup"]], ids=["one-process", "xdist"])
def test_damaged_checkpoint_falls_outside_the_law_and_honest_variants_pass(pytester, xdist):
    if xdist:
        pytest.importorskip("xdist")
        # its workers load the quanto checkpoint too: the tests' torch unpack, not a ninja build
        pytester.makeconftest((Path(__file__).parents[1] / "quanto_unpack.py").read_text() + "\nuse_torch_unpack()\n")
    _quanto_checkpoint(pytester.path / "damaged", "zoo-m", damage=3.0)
    # only the law's tests: each measures the values it fits on itself (as on an xdist worker)
    result = pytester.runpytest(
        "--qrel-models=zoo-xs,zoo-s,zoo-m,zoo-l,./damaged", "--qrel-base=zoo-m", "--qrel-methods=hqq,rtn",
        "--qrel-bits=4", "-k", "test_within_scaling_law", *RUN, *xdist)
    result.assert_outcomes(passed=8, failed=1)
    result.stdout.fnmatch_lines(["FAILED *test_within_scaling_law[[]kl_to_base-zoo-m-quanto-4b-g128-ckpt-damaged[]]*"])
    doc = _results(pytester.path)
    (bad,) = [r for r in doc["results"] if r["status"] == "fail"]
    assert bad["property"] == "scaling" and bad["value"] > bad["band"][1] == bad["threshold"]
    assert bad["fit_points"] == 8 and bad["confidence"] == 0.99
    # the honest ones sit inside the band fitted on the others (damaged one included)
    for r in doc["results"]:
        if r["status"] == "pass":
            assert r["band"][0] <= r["value"] <= r["band"][1]
    fits = {(f["law"], f["family"]): f for f in doc["fits"]}
    assert fits[("log_quadratic", "4-bit")]["fitted"] and fits[("log_quadratic", "4-bit")]["n"] == 9
    assert fits[("power_law", "all")]["fitted"] and "adj_r2" in fits[("power_law", "all")]
    result.stdout.fnmatch_lines(["fitted laws *", "  kl_to_base log_quadratic 4-bit: L(B) = * n=9, adjusted R²=*"])


def test_too_few_points_for_a_law_are_reported_not_faked(pytester):
    result = pytester.runpytest("--qrel-models=zoo-s,zoo-m", "--qrel-methods=hqq", "--qrel-bits=4",
                                           "-k", "test_kl_to_base or test_within_scaling_law", *RUN)
    # KL tests pass; each law test has one other 4-bit point: nothing to fit, said so
    result.assert_outcomes(passed=2, skipped=2)
    result.stdout.fnmatch_lines(["*no 4-bit law to bound kl_to_base with: the other 4-bit variants give 1 point, "
                                 "and a law of 3 coefficients needs 4*",
                                 "*kl_to_base log_quadratic 4-bit: not fitted: Expected at least 4 points*"])
    skips = [r for r in _results(pytester.path)["results"] if r["property"] == "scaling"]
    assert [r["status"] for r in skips] == ["skip", "skip"]


def test_baseline_fails_exactly_the_variant_that_got_worse(pytester):
    ckpt = _quanto_checkpoint(pytester.path / "release", "zoo-s")
    args = ["--qrel-models=zoo-s,./release", "--qrel-base=zoo-s", "--qrel-methods=hqq", "--qrel-bits=4",
            "--qrel-kl-threshold=4:10", "-k", "test_kl_to_base", *RUN]
    first = pytester.runpytest(*args, "--qrel-save-baseline=baseline.json")
    first.assert_outcomes(passed=2)
    assert json.loads((pytester.path / "baseline.json").read_text())["results"]
    # an identical rerun against it passes
    again = pytester.runpytest(*args, "--qrel-baseline=baseline.json", "--qrel-compare-fail=kl:10%")
    again.assert_outcomes(passed=2)
    # the same checkpoint directory, now damaged: only its KL test fails, with old, new, change
    _quanto_checkpoint(ckpt, "zoo-s", damage=10.0)
    worse = pytester.runpytest(*args, "--qrel-baseline=baseline.json", "--qrel-compare-fail=kl:10%")
    worse.assert_outcomes(passed=1, failed=1)
    worse.stdout.fnmatch_lines(["FAILED *test_kl_to_base[[]zoo-s-quanto-4b-g128-ckpt-release[]]*"])
    worse.stdout.fnmatch_lines(["against the baseline (old, new, change):"])
    worse.stdout.fnmatch_lines(["*test_kl_to_base[[]zoo-s-quanto-4b-g128-ckpt-release[]]: * -> *, +* (+*%)  FAIL: kl_to_base "
                                "regressed from the baseline * more than the tolerated 10%*"])
    records = {r["variant"]: r for r in _results(pytester.path)["results"]}
    bad = records["zoo-s-quanto-4b-g128-ckpt-release"]
    assert bad["status"] == "fail" and bad["value"] > 1.1 * bad["baseline_value"] and bad["change"] > 0
    assert records["zoo-s-hqq-4b-g64"]["status"] == "pass" and records["zoo-s-hqq-4b-g64"]["change"] == 0


def test_report_files_are_written(pytester):
    robustness = ["--qrel-perturbations=char_swap,word_swap,slang", "--qrel-intensities=4", "--qrel-qa-limit=20",
                  "--qrel-samples=2", "-k", "not fuzzed"]
    result = pytester.runpytest("--qrel-models=zoo-s,zoo-m", "--qrel-methods=hqq,rtn", "--qrel-bits=4,8",
                                           "--qrel-kl-threshold=4:1,8:1", "--qrel-task-limit=40", *robustness, *RUN)
    assert result.ret in (0, 1)
    report = pytester.path / "qrel-report"
    assert sorted(p.name for p in report.iterdir()) == [
        "confidence_shift_zoo-m.png", "confidence_shift_zoo-s.png", "journal.jsonl", "kl_to_base_vs_total_bits.png",
        "report.md", "results.csv", "results.json", "robustness_zoo-m_i4.png", "robustness_zoo-s_i4.png"]
    md = (report / "report.md").read_text()
    assert "## zoo-m" in md and "## Fitted laws" in md and "![kl_to_base_vs_total_bits](kl_to_base_vs_total_bits.png)" in md
    assert "![confidence_shift_zoo-s](confidence_shift_zoo-s.png)" in md
    assert "## zoo-s: robustness" in md and "![robustness_zoo-m_i4](robustness_zoo-m_i4.png)" in md
    for png in report.glob("*.png"):
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    rows = (report / "results.csv").read_text().splitlines()
    records = _results(pytester.path)["results"]
    assert rows[0].startswith("test,property,variant") and len(rows) == 1 + len(records)
    assert {r["property"] for r in records} == {"kl", "scaling", "calibration", "confidence", "robustness"}
    power = next(f for f in _results(pytester.path)["fits"] if f["law"] == "power_law")
    # paper 002 Table 1's ablation: every non-empty subset of the factors the run varies
    assert power["fitted"], power
    assert sorted(tuple(a["factors"]) for a in power["ablation"]) == [
        ("effective_bits",), ("model_size",), ("model_size", "effective_bits")]
    result.stdout.fnmatch_lines(["sweet spot for kl_to_base: *", "  <= * bits: zoo-* (*-bit *), kl_to_base *"])
