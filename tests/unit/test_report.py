import json

from pytest_qrel.report import write_results_json
from pytest_qrel.report.terminal import _rows
from pytest_qrel.results import Record


def record(**fields) -> Record:
    """A record as results.json has it, with the fields a test does not care about filled in."""
    base = {"test": "t", "property": None, "variant": "m-hqq-4b", "model": "m", "method": "hqq", "bits": 4,
            "group_size": None, "metric": None, "status": "pass"}
    return Record.from_dict({**base, **fields})


def _variant(vid, total_bits, method="hqq", bits=4, **extra):
    return {"id": vid, "model": "m", "method": method, "bits": bits, "effective_bits": 4.3, "total_bits": total_bits,
            "quantized_layers": 7, "linear_layers": 7, "params": 10, **extra}


def test_rows_sorted_by_total_bits_with_skips_last():
    variants = [
        _variant("m-hqq-8b", 800.0, bits=8),
        _variant("m-bnb-3b", None, method="bnb", bits=3, skip_reason="bnb does not support 3-bit weights"),
        _variant("m-hqq-2b", 200.0, bits=2),
    ]
    results = [
        record(variant="m-hqq-8b", metric="kl_to_base", value=0.001, threshold=0.01, status="pass"),
        record(variant="m-hqq-2b", metric="kl_to_base", value=0.9, threshold=0.5, status="fail"),
    ]
    rows = _rows("m", variants, results)
    assert [r[0] for r in rows] == ["m-hqq-2b", "m-hqq-8b", "m-bnb-3b"]
    assert rows[0][-1] == "FAIL" and rows[1][-1] == "PASS"
    assert rows[2][-1] == "SKIP: bnb does not support 3-bit weights"


def test_results_json_is_replaced_atomically_and_keeps_nonfinite_values(tmp_path):
    (tmp_path / "results.json").write_text("old")
    path = write_results_json(tmp_path, [], [record(value=float("nan"), status="fail")], fits=[])
    doc = json.loads(path.read_text())
    assert doc["results"][0]["value"] == "nan" and doc["results"][0]["passed"] is False
    assert {k: doc[k] for k in ("schema", "variants", "fits")} == {"schema": 1, "variants": [], "fits": []}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["results.json"]  # no temp files left


def test_results_json_has_the_mode_of_the_other_report_files(tmp_path):
    # the temp file behind the atomic write is 0600; results.json must be readable as report.md is
    import os

    old = os.umask(0o022)
    try:
        path = write_results_json(tmp_path, [], [], fits=[])
        other = tmp_path / "report.md"
        other.write_text("x")
    finally:
        os.umask(old)
    assert oct(path.stat().st_mode & 0o777) == oct(other.stat().st_mode & 0o777) == oct(0o644)


def test_stable_public_api():
    import pytest_qrel
    import pytest_qrel.metrics as metrics

    assert callable(pytest_qrel.effective_bits)
    for name in ("entropy", "brier_score", "expected_calibration_error", "adaptive_calibration_error", "auroc",
                 "auprc", "kl_divergence", "js_distance", "paired_ttest", "confidence_shift_by_bin"):
        assert name in metrics.__all__ and callable(getattr(metrics, name))


def test_robustness_radar_per_model_and_intensity(tmp_path):
    from pytest_qrel.report import plot_robustness_radar

    names = ["char_swap", "leetspeak", "slang", "word_swap"]
    records = [record(property="robustness", metric="accuracy_drop", model="m", variant=f"m-hqq-{b}b",
                      perturbation=n, intensity=i, value=0.2,
                      comparison={"quantized": {"accuracy": 0.5 + 0.01 * b - 0.01 * i}, "base": {"accuracy": 0.7}})
               for b in (2, 8) for n in names for i in (4, 16)]
    paths = plot_robustness_radar(tmp_path, records)
    assert sorted(p.name for p in paths) == ["robustness_m_i16.png", "robustness_m_i4.png"]
    assert all(p.read_bytes()[:4] == b"\x89PNG" for p in paths)
    assert plot_robustness_radar(tmp_path, [record(property="kl", metric="kl_to_base", value=0.1)]) == []


class _Terminal:
    """A terminal reporter that keeps its lines."""

    def __init__(self):
        self.lines = []

    def write_sep(self, sep, title):
        self.lines.append(f"{sep * 3} {title} {sep * 3}")

    def write_line(self, line, **markup):
        self.lines.append(line)


