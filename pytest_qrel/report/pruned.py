"""The pruned-vs-quantized section (paper 000 §4.2, Figs. 9-10 against Fig. 6): per model, each
pruned variant beside the quantized variants of at most and of more total bits, by KL to base
and accuracy drop, and one line saying whether 000's finding holds. Only presents
(pruned_vs_quantized.py computes)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..pruned_vs_quantized import ACCURACY_DROP, FINDING_SPARSITIES, KL_METRIC, ModelComparison, Point, winner
from .table import markdown_table, write_table

if TYPE_CHECKING:
    from _pytest.terminal import TerminalReporter

HEAD = ["pruned variant", "sparsity", "total bits", "KL", "acc drop", "vs", "quantized variant", "total bits", "KL",
        "acc drop", "better KL", "better acc"]


def _g(x: float | None, spec: str = ".4g") -> str:
    return "-" if x is None else format(x, spec)


def _numbers(p: Point, accuracy: bool) -> str:
    return (f"{p.variant} ({p.total_bits:.4g} bits, KL {p.kl_to_base:.4g}" if p.kl_to_base is not None
            else f"{p.variant} ({p.total_bits:.4g} bits, KL -") + (
        f", accuracy drop {_g(p.accuracy_drop, '.3f')})" if accuracy else ")")


def rows(c: ModelComparison) -> list[list[str]]:
    """Per pruned variant, one row against the best quantized variant no larger (``<=``) and one
    against the nearest larger (``>``), where there is one."""
    body = []
    for pair in c.pairs:
        p = pair.pruned
        for sign, q in (("<=", pair.smaller), (">", pair.larger)):
            if q is None:
                continue
            body.append([p.variant, p.sparsity or "-", f"{p.total_bits:.4g}", _g(p.kl_to_base), _g(p.accuracy_drop, ".3f"),
                         sign, q.variant, f"{q.total_bits:.4g}", _g(q.kl_to_base), _g(q.accuracy_drop, ".3f"),
                         winner(q, p, KL_METRIC) or "-", winner(q, p, ACCURACY_DROP) or "-"])
    return body


def finding_line(c: ModelComparison) -> str:
    """Whether paper 000's finding holds on the model, with the numbers it was decided on."""
    f = c.finding
    if f.holds is None:
        return f"paper 000's finding cannot be checked on {c.model}: {f.reason}"
    accuracy = ACCURACY_DROP in f.metrics
    on = "a lower KL and a smaller accuracy drop" if accuracy else "a lower KL"
    parts = []
    for pruned, by in f.beaten_by.items():
        p = c.point(pruned)
        if by is not None:
            parts.append(f"{_numbers(p, accuracy)} by {_numbers(c.point(by), accuracy)}")
            continue
        best = next(pair.smaller for pair in c.pairs if pair.pruned.variant == pruned)
        parts.append(f"{_numbers(p, accuracy)} by none (" + (f"best no larger: {_numbers(best, accuracy)}" if best
                                                              else "no quantized variant is as small") + ")")
    verdict = "holds" if f.holds else "does not hold"
    sparsities = "/".join("50%" if s == "0.5" else s for s in FINDING_SPARSITIES)
    return (f"paper 000's finding {verdict} on {c.model} (a quantized variant no larger has {on} than each "
            f"{sparsities}-pruned one" + ("" if accuracy else "; accuracy not compared: the run had no tasks")
            + "): " + "; ".join(parts))


def write_pruned_tables(terminalreporter: TerminalReporter, comparisons: list[ModelComparison]) -> None:
    tr = terminalreporter
    for c in comparisons:
        base = "" if c.base_total_bits is None else f"; base {c.base_total_bits:.4g} bits"
        write_table(tr, f"model {c.model}, pruned vs quantized at equal total bits (paper 000 Figs. 9-10 against "
                        f"Fig. 6; acc drop: mean over the run's tasks{base}):", HEAD, rows(c))
        tr.write_line(finding_line(c), **({} if c.finding.holds is None else
                                          {"green": True} if c.finding.holds else {"yellow": True}))


def pruned_markdown_lines(comparisons: list[ModelComparison]) -> list[str]:
    lines = []
    for c in comparisons:
        base = "" if c.base_total_bits is None else f" The base has {c.base_total_bits:.4g} total bits."
        lines += [f"## Pruned vs quantized at equal total bits: {c.model}", "",
                  "Paper 000 §4.2 (Figs. 9-10 against Fig. 6): each pruned variant beside the best quantized variant "
                  "with at most its total bits (`<=`) and the nearest larger one (`>`); acc drop is the mean over the "
                  f"run's tasks of base accuracy minus the variant's.{base}", "",
                  *markdown_table(HEAD, rows(c)), f"- {finding_line(c)}", ""]
    return lines
