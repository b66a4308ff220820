"""Paper 000 §4.2 reproduced (issue 36 item 4): each pruned variant beside the quantized variants
of at most and of more total bits, by KL to base and accuracy drop; whether 000's finding holds
per model; its section in the terminal and report.md, results.json's ``pruned_vs_quantized`` and
the plot. Synthetic variants and records: the numbers are chosen, so every outcome is known."""

import json

import pytest

from pytest_qrel.results import Record

CHOICE = {"accuracy": 0.8, "accuracy_norm": 0.8, "ece": 0.05, "ace": 0.05, "brier": 0.2, "conf": 0.7,
          "conf_err": 0.4, "conf_true": 0.6, "entropy": 0.9}
TASKS = ("t1", "t2")


def _variant(vid: str, method: str, bits: int, total: float, sparsity: str | None = None) -> dict:
    return {"id": f"m-{vid}", "model": "m", "method": method, "bits": bits, "group_size": 64, "sparsity": sparsity,
            "params": 1000, "total_bits": total, "effective_bits": total / 1000, "base_total_bits": 400.0}


# (id, method, bits, sparsity, total bits, KL, accuracy drop on each task)
ROWS = [("rtn-4b-g64", "rtn", 4, None, 100.0, 0.02, 0.01),
        ("rtn-8b-g64", "rtn", 8, None, 150.0, 0.001, 0.005),
        ("rtn-3b-g64", "rtn", 3, None, 180.0, 0.1, 0.06),  # nearer in size to the 50%-pruned one, but worse
        ("wanda-s50", "wanda", 8, "0.5", 200.0, 0.3, 0.05),
        ("wanda-2of4", "wanda", 8, "2:4", 200.0, 0.9, 0.1),
        ("hqq-8b-g16", "hqq", 8, None, 250.0, 0.0005, 0.0),
        ("wanda-s10", "wanda", 8, "0.1", 300.0, 0.01, 0.0)]


def _run(rows=ROWS, tasks=TASKS):
    """The variants and records of a run: one KL record per variant and, per task, one
    calibration record whose comparison has the variant's accuracy drop."""
    variants, records = [], []
    for vid, method, bits, sparsity, total, kl, drop in rows:
        variants.append(_variant(vid, method, bits, total, sparsity))
        common = dict(variant=f"m-{vid}", model="m", method=method, bits=bits, group_size=64)
        records.append(Record(f"test_kl_to_base[m-{vid}]", "kl", metric="kl_to_base", status="pass", value=kl,
                              base_value=0.0, threshold=1.0, higher_is_better=False, **common))
        for task in tasks:
            comparison = {"base": CHOICE, "quantized": {**CHOICE, "accuracy": 0.8 - drop},
                          "delta": {**{k: 0.0 for k in CHOICE}, "accuracy": -drop}, "conf_pvalue": 0.5,
                          "js_distance_true_class": 0.01}
            records.append(Record(f"test_calibration_drift[m-{vid}-{task}]", "calibration", metric="ece_increase",
                                  status="pass", value=0.0, base_value=0.05, threshold=0.1, higher_is_better=False,
                                  task=task, detail={"comparison": comparison, "questions": 10}, **common))
    return variants, records


def _compare(rows=ROWS, tasks=TASKS):
    from pytest_qrel.summary import summarize

    summary = summarize(*_run(rows, tasks))
    assert summary.errors == {}
    return summary


def test_each_pruned_variant_is_paired_with_the_best_quantized_no_larger_and_the_nearest_larger():
    (c,) = _compare().pruned_vs_quantized
    assert c.model == "m" and c.base_total_bits == 400.0
    pairs = {p.pruned.variant: (p.smaller and p.smaller.variant, p.larger and p.larger.variant) for p in c.pairs}
    # the lowest KL at <= 200 bits is the 8-bit rtn (not the nearer 3-bit, nor the 4-bit); hqq is the next larger
    assert pairs == {"m-wanda-s50": ("m-rtn-8b-g64", "m-hqq-8b-g16"), "m-wanda-2of4": ("m-rtn-8b-g64", "m-hqq-8b-g16"),
                     "m-wanda-s10": ("m-hqq-8b-g16", None)}
    s50 = c.point("m-wanda-s50")
    assert (s50.kl_to_base, s50.accuracy_drop) == (0.3, pytest.approx(0.05))
    entry = c.as_dict()["pairs"][[p.pruned.variant for p in c.pairs].index("m-wanda-s10")]
    # 0.1-pruned: hqq's KL 0.0005 < 0.01, equal accuracy (both drop 0)
    assert entry["better_smaller"] == {"kl_to_base": "quantized", "accuracy_drop": "equal"}
    assert entry["better_larger"] == {"kl_to_base": None, "accuracy_drop": None}


