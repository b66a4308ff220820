"""The robustness tables (paper 000 Fig. 3 as numbers): per model, accuracy and AUROC(-entropy)
of the base and each variant on unperturbed prompts and under each perturbation and
intensity, the share of perturbed words that became unknown tokens, each variant's
worst-case perturbation, and the fuzzing test's shrunk examples."""

from __future__ import annotations

from ..summary import UNPERTURBED
from .table import markdown_table, write_table


def _f(x) -> str:
    return "-" if x is None else f"{x:.3f}"


def table_lines(model: str, summary: dict) -> tuple[list[str], list[list[str]], list[str]]:
    """(header, rows, notes) of one model's table: a row per condition, accuracy / AUROC per column."""
    rows = summary["rows"]
    columns = ["base"] + sorted({c for cells in rows.values() for c in cells} - {"base"})
    head = ["perturbation", "unknown words"] + [f"{c} acc / auroc" for c in columns]
    body = []
    # a run of the fuzzing test alone, or of variants whose logits were NaN, has no unperturbed row
    order = [k for k in (UNPERTURBED,) if k in rows] + sorted((k for k in rows if k != UNPERTURBED),
                                   key=lambda k: (k.rsplit(" i", 1)[0], int(k.rsplit(" i", 1)[1])))
    for label in order:
        words, unk = summary["unknown"].get(label, (0, 0))
        share = "-" if label == UNPERTURBED or not words else f"{unk / words:.0%} of {words}"
        cells = [f"{_f(rows[label].get(c, (None, None))[0])} / {_f(rows[label].get(c, (None, None))[1])}" for c in columns]
        body.append([label, share, *cells])
    notes = [f"word_insertion inserted words from {summary['inserted_by']}"] if summary.get("inserted_by") else []
    for column, by_intensity in sorted(summary["worst"].items()):
        for intensity, (name, acc, base_acc) in sorted(by_intensity.items()):
            notes.append(f"worst case of {model}-{column} at intensity {intensity}: {name} "
                         f"(accuracy {acc:.3f}; base {base_acc:.3f})")
    for r in summary["fuzz"]:
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


def write_robustness_tables(terminalreporter, summary: dict[str, dict]) -> None:
    tr = terminalreporter
    for model, s in summary.items():
        head, body, notes = table_lines(model, s)
        if body:
            write_table(tr, f"model {model}, robustness (paper 000 Fig. 3): accuracy / AUROC(-entropy) of sampled "
                            "answers; unknown words: share of perturbed words the tokenizer maps to its unknown token",
                        head, body)
        for note in notes:
            tr.write_line(note)


def markdown_lines(summary: dict[str, dict]) -> list[str]:
    lines = []
    for model, s in summary.items():
        head, body, notes = table_lines(model, s)
        lines += [f"## {model}: robustness", ""]
        if body:
            lines += markdown_table(head, body)
        lines += [f"- {n.strip()}" for n in notes] + [""]
    return lines
