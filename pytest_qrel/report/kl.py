"""The KL statistics table (issue 16): per model, each variant's mean token KL to the base
with its standard error and bound width, the per-token KL's median, p90, p99, p99.9 and max,
top-1 agreement with the base, Δp of the reference token and ln(PPL_quant / PPL_base), as
llama.cpp's ``--kl-divergence`` prints them; and the text they were measured on, with the share of
its tokens unknown to the model's tokenizer (above 5% the KL gates are not checked)."""

from __future__ import annotations

from ..results import Record
from .table import markdown_table, write_table

HEAD = ["variant", "tokens", "mean KL ± se", "bound width", "decided", "median", "p90", "p99", "p99.9", "max",
        "top-1 agree ± se", "Δp mean", "Δp rms", "ln PPL ratio"]


def _g(x, spec: str = ".4g") -> str:
    return "-" if not isinstance(x, (int, float)) else format(x, spec)


def kl_records(records: list[Record]) -> dict[str, list[Record]]:
    """The mean-KL records that carry the statistics, by model."""
    out: dict[str, list[Record]] = {}
    for r in records:
        if r.metric == "kl_to_base" and "kl_median" in r.detail:  # only the KL measure writes the statistics
            out.setdefault(r.model, []).append(r)
    return out


def table_lines(records: list[Record]) -> tuple[list[str], list[list[str]], list[str]]:
    """(header, rows, notes) of one model's KL statistics."""
    body, notes = [], []
    for r in records:
        d = r.detail
        body.append([r.variant, str(d.get("tokens", "-")), f"{_g(r.value)} ± {_g(d.get('kl_se'), '.2g')}",
                     _g(d.get("kl_bound_width"), ".2g"), str(d.get("kl_decided", "-")),
                     *(_g(d.get(k)) for k in ("kl_median", "kl_p90", "kl_p99", "kl_p999", "kl_max")),
                     f"{_g(d.get('top1_agreement'), '.4f')} ± {_g(d.get('top1_se'), '.1g')}",
                     _g(d.get("dp_mean"), "+.4f"), _g(d.get("dp_rms"), ".4f"), _g(d.get("ln_ppl_ratio"), "+.4g")])
    texts = dict.fromkeys(f"{r.detail.get('kl_text')}" + (f"; base top-{r.detail['kl_topk']} stored"
                          if r.detail.get("kl_topk") != "all" else "; the base's full distribution stored")
                          + (f"; {r.detail['kl_unknown_share']:.1%} of its tokens are the tokenizer's unknown token"
                             if isinstance(r.detail.get("kl_unknown_share"), (int, float)) else "")
                          for r in records)
    notes += [f"KL text: {t}" for t in texts]
    notes += [f"warning: {n}" for n in dict.fromkeys(r.detail["kl_text_note"] for r in records
                                                     if r.detail.get("kl_text_note"))]
    return HEAD, body, notes


def text_notes(records: list[Record]) -> list[str]:
    """The run's one-line warnings about the KL text (a model outside the zoo on the zoo's text)."""
    return list(dict.fromkeys(r.detail["kl_text_note"] for r in records if r.detail.get("kl_text_note")))


def write_kl_tables(terminalreporter, records: list[Record]) -> None:
    tr = terminalreporter
    for model, rs in kl_records(records).items():
        head, body, notes = table_lines(rs)
        write_table(tr, f"model {model}, KL to base per scored token (llama.cpp's --kl-divergence statistics; "
                        "decided: by the certified top-k bounds, or exact):", head, body)
        for note in notes:
            tr.write_line(note, **({"yellow": True} if note.startswith("warning") else {}))


def kl_markdown_lines(records: list[Record]) -> list[str]:
    lines = []
    for model, rs in kl_records(records).items():
        head, body, notes = table_lines(rs)
        lines += [f"## {model}: KL to base", "", *markdown_table(head, body)]
        lines += [f"- {n}" for n in notes] + [""]
    return lines