def test_the_finding_holds_when_a_quantized_variant_no_larger_beats_each_half_pruned_one():
    from pytest_qrel.report.pruned import finding_line

    (c,) = _compare().pruned_vs_quantized
    # the 0.1-pruned variant is not part of paper 000's finding (50% and 2:4 only)
    assert c.finding.holds is True and c.finding.metrics == ("kl_to_base", "accuracy_drop")
    assert c.finding.beaten_by == {"m-wanda-s50": "m-rtn-8b-g64", "m-wanda-2of4": "m-rtn-8b-g64"}
    line = finding_line(c)
    assert line.startswith("paper 000's finding holds on m (a quantized variant no larger has a lower KL and a "
                           "smaller accuracy drop than each 50%/2:4-pruned one): ")
    assert "m-wanda-s50 (200 bits, KL 0.3, accuracy drop 0.050) by m-rtn-8b-g64 (150 bits, KL 0.001, " \
           "accuracy drop 0.005)" in line


def test_the_finding_does_not_hold_when_the_pruned_variant_loses_less_accuracy():
    """Lower KL is not enough: a 50%-pruned variant whose accuracy drop no quantized variant no
    larger beats refutes the finding on that model, and the line names the closest contender."""
    from pytest_qrel.report.pruned import finding_line

    rows = [r if r[0] != "wanda-s50" else (*r[:6], 0.004) for r in ROWS]  # below rtn's 0.01 and 0.005
    (c,) = _compare(rows).pruned_vs_quantized
    assert c.finding.holds is False
    assert c.finding.beaten_by == {"m-wanda-s50": None, "m-wanda-2of4": "m-rtn-8b-g64"}
    line = finding_line(c)
    assert line.startswith("paper 000's finding does not hold on m ")
    assert "m-wanda-s50 (200 bits, KL 0.3, accuracy drop 0.004) by none (best no larger: m-rtn-8b-g64 " \
           "(150 bits, KL 0.001, accuracy drop 0.005))" in line
    # and a pruned variant smaller than every quantized one cannot be beaten at all
    rows = [r if r[0] != "wanda-2of4" else (*r[:4], 90.0, *r[5:]) for r in ROWS]
    (c,) = _compare(rows).pruned_vs_quantized
    assert c.finding.holds is False and c.finding.beaten_by["m-wanda-2of4"] is None
    assert "m-wanda-2of4 (90 bits, KL 0.9, accuracy drop 0.100) by none (no quantized variant is as small)" \
        in finding_line(c)


def test_a_variant_not_pruned_as_asked_does_not_decide_the_finding():
    """A "2:4" variant with a layer left dense (rows not in groups of 4) is not 2:4-pruned: its
    low KL must not refute paper 000's finding; it stays in the pairing rows."""
    from pytest_qrel.summary import summarize

    rows = [r if r[0] != "wanda-2of4" else (*r[:5], 0.0001, 0.0) for r in ROWS]  # beats every quantized one
    variants, records = _run(rows)
    for v in variants:
        if v["id"] == "m-wanda-2of4":
            v.update(coverage=0.8, skipped={"l.down": "its rows of 66 weights do not split into groups of 4"})
    (c,) = summarize(variants, records).pruned_vs_quantized
    assert c.finding.holds is True and c.finding.beaten_by == {"m-wanda-s50": "m-rtn-8b-g64"}
    assert "m-wanda-2of4" in [p.pruned.variant for p in c.pairs]
    for v in variants:  # the 50%-pruned one not pruned as asked either: nothing decides it
        if v["id"] == "m-wanda-s50":
            v.update(coverage=0.5, skipped={"l.up": "wanda left it dense"})
    (c,) = summarize(variants, records).pruned_vs_quantized
    assert c.finding.holds is None and "pruned as asked" in str(c.finding.reason)