def _run_summary(records, **parts):
    from pytest_qrel.summary import summarize

    variants = [{"id": "m-hqq-4b", "model": "m", "method": "hqq", "bits": 4, "effective_bits": 4.3,
                 "total_bits": 100.0, "params": 10, "quantized_layers": 7, "linear_layers": 7}]
    summary = summarize(variants, records)
    return summary.__class__(**{**summary.__dict__, **parts})


def test_a_section_that_cannot_be_drawn_is_replaced_by_its_one_line_error(tmp_path):
    """Issue 15: every combination of suites and failing variants writes results.json, report.md
    and the terminal summary; a broken section says so in one line and the rest is drawn."""
    from pytest_qrel.report import write_run, write_tables

    records = [record(property="kl", metric="kl_to_base", value=0.01, threshold=0.1)]
    broken = _run_summary(records, robustness={"m": {"rows": {"char_swap i4": None}, "unknown": {}, "worst": {}, "fuzzing": []}})
    tr = _Terminal()
    write_tables(tr, broken, tmp_path)
    assert any(line.startswith("qrel: the robustness tables could not be drawn: ") for line in tr.lines)
    assert any(line.startswith("qrel: 1 passed, 0 failed thresholds, 0 errors") for line in tr.lines)  # drawn after it
    write_run(tmp_path, broken, broken.variants)
    assert json.loads((tmp_path / "results.json").read_text())["results"][0]["value"] == 0.01
    markdown = (tmp_path / "report.md").read_text()
    assert "- the robustness tables could not be drawn: " in markdown and "| m-hqq-4b |" in markdown


def test_the_robustness_table_without_unperturbed_rows_is_drawn():
    """`-k fuzzed` alone, or a model whose variants all had NaN logits, leaves no unperturbed
    row: the table is drawn from what there is (it raised KeyError: 'unperturbed')."""
    from pytest_qrel.report.robustness import table_lines
    from pytest_qrel.summary import robustness_summary

    fuzz = record(property="robustness", metric="answer_agreement", value=0.7, threshold=0.5, fuzz_batch=8)
    nan = record(property="robustness", metric="accuracy_drop", status="fail", reason="NaN or inf logits",
                 perturbation="char_swap", intensity=4)
    summary = robustness_summary([fuzz, nan])
    head, body, notes = table_lines("m", summary["m"])
    assert body == [] and any("fuzzing m-hqq-4b" in n for n in notes)


def test_kl_statistics_table_and_the_zoo_text_warning():
    from pytest_qrel.report.kl import kl_markdown_lines, table_lines, text_notes

    detail = {"tokens": 4096, "kl_se": 0.0012, "kl_bound_width": 2e-5, "kl_decided": "bounds", "kl_median": 0.01,
              "kl_p90": 0.05, "kl_p99": 0.4, "kl_p999": 1.5, "kl_max": 3.2, "top1_agreement": 0.93, "top1_se": 0.004,
              "dp_mean": -0.002, "dp_rms": 0.05, "ln_ppl_ratio": 0.021, "kl_text": "file wiki.txt, windows of 512 tokens",
              "kl_topk": 1024, "kl_text_note": "m: KL measured on the zoo's held-out sentences"}
    rec = Record("test_kl_to_base[m-hqq-4b-g64]", "kl", "m-hqq-4b-g64", "m", "hqq", 4, 64, "kl_to_base", "pass",
                 value=0.0314, threshold=0.1, detail=detail)
    head, body, notes = table_lines([rec])
    row = dict(zip(head, body[0], strict=True))
    assert row["mean KL ± se"] == "0.0314 ± 0.0012" and row["p99.9"] == "1.5" and row["decided"] == "bounds"
    assert row["top-1 agree ± se"] == "0.9300 ± 0.004" and row["ln PPL ratio"] == "+0.021"
    assert notes == ["KL text: file wiki.txt, windows of 512 tokens; base top-1024 stored",
                     "warning: m: KL measured on the zoo's held-out sentences"]
    assert text_notes([rec]) == ["m: KL measured on the zoo's held-out sentences"]
    assert "| m-hqq-4b-g64 | 4096 | 0.0314 ± 0.0012 |" in "\n".join(kl_markdown_lines([rec]))


