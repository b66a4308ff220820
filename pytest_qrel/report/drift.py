"""The calibration and confidence report: per task a table in the style of paper 003
Table 1 (accuracy and calibration error per variant, deltas to the base) with Table 2's
confidence columns and, beside accuracy, the questions whose correctness flipped (Dutta et
al. 2024 §3: right to wrong, wrong to right, and their sum), the confidence shift per bin of
base confidence (Fig. 1), and per model the accuracy drop per bit-width on memorization vs
utilization tasks (paper 002). The numbers come from the gate records; here they are only
grouped and printed."""

from __future__ import annotations

import math
from typing import Sequence

from ..schema import DriftRow, DriftTable, KnowledgeRow


def _f(x, spec: str = ".3f") -> str:
    return "-" if x is None or (isinstance(x, float) and math.isnan(x)) else format(x, spec)


def _d(x) -> str:
    return "-" if x is None else f"{x:+.3f}"


def _flips(x: DriftRow) -> tuple[str, str, str]:
    """Right to wrong, wrong to right and the flip rate, as shares of the task's questions."""
    f = x.get("flips")  # a row journaled before flips were recorded has none (schema: NotRequired)
    if not f:
        return _f(None), _f(None), _f(None)
    return _f(f.get("right_to_wrong")), _f(f.get("wrong_to_right")), _f(f.get("flip_rate"))


def _result(x: DriftRow) -> str:
    failed = [m for m, v in x["gates"].items() if v["status"] == "fail"]
    return ("FAIL: " + ", ".join(failed)) if failed else "PASS"


def _by_task(table: list[DriftRow]) -> list[tuple[str, str | None, list[DriftRow]]]:
    return [(model, task, [x for x in table if x["model"] == model and x["task"] == task])
            for model, task in dict.fromkeys((x["model"], x["task"]) for x in table)]


def _title(model: str, rows: list[DriftRow]) -> str:
    return (f"model {model}, task {rows[0]['task']} ({rows[0]['questions']} questions"
            + (f", {rows[0]['stratum']}" if rows[0].get("stratum") else "") + "), rows by total model bits:")


def write_drift_tables(terminalreporter, summary: DriftTable) -> None:
    tr, table = terminalreporter, summary["tasks"]
    if not table:
        return
    tr.write_sep("-", "qrel calibration and confidence (paper 003 Tables 1-2, Fig. 1)")
    head = ("variant", "bits", "acc", "d acc", "r>w", "w>r", "flips", "ECE", "d ECE", "ACE", "d ACE", "Brier d",
            "Conf_true", "d Conf_true", "p", "H d", "JS", "result")
    for model, _, rows in _by_task(table):
        b = rows[0]["base"]
        tr.write_line("")
        tr.write_line(_title(model, rows))
        lines = [("base", "-", _f(b["accuracy"]), "-", "-", "-", "-", _f(b["ece"]), "-", _f(b["ace"]), "-", "-",
                  _f(b["conf_true"]), "-", "-", "-", "-", "")]
        for x in rows:
            q, d, g = x["quantized"], x["delta"], x["gates"]
            p = g["conf_true_drop"].get("pvalue") if g.get("conf_true_drop") else None
            lines.append((x["variant"], str(x["bits"]), _f(q["accuracy"]), _d(d["accuracy"]), *_flips(x), _f(q["ece"]),
                          _d(d["ece"]), _f(q["ace"]), _d(d["ace"]), _d(d["brier"]), _f(q["conf_true"]), _d(d["conf_true"]),
                          _f(p, ".2g"), _d(d["entropy"]), _f(x["js_distance_true_class"]), _result(x)))
        _table(tr, head, lines)
        tr.write_line("r>w, w>r: share of the questions the variant gets wrong that the base got right, and the reverse; "
                      "flips: their sum (Dutta et al. 2024)")
        tr.write_line("mean confidence shift (quantized - base) per bin of base confidence:")
        edges = rows[0]["shift_by_bin"]["bin_edges"]
        bins = tuple(f"{lo:.1f}-{hi:.1f}" for lo, hi in zip(edges[:-1], edges[1:]))
        _table(tr, ("variant", *bins), [(x["variant"], *(_d(s) for s in x["shift_by_bin"]["mean_shift"])) for x in rows]
               + [("questions (base)", *(str(c) for c in rows[0]["shift_by_bin"]["counts"]))])
    knowledge = summary["knowledge"]
    if any(k["accuracy_drop_memorization"] is not None and k["accuracy_drop_utilization"] is not None for k in knowledge):
        tr.write_line("")
        tr.write_line("accuracy drop from base per bit-width, memorization vs utilization (paper 002), mean over methods:")
        _table(tr, ("model", "bits", "memorization", "utilization", "utilization held out", "Conf_true drop",
                    "more bit-sensitive"),
               [(k["model"], str(k["bits"]), _d(k["accuracy_drop_memorization"]), _d(k["accuracy_drop_utilization"]),
                 _d(k["accuracy_drop_utilization_heldout"]), _d(k["conf_true_drop"]), _which(k)) for k in knowledge])
    for model in dict.fromkeys(k["model"] for k in knowledge):
        known = [(k["bits"], drop) for k in knowledge if k["model"] == model and (drop := k["conf_true_drop"]) is not None]
        if len(known) >= 2:
            (low_bits, low), (high_bits, high) = known[0], known[-1]  # sorted by bits
            verdict = "more" if low > high else "not more"
            tr.write_line(f"{model}: {low_bits}-bit variants lose {verdict} true-class confidence than {high_bits}-bit "
                          f"ones ({low:+.3f} vs {high:+.3f}, mean over tasks and methods)")


