"""The robustness tables (paper 000 Fig. 3 as numbers): per model, accuracy and AUROC(-entropy)
of the base and each variant on unperturbed prompts and under each perturbation and
intensity, the share of perturbed words that became unknown tokens, each variant's
worst-case perturbation, the fuzzing test's shrunk examples, and accuracy by prompt stratum
(recall / utilization, paper 002) where the prompts name their strata."""

from __future__ import annotations

from ..summary import UNPERTURBED, RobustnessTable
from .table import markdown_table, write_table


def _f(x) -> str:
    return "-" if x is None else f"{x:.3f}"


def table_lines(model: str, summary: RobustnessTable) -> tuple[list[str], list[list[str]], list[str]]:
    """(header, rows, notes) of one model's table: a row per condition, accuracy / AUROC per column."""
    rows = summary.rows
    columns = ["base"] + sorted({c for cells in rows.values() for c in cells} - {"base"})
    head = ["perturbation", "unknown words"] + [f"{c} acc / auroc" for c in columns]
    body = []
    # a run of the fuzzing test alone, or of variants whose logits were NaN, has no unperturbed row
    order = [k for k in (UNPERTURBED,) if k in rows] + sorted((k for k in rows if k != UNPERTURBED),
                                   key=lambda k: (k.rsplit(" i", 1)[0], int(k.rsplit(" i", 1)[1])))
    for label in order:
        words, unk = summary.unknown.get(label, (0, 0))
        share = "-" if label == UNPERTURBED or not words else f"{unk / words:.0%} of {words}"
        cells = [f"{_f(rows[label].get(c, (None, None))[0])} / {_f(rows[label].get(c, (None, None))[1])}" for c in columns]
        body.append([label, share, *cells])
    notes = [f"word_insertion inserted words from {summary.inserted_by}"] if summary.inserted_by else []
    for column, by_intensity in sorted(summary.worst.items()):
        for intensity, w in sorted(by_intensity.items()):
            notes.append(f"worst case of {model}-{column} at intensity {intensity}: {w.perturbation} "
                         f"(accuracy {w.accuracy:.3f}; base {w.base_accuracy:.3f})")
    for r in summary.fuzz:
        shrunk = r.detail.get("shrunk_example") or []
        line = (f"fuzzing {r.variant}: greedy answers agree with the base's on {_f(r.value)} of "
                f"{'its first failing' if shrunk else 'its worst'} batch of {r.detail.get('fuzz_batch')} perturbed "
                f"prompts (at least {_f(r.threshold)} required) -> {r.status.upper()}")
        notes.append(line)
        for e in shrunk[:8]:
            how = f"{e['perturbation']} i{e['intensity']}" if e["intensity"] else "unperturbed"
            notes.append(f"  shrunk example ({how}): {e['perturbed']!r} -> "
                         f"base {e['base_answer']!r}, variant {e['answer']!r}")
    return head, body, notes


def strata_lines(summary: RobustnessTable) -> tuple[list[str], list[list[str]], list[str]]:
    """(header, rows, notes) of one model's accuracy by prompt stratum (paper 002's recall /
    utilization): unperturbed, and the mean over every perturbed condition, per column; the
    note names the stratum whose base loses the largest share of its accuracy."""
    strata = summary.strata
    if not strata:
        return [], [], []
    columns = ["base"] + sorted({c for s in strata.values() for c in s.accuracy} - {"base"})
    head = ["stratum", "prompts"] + [f"{c} acc: unperturbed -> perturbed (change)" for c in columns]
    body, lost = [], {}
    for stratum, s in sorted(strata.items()):
        cells = []
        for c in columns:
            cell = s.accuracy.get(c)
            if cell is None or not cell.perturbed:
                cells.append("-")
                continue
            clean, perturbed = cell.unperturbed, sum(cell.perturbed.values()) / len(cell.perturbed)
            cells.append(f"{clean:.3f} -> {perturbed:.3f} ({perturbed - clean:+.3f})")
            if c == "base" and clean > 0:
                lost[stratum] = (1 - perturbed / clean, clean, perturbed, len(cell.perturbed))
        body.append([stratum, str(s.prompts), *cells])
    notes = []
    if len(lost) > 1:
        ranked = sorted(lost.items(), key=lambda kv: -kv[1][0])
        parts = "; ".join(f"{k} {c:.3f} -> {p:.3f} ({share:.0%} lost)" if share >= 0 else
                          f"{k} {c:.3f} -> {p:.3f} ({-share:.0%} gained)" for k, (share, c, p, _) in ranked)
        notes.append(f"most fragile stratum under perturbation (base, mean over {ranked[0][1][3]} perturbed conditions): "
                     f"{ranked[0][0]}; {parts}")
    return head, body, notes


def write_robustness_tables(terminalreporter, summary: dict[str, RobustnessTable]) -> None:
    tr = terminalreporter
    for model, s in summary.items():
        head, body, notes = table_lines(model, s)
        if body:
            write_table(tr, f"model {model}, robustness (paper 000 Fig. 3): accuracy / AUROC(-entropy) of sampled "
                            "answers; unknown words: share of perturbed words the tokenizer maps to its unknown token",
                        head, body)
        head, body, strata_notes = strata_lines(s)
        if body:
            write_table(tr, f"model {model}, robustness by prompt stratum (paper 002 §3: recall of one fact, "
                            "utilization of two)", head, body)
        for note in notes + strata_notes:
            tr.write_line(note)


def markdown_lines(summary: dict[str, RobustnessTable]) -> list[str]:
    lines = []
    for model, s in summary.items():
        head, body, notes = table_lines(model, s)
        lines += [f"## {model}: robustness", ""]
        if body:
            lines += markdown_table(head, body)
        head, body, strata_notes = strata_lines(s)
        if body:
            lines += ["", "By prompt stratum (paper 002 §3):", ""] + markdown_table(head, body)
        lines += [f"- {n.strip()}" for n in notes + strata_notes] + [""]
    return lines