def test_without_tasks_the_finding_is_decided_on_kl_alone_and_a_variant_missing_a_task_has_no_drop():
    from pytest_qrel.report.pruned import finding_line

    (c,) = _compare(tasks=()).pruned_vs_quantized
    assert c.finding.metrics == ("kl_to_base",) and c.finding.holds is True
    assert all(p.accuracy_drop is None for p in c.points)
    assert "a lower KL than each 50%/2:4-pruned one; accuracy not compared: the run had no tasks" in finding_line(c)

    from pytest_qrel.pruned_vs_quantized import accuracy_drops

    summary = _compare()
    rows = [r for r in summary.drift["tasks"] if not (r["variant"] == "m-rtn-4b-g64" and r["task"] == "t2")]
    drops = accuracy_drops(rows)
    assert "m-rtn-4b-g64" not in drops and drops["m-rtn-8b-g64"] == pytest.approx(0.005)


def test_the_report_writes_the_section_the_json_and_the_plot(tmp_path):
    import matplotlib.image

    from pytest_qrel import schema
    from pytest_qrel.report import write_run
    from pytest_qrel.schema_check import of_type

    summary = _compare()
    write_run(tmp_path / "tasks", summary, summary.variants)
    doc = json.loads((tmp_path / "tasks" / "results.json").read_text())
    assert of_type(doc["pruned_vs_quantized"], schema.ResultsDocument, "pruned_vs_quantized")  # as schema.py declares
    (entry,) = doc["pruned_vs_quantized"]
    assert entry["finding"] == {"holds": True, "metrics": ["kl_to_base", "accuracy_drop"], "reason": None,
                                "beaten_by": {"m-wanda-s50": "m-rtn-8b-g64", "m-wanda-2of4": "m-rtn-8b-g64"}}
    assert [p["variant"] for p in entry["points"]] == [f"m-{r[0]}" for r in ROWS]  # by total bits
    report = (tmp_path / "tasks" / "report.md").read_text()
    assert "## Pruned vs quantized at equal total bits: m" in report
    assert "| m-wanda-s50 | 0.5 | 200 | 0.3 | 0.050 | <= | m-rtn-8b-g64 | 150 | 0.001 | 0.005 | quantized | quantized |" \
        in report
    assert "- paper 000's finding holds on m" in report
    assert "![pruned_vs_quantized_m](pruned_vs_quantized_m.png)" in report
    two_panels = matplotlib.image.imread(tmp_path / "tasks" / "pruned_vs_quantized_m.png").shape
    # without tasks: one panel (KL only), so a narrower figure
    summary = _compare(tasks=())
    write_run(tmp_path / "kl", summary, summary.variants)
    one_panel = matplotlib.image.imread(tmp_path / "kl" / "pruned_vs_quantized_m.png").shape
    assert two_panels[1] > one_panel[1] * 1.5
    # a run without pruned variants, or without quantized ones, has no section, key or plot
    for rows in ([r for r in ROWS if r[3] is None], [r for r in ROWS if r[3] is not None]):
        summary = _compare(rows)
        assert summary.pruned_vs_quantized == []
        write_run(tmp_path / "none", summary, summary.variants)
        assert "pruned_vs_quantized" not in json.loads((tmp_path / "none" / "results.json").read_text())
        assert "Pruned vs quantized" not in (tmp_path / "none" / "report.md").read_text()
        assert not list((tmp_path / "none").glob("pruned_vs_quantized_*.png"))


def test_the_terminal_summary_shows_the_section(tmp_path):
    from pytest_qrel.report import write_tables

    lines: list[str] = []

    class Terminal:
        def write_sep(self, sep, title):
            lines.append(title)

        def write_line(self, line, **markup):
            lines.append(line)

    write_tables(Terminal(), _compare(), tmp_path)
    title = next(i for i, line in enumerate(lines) if line.startswith("model m, pruned vs quantized at equal total bits"))
    assert lines[title + 1].split()[:4] == ["pruned", "variant", "sparsity", "total"]
    assert lines[title + 2].split() == ["m-wanda-s50", "0.5", "200", "0.3", "0.050", "<=", "m-rtn-8b-g64", "150",
                                        "0.001", "0.005", "quantized", "quantized"]
    assert any(line.startswith("paper 000's finding holds on m") for line in lines[title:])
