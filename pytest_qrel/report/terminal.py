"""The end-of-run scaling tables: one per model, rows sorted by total model bits."""

from __future__ import annotations

from pathlib import Path

COLUMNS = ("variant", "method", "bits", "eff bits", "total bits", "layers", "metric", "value", "threshold", "result")


def _fmt(value, spec: str) -> str:
    return "-" if value is None else format(value, spec) if isinstance(value, (int, float)) else str(value)


def _rows(model: str, variants: list[dict], results: list[dict]) -> list[tuple[str, ...]]:
    by_variant: dict[str, list[dict]] = {}
    for r in results:
        by_variant.setdefault(r["variant"], []).append(r)
    rows = []
    ordered = sorted(
        (v for v in variants if v["model"] == model),
        key=lambda v: (v["total_bits"] is None, v["total_bits"] or 0, v["method"], v["bits"]),
    )
    for v in ordered:
        head = (
            v["id"],
            v["method"],
            str(v["bits"]),
            _fmt(v["effective_bits"], ".3f"),
            _fmt(v["total_bits"], ".4g"),
            "-" if v.get("quantized_layers") is None else f"{v['quantized_layers']}/{v['linear_layers']}",
        )
        if v.get("skip_reason") or v.get("error"):
            rows.append(head + ("-", "-", "-", ("SKIP: " if v.get("skip_reason") else "ERROR: ") + (v.get("skip_reason") or v["error"])))
            continue
        for r in by_variant.get(v["id"], []):
            rows.append(
                head + (r["metric"], _fmt(r["value"], ".4g"), _fmt(r["threshold"], "g"), "PASS" if r["passed"] else "FAIL")
            )
    return rows


def write_tables(terminalreporter, variants: list[dict], results: list[dict], report_dir: Path) -> None:
    tr = terminalreporter
    tr.write_sep("=", "qrel reliability report")
    models = list(dict.fromkeys(v["model"] for v in variants))
    for model in models:
        rows = _rows(model, variants, results)
        if not rows:
            continue
        params = next((v["params"] for v in variants if v["model"] == model and v["params"]), None)
        tr.write_line("")
        tr.write_line(f"model {model}" + (f" ({params:,} parameters)" if params else "") + ", rows by total model bits:")
        widths = [max(len(c), *(len(r[i]) for r in rows)) for i, c in enumerate(COLUMNS[:-1])]
        tr.write_line("  ".join(c.ljust(w) for c, w in zip(COLUMNS, widths)) + "  " + COLUMNS[-1])
        for r in rows:
            line = "  ".join(cell.ljust(w) for cell, w in zip(r, widths)) + "  " + r[-1]
            markup = {"red": True} if r[-1].startswith(("FAIL", "ERROR")) else {"green": True} if r[-1] == "PASS" else {"yellow": True}
            tr.write_line(line, **markup)
    passed = sum(r["passed"] for r in results)
    tr.write_line("")
    tr.write_line(f"qrel: {passed} passed, {len(results) - passed} failed thresholds; results in {report_dir / 'results.json'}")