def test_robustness_by_stratum_names_the_most_fragile_stratum():
    """Paper 002's strata under perturbation: the table shows each stratum's accuracy unperturbed
    and its mean over the perturbed conditions, per column, and the note names the stratum whose
    base lost the largest share of its accuracy (not the largest absolute drop)."""
    from pytest_qrel.report.robustness import strata_lines
    from pytest_qrel.summary import robustness_summary

    def rec(variant, perturbation, recall, utilization):
        acc = lambda clean, pert, q_clean, q_pert: {"base_unperturbed": clean, "base": pert,  # noqa: E731
                                                     "quantized_unperturbed": q_clean, "quantized": q_pert}
        summ = {"accuracy": 0.5, "auroc_entropy": 0.6}
        comp = {"base": summ, "quantized": summ, "base_unperturbed": summ, "quantized_unperturbed": summ,
                "strata": {"recall": {"prompts": 80, **acc(*recall)}, "utilization": {"prompts": 20, **acc(*utilization)}}}
        return record(property="robustness", metric="accuracy_drop", variant=variant, perturbation=perturbation,
                      intensity=4, comparison=comp)

    # recall: base 0.9 -> 0.6 and 0.5 (a third and 44% lost); utilization: 0.2 -> 0.15 and 0.15 (25% lost)
    records = [rec("m-hqq-4b", "char_swap", (0.9, 0.6, 0.8, 0.5), (0.2, 0.15, 0.2, 0.1)),
               rec("m-hqq-4b", "emoji", (0.9, 0.5, 0.8, 0.4), (0.2, 0.15, 0.2, 0.2)),
               rec("m-hqq-8b", "char_swap", (0.9, 0.6, 0.9, 0.6), (0.2, 0.15, 0.2, 0.15))]
    head, body, notes = strata_lines(robustness_summary(records)["m"])
    assert head[:3] == ["stratum", "prompts", "base acc: unperturbed -> perturbed (change)"]
    assert body[0] == ["recall", "80", "0.900 -> 0.550 (-0.350)", "0.800 -> 0.450 (-0.350)", "0.900 -> 0.600 (-0.300)"]
    assert body[1] == ["utilization", "20", "0.200 -> 0.150 (-0.050)", "0.200 -> 0.150 (-0.050)", "0.200 -> 0.150 (-0.050)"]
    assert notes[0].startswith("most fragile stratum under perturbation (base, mean over 2 perturbed conditions): recall;")
    assert "recall 0.900 -> 0.550 (39% lost); utilization 0.200 -> 0.150 (25% lost)" in notes[0]
    # a stratum whose base gains under perturbation says so (not "-50% lost")
    gain = [rec("m-hqq-4b", "char_swap", (0.9, 0.6, 0.8, 0.5), (0.2, 0.3, 0.2, 0.3))]
    assert "utilization 0.200 -> 0.300 (50% gained)" in strata_lines(robustness_summary(gain)["m"])[2][0]
    # prompts without strata: no table
    assert strata_lines(robustness_summary(records[:0] + [record(property="robustness", metric="accuracy_drop")]).get("m", {})) == ([], [], [])


def test_a_property_not_run_is_a_column_of_the_verdict_matrix_never_a_missing_one():
    """Issue 37: a named model that got fewer properties than the run asked for shows
    ``not run (why)`` where the property's column would be empty, in catalog order."""
    from pytest_qrel.summary import not_run_lines, verdicts

    variants = [_variant("m-hqq-4b", 100.0), {**_variant("z-hqq-4b", 100.0), "model": "z"}]
    records = [record(property="kl", metric="kl_to_base", value=0.01, threshold=0.1),
               record(variant="z-hqq-4b", model="z", property="kl", metric="kl_to_base", value=0.01, threshold=0.1),
               record(variant="z-hqq-4b", model="z", property="robustness", metric="accuracy_drop", status="skip")]
    not_run = {"m": {"calibration": "name its tasks", "robustness": "give a QA file"}}
    matrix = verdicts(variants, records, not_run=not_run)
    assert list(matrix["m-hqq-4b"]) == ["kl", "calibration", "robustness"]
    assert matrix["m-hqq-4b"] == {"kl": "PASS", "calibration": "not run (name its tasks)",
                                  "robustness": "not run (give a QA file)"}
    assert matrix["z-hqq-4b"] == {"kl": "PASS", "calibration": "-", "robustness": "not checked"}
    assert list(verdicts(variants, records)["m-hqq-4b"]) == ["kl", "robustness"]  # without it: no column
    assert not_run_lines({"m": {"calibration": "a", "confidence": "a", "robustness": "b"}}) == [
        "calibration, confidence: not run for m: a", "robustness: not run for m: b"]
