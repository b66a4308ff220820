"""The end-of-run scaling tables: one per model, rows sorted by total model bits; every
variant that ran or was skipped has a row with PASS, FAIL, SKIP or ERROR and its reason."""

from __future__ import annotations

from pathlib import Path

COLUMNS = ("variant", "method", "bits", "eff bits", "stored bits", "total bits", "layers", "metric", "value",
           "threshold", "result")


def _fmt(value, spec: str) -> str:
    return "-" if value is None else format(value, spec) if isinstance(value, (int, float)) else str(value)


def _outcome(record: dict) -> str:
    status = record.get("status") or ("pass" if record["passed"] else "fail")
    reason = record.get("reason")
    return status.upper() + (f": {reason}" if reason and status != "pass" else "")


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
            _fmt(v.get("storage_bits"), ".3f"),
            _fmt(v["total_bits"], ".4g"),
            "-" if v.get("quantized_layers") is None else f"{v['quantized_layers']}/{v['linear_layers']}",
        )
        records = by_variant.get(v["id"], [])
        if records:
            for r in records:
                value = "nan" if r.get("value") == "nan" else _fmt(r.get("value"), ".4g")
                metric = (r.get("metric") or "-") + (f"@{r['task']}" if r.get("task") else "")
                rows.append(head + (metric, value, _fmt(r.get("threshold"), "g"), _outcome(r)))
        elif v.get("skip_reason"):
            rows.append(head + ("-", "-", "-", f"SKIP: {v['skip_reason']}"))
        else:
            rows.append(head + ("-", "-", "-", f"ERROR: {v['error']}" if v.get("error") else "NOT RUN"))
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
    counts = {s: sum((r.get("status") or ("pass" if r["passed"] else "fail")) == s for r in results)
              for s in ("pass", "fail", "error")}
    tr.write_line("")
    tr.write_line(
        f"qrel: {counts['pass']} passed, {counts['fail']} failed thresholds, {counts['error']} errors; "
        f"results in {report_dir / 'results.json'}"
    )