def drift_markdown_lines(summary: DriftTable) -> list[str]:
    """report.md's calibration and confidence section: per model and task, accuracy with the
    questions whose correctness flipped beside it (Dutta et al. 2024 §3), calibration and
    true-class confidence, and the gates' outcome."""
    table = summary["tasks"]
    if not table:
        return []
    lines = ["## Calibration and confidence", "",
             ("Per task (paper 003 Tables 1-2). right→wrong, wrong→right: shares of the questions whose answer the "
              "variant gets wrong where the base was right, and the reverse; flips: their sum (Dutta et al. 2024, "
              "arXiv 2407.09141, §3). The accuracy change is wrong→right minus right→wrong."), ""]
    for model, _, rows in _by_task(table):
        b = rows[0]["base"]
        lines += [f"### {_title(model, rows).removesuffix(':')}", "",
                  ("| variant | bits | acc | d acc | right→wrong | wrong→right | flips | ECE | d ECE | Conf_true | "
                   "d Conf_true | result |"), "|" + "---|" * 12,
                  f"| base | - | {_f(b['accuracy'])} | - | - | - | - | {_f(b['ece'])} | - | {_f(b['conf_true'])} | - | |"]
        for x in rows:
            q, d = x["quantized"], x["delta"]
            cells = (x["variant"], str(x["bits"]), _f(q["accuracy"]), _d(d["accuracy"]), *_flips(x), _f(q["ece"]),
                     _d(d["ece"]), _f(q["conf_true"]), _d(d["conf_true"]), _result(x))
            lines.append("| " + " | ".join(cells) + " |")
        lines.append("")
    return lines


def _which(k: KnowledgeRow) -> str:
    m, u = k["accuracy_drop_memorization"], k["accuracy_drop_utilization"]
    if m is None or u is None:
        return "-"
    return "memorization" if m > u else "utilization" if u > m else "equal"


def _table(tr, head: tuple[str, ...], rows: Sequence[tuple[str, ...]]) -> None:
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(head)]
    tr.write_line("  ".join(h.ljust(w) for h, w in zip(head, widths)).rstrip())
    for r in rows:
        tr.write_line("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip())
