"""A real run with pruned and quantized variants of one model (issue 36 item 4): the terminal and
report.md show the pruned-vs-quantized section with paper 000's finding line, results.json
records it, and ``pruned_vs_quantized_<model>.png`` is written beside the other plots.

Runs pytest in process (tests/conftest.py keeps the libraries imported between runs)."""

import json

ZOO_XS = ["--qrel-models=zoo-xs", "--qrel-methods=rtn,wanda", "--qrel-bits=8", "--qrel-sparsities=0.5",
          "--qrel-tasks=zoo_recall", "--qrel-task-limit=100", "-k", "test_kl_to_base or test_calibration_drift",
          "-p", "no:randomly", "--qrel-cache-dir=cache"]


def test_a_run_with_pruned_and_quantized_variants_reports_their_comparison(pytester):
    result = pytester.runpytest(*ZOO_XS)
    # the 50%-pruned variant fails its gates (held to the 8-bit thresholds); the run finishes
    result.assert_outcomes(passed=2, failed=2)
    result.stdout.fnmatch_lines([
        "model zoo-xs, pruned vs quantized at equal total bits (paper 000 Figs. 9-10 against Fig. 6; *",
        "pruned variant * sparsity * total bits * KL * acc drop * vs * quantized variant * better KL * better acc",
        "zoo-xs-wanda-s50 * 0.5 * <= * zoo-xs-rtn-8b-g64 * quantized *",
        "paper 000's finding * on zoo-xs (a quantized variant no larger has a lower KL and a smaller accuracy drop *",
    ])
    report_dir = pytester.path / "qrel-report"
    doc = json.loads((report_dir / "results.json").read_text())
    (entry,) = doc["pruned_vs_quantized"]
    assert entry["model"] == "zoo-xs" and entry["finding"]["metrics"] == ["kl_to_base", "accuracy_drop"]
    assert [(p["pruned"], p["smaller"]) for p in entry["pairs"]] == [("zoo-xs-wanda-s50", "zoo-xs-rtn-8b-g64")]
    points = {p["variant"]: p for p in entry["points"]}
    kl = {r["variant"]: r["value"] for r in doc["results"] if r["property"] == "kl"}
    assert {v: p["kl_to_base"] for v, p in points.items()} == kl
    report = (report_dir / "report.md").read_text()
    assert "## Pruned vs quantized at equal total bits: zoo-xs" in report
    assert "- paper 000's finding " in report
    plot = report_dir / "pruned_vs_quantized_zoo-xs.png"
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "![pruned_vs_quantized_zoo-xs](pruned_vs_quantized_zoo-xs.png)" in report
