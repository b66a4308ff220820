"""PNG scaling plots: each metric against total model bits (log axis), one colour per
bit-width (and per sparsity of pruned variants), with the law fitted per family (paper 000
Fig. 3 style); pruned against quantized variants per model (paper 000 Figs. 9-10). Only presents."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from ..properties import CATALOG
from ..pruned_vs_quantized import ACCURACY_DROP, KL_METRIC
from ..summary import measured
from ..variants import law_family

if TYPE_CHECKING:
    from ..pruned_vs_quantized import ModelComparison
    from ..results import Record
    from ..schema import DriftTable, FitEntry, VariantEntry


def _save(fig, legend_ax, path: Path, legend_x: float = 1.02) -> Path:
    """Legend outside the axes on the right, saved with tight bounds so nothing is cut."""
    import matplotlib.pyplot as plt

    legend_ax.legend(fontsize=7, loc="center left", bbox_to_anchor=(legend_x, 0.5), frameon=False)
    fig.tight_layout()
    fig.savefig(path, bbox_inches="tight")
    plt.close(fig)
    return path


def plot_metric_vs_bits(report_dir: Path, metric: str, variants: list[VariantEntry], records: list[Record],
                        fits: list[FitEntry], fitted: tuple[str, ...] = CATALOG.fitted()) -> Path | None:
    """Write ``<metric>_vs_total_bits.png``; None when the run measured no value of it. Its
    points are the records of the ``fitted`` properties (those the laws are fitted on), not
    the fitted-law bounds that carry the same metric."""
    import matplotlib

    matplotlib.use("Agg")  # no display: write files only
    import matplotlib.pyplot as plt

    by_id = {v["id"]: v for v in variants}
    points: dict[str, list[tuple[float, float, str]]] = {}
    for r in records:
        v = by_id.get(r.variant)
        if (r.metric == metric and r.property in fitted and v and v.get("total_bits")
                and isinstance(r.value, float) and r.value == r.value):
            points.setdefault(law_family(v), []).append((measured(v, "total_bits"), r.value, v["method"]))
    if not points:
        return None
    fig, ax = plt.subplots(figsize=(7.5, 4.8), dpi=120)
    colors = plt.get_cmap("viridis")
    # bit-widths ascending, then the pruned variants' sparsities
    bits_list = sorted(points, key=lambda f: (f.startswith("sparsity"), 0 if f.startswith("sparsity") else int(f[:-4]), f))
    markers = {m: "osD^vP*X"[i % 8] for i, m in enumerate(sorted({p[2] for ps in points.values() for p in ps}))}
    for i, bits in enumerate(bits_list):
        color = colors(i / max(1, len(bits_list) - 1) * 0.9)
        for method, marker in markers.items():
            xs = [b for b, _, m in points[bits] if m == method]
            ys = [y for _, y, m in points[bits] if m == method]
            if xs:
                ax.scatter(xs, ys, color=color, marker=marker, s=36, zorder=3,
                           label=f"{bits} {method}")
        fit = next((f for f in fits if f.get("metric") == metric and f.get("family") == bits
                    and f.get("law") == "log_quadratic" and f.get("fitted")), None)
        if fit and fit.get("curve"):
            label = f"{bits} law" + (f" (adj. R² {fit['adj_r2']:.2f})" if fit.get("adj_r2") is not None else "")
            curve = [c for c in fit["curve"] if c[1] > 0]  # a log axis shows no value at or below 0
            ax.plot([c[0] for c in curve], [c[1] for c in curve], color=color, lw=1.5, label=label)
    ax.set_xscale("log")
    values = [y for ps in points.values() for _, y, _ in ps]
    if min(values) > 0 and max(values) / min(values) > 100:  # e.g. KL: orders of magnitude apart by bits
        ax.set_yscale("log")
        ax.set_ylim(min(values) / 2, max(values) * 2)
    ax.set_xlabel("total model bits (log scale)")
    ax.set_ylabel(metric.replace("_", " "))
    ax.set_title(f"{metric.replace('_', ' ')} against total model bits")
    ax.grid(True, which="both", alpha=0.3)
    return _save(fig, ax, report_dir / f"{metric}_vs_total_bits.png")


def plot_confidence_shift(report_dir: Path, drift: DriftTable | None) -> list[Path]:
    """Write ``confidence_shift_<model>.png``: per task, the mean change of true-class
    confidence from the base per bin of base confidence, one bar per variant (paper 003
    Fig. 1). None written when the run had no calibration or confidence tests."""
    rows = (drift.get("tasks") if drift else None) or []
    rows = [r for r in rows if (shift := r.get("shift_by_bin")) and shift.get("mean_shift")]
    if not rows:
        return []
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    paths = []
    for model in dict.fromkeys(r["model"] for r in rows):
        tasks = list(dict.fromkeys(r["task"] for r in rows if r["model"] == model))
        fig, axes = plt.subplots(1, len(tasks), figsize=(4.2 * len(tasks) + 1.8, 3.8), dpi=120, squeeze=False)
        for ax, task in zip(axes[0], tasks):
            group = [r for r in rows if r["model"] == model and r["task"] == task]
            edges = group[0]["shift_by_bin"]["bin_edges"]
            labels = [f"{lo:.1f}-{hi:.1f}" for lo, hi in zip(edges[:-1], edges[1:])]
            width = 0.8 / len(group)
            colors = plt.get_cmap("viridis")
            for i, r in enumerate(group):
                shifts = [s if s is not None and s == s else 0.0 for s in r["shift_by_bin"]["mean_shift"]]
                ax.bar([k + (i - (len(group) - 1) / 2) * width for k in range(len(shifts))], shifts, width,
                       color=colors(i / max(1, len(group) - 1) * 0.9), label=r["variant"].removeprefix(f"{model}-"))
            ax.axhline(0, color="black", lw=0.8)
            ax.set_xticks(range(len(labels)), labels, rotation=45, ha="right", fontsize=7)
            ax.set_title(task, fontsize=9)
            ax.set_xlabel("base confidence in the true answer", fontsize=8)
            ax.grid(True, axis="y", alpha=0.3)
        axes[0][0].set_ylabel("change of true-class confidence", fontsize=8)
        fig.suptitle(f"{model}: confidence shift per bin of base confidence (paper 003 Fig. 1)", fontsize=10)
        paths.append(_save(fig, axes[0][-1], report_dir / f"confidence_shift_{model}.png"))
    return paths


def plot_robustness_radar(report_dir: Path, records: list[Record], metric: str = "accuracy") -> list[Path]:
    """Write ``robustness_<model>_i<intensity>.png``: ``metric`` (accuracy, or auroc_entropy)
    under each perturbation as a radar chart, the base and each variant one polygon (paper 000
    Fig. 3). Reads the base's and the variant's values from the ``comparison`` of robustness
    records carrying ``perturbation`` and ``intensity``; none written when the run has none."""
    rows = []
    for r in records:
        d = r.detail
        comp = d.get("comparison") if d.get("perturbation") else None  # a perturbed condition's record
        value = comp.get("quantized", {}).get(metric) if isinstance(comp, dict) else None
        if isinstance(value, float) and isinstance(comp, dict):
            rows.append({"model": r.model, "variant": r.variant, "perturbation": d["perturbation"],
                         "intensity": d.get("intensity"), "value": value, "base_value": comp.get("base", {}).get(metric)})
    if not rows:
        return []
    import math

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    paths = []
    for model, intensity in dict.fromkeys((r["model"], r.get("intensity")) for r in rows):
        group = [r for r in rows if r["model"] == model and r.get("intensity") == intensity]
        names = sorted({r["perturbation"] for r in group})
        if len(names) < 3:  # a radar needs three axes
            continue
        angles = [2 * math.pi * i / len(names) for i in range(len(names))] + [0.0]
        fig, ax = plt.subplots(figsize=(7, 6), dpi=120, subplot_kw={"projection": "polar"})
        series: dict[str, dict[str, float]] = {}
        for row in group:
            series.setdefault(row["variant"], {})[row["perturbation"]] = row["value"]
            if isinstance(row.get("base_value"), float):
                series.setdefault("base", {})[row["perturbation"]] = row["base_value"]
        colors = plt.get_cmap("viridis")
        for i, (label, values) in enumerate(sorted(series.items(), key=lambda kv: kv[0] != "base")):
            ys = [values.get(n, math.nan) for n in names]
            color = "black" if label == "base" else colors(i / max(1, len(series) - 1) * 0.9)
            ax.plot(angles, ys + ys[:1], color=color, lw=1.5 if label == "base" else 1.0,
                    label=label.removeprefix(f"{model}-"))
        ax.set_xticks(angles[:-1], [n.replace("_", " ") for n in names], fontsize=7)
        ax.set_title(f"{model}: {metric} under perturbation (intensity {intensity})", fontsize=10)
        paths.append(_save(fig, ax, report_dir / f"robustness_{model}_i{intensity}.png", legend_x=1.1))
    return paths


def plot_pruned_vs_quantized(report_dir: Path, comparisons: list[ModelComparison]) -> list[Path]:
    """Write ``pruned_vs_quantized_<model>.png`` per compared model (paper 000 Figs. 9-10 against
    Fig. 6): KL to base (log) against total model bits (log), each quantization method a line
    through its bit-widths, each pruning method its own marker annotated with the sparsity, the
    base's total bits a vertical line; a second panel with the accuracy drop when the run had tasks."""
    if not comparisons:
        return []
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    paths = []
    for c in comparisons:
        panels = [m for m in (KL_METRIC, ACCURACY_DROP) if any(p.value(m) is not None for p in c.points)]
        fig, axes = plt.subplots(1, len(panels), figsize=(6.2 * len(panels) + 1.8, 4.6), dpi=120, squeeze=False)
        quantized = sorted({p.method for p in c.points if p.sparsity is None})
        pruned = sorted({p.method for p in c.points if p.sparsity is not None})
        colors = plt.get_cmap("tab10")
        for ax, metric in zip(axes[0], panels):
            log_y = metric == KL_METRIC  # an accuracy drop may be 0 or negative
            shown = [p for p in c.points if (v := p.value(metric)) is not None and (v > 0 or not log_y)]
            for i, method in enumerate(quantized):
                pts = [p for p in shown if p.sparsity is None and p.method == method]
                if pts:
                    ax.plot([p.total_bits for p in pts], [p.value(metric) for p in pts], "-o", color=colors(i % 10),
                            ms=5, label=f"{method} (quantized)")
                    for p in pts:
                        ax.annotate(f"{p.bits}b", (p.total_bits, p.value(metric)), fontsize=7,
                                    textcoords="offset points", xytext=(4, -9))
            for j, method in enumerate(pruned):
                pts = [p for p in shown if p.sparsity is not None and p.method == method]
                if pts:
                    ax.scatter([p.total_bits for p in pts], [p.value(metric) for p in pts], marker="^sDvP"[j % 5], s=44,
                               color=colors((len(quantized) + j) % 10), zorder=3, label=f"{method} (pruned)")
                    for p in pts:
                        ax.annotate(p.sparsity or "", (p.total_bits, p.value(metric)), fontsize=7,
                                    textcoords="offset points", xytext=(5 if j % 2 == 0 else -22, 4))  # methods apart
            if c.base_total_bits is not None:
                ax.axvline(c.base_total_bits, color="black", ls="--", lw=1, label="base (full precision)")
            ax.set_xscale("log")
            if log_y:
                ax.set_yscale("log")
            ax.set_xlabel("total model bits (log scale)")
            ax.set_ylabel("KL to base (nats, log scale)" if log_y else "accuracy drop (mean over tasks)")
            ax.grid(True, which="both", alpha=0.3)
        fig.suptitle(f"{c.model}: pruned vs quantized at equal total bits (paper 000 Figs. 9-10 against Fig. 6)",
                     fontsize=10)
        paths.append(_save(fig, axes[0][-1], report_dir / f"pruned_vs_quantized_{c.model}.png"))
    return paths
