"""KL to base: mean token KL(P_base ‖ P_quant) on a text (paper 000 §4.3, eq. 7), at real scale.

The base's outputs on the text are computed once per (base weights, tokens of the text,
top-k) and written to the cache as one shard per batch (``metrics/topk.py``: per scored token
its top-k log-probs and ids, the tail's mass and sum p log p, the reference token's
log-prob; or every log-prob with ``--qrel-kl-topk=all``). A variant reads them back batch
by batch beside its own full distribution, so a KL test holds the two models and one batch,
whatever the number of tokens. From the top-k the KL is bounded per token (certified lower
and upper bounds); the gate passes when the upper bound of the mean is within the threshold,
fails when the lower bound is past it, and otherwise (or when the bounds are wide, or a baseline
needs the value exactly: ``Measure.needs_exact``) recomputes the exact KL with the base model
live before deciding, never a guess.

Besides the mean (mean over sequences of each sequence's mean token KL; on windows of a
text, where each scores the same number of tokens, the token mean) it reports the
statistics users of llama.cpp's ``--kl-divergence`` read: the mean's standard error (over
sequences) and bound width, the per-token KL's median, p90, p99, p99.9 and max, top-1
agreement with its binomial standard error, Δp of the reference token (mean, RMS) and
ln(PPL_quant / PPL_base). ``--qrel-kl-p99-threshold`` and ``--qrel-top1-threshold`` gate the
tail and the agreement too.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, cast

import numpy as np

from .. import options, progress
from ..data import heldout_texts
from ..data.text import shipped_prose
from ..engine import encode, unknown_share
from ..errors import UnusableEntry, VariantError
from ..metrics import TopK, exact_stats, sequence_mean, topk_bounds
from ..model_state import ModelState
from ..models import ZOO_MODELS
from ..rows import InStep as _InStep
from ..rows import scored_rows, sequences_per_batch, windows
from .base import Gate, Measure, Measurement, unreadable
from .kl_base import KL_FORMAT, BaseOutputs, KLBatches, StoredBaseOutputs, scored_tokens, tokens_digest

if TYPE_CHECKING:
    import torch

    from ..engine import TokenBatch
    from ..schema import KLStatistics
    from ..settings import KLSettings
    from ..variants import Variant

# the widest mean KL bounds reported, in nats and relative to the upper one (a record's value, which
# baselines, laws and rankings compare, is within 0.5% of the KL): wider are recomputed exactly
KL_MAX_WIDTH, KL_MAX_REL_WIDTH = 1e-3, 0.01
MIN_P99_TOKENS = 100  # scored tokens the kl_p99 gate needs (fewer: not checked)
ZOO_TEXT = "the zoo's held-out sentences"


@dataclass
class TokenValues:
    """Per scored token of one variant: KL bounds (equal when exact), top-1 agreement, the
    reference token's log-prob under base and variant; per batch the per-sequence means."""

    lower: np.ndarray
    upper: np.ndarray
    top1: np.ndarray
    base_ref: np.ndarray
    quant_ref: np.ndarray
    seq_lower: np.ndarray
    seq_upper: np.ndarray
    exact: bool
    nonfinite: int
    base_passes: int

    ARRAYS = ("lower", "upper", "top1", "base_ref", "quant_ref", "seq_lower", "seq_upper")

    def arrays(self) -> dict[str, np.ndarray]:
        return {**{k: getattr(self, k) for k in self.ARRAYS}, "exact": np.bool_(self.exact),
                "nonfinite": np.int64(self.nonfinite)}

    @classmethod
    def from_arrays(cls, a: dict[str, np.ndarray]) -> TokenValues:
        """Values read back: no base forward pass was run for them."""
        return cls(a["lower"], a["upper"], a["top1"], a["base_ref"], a["quant_ref"], a["seq_lower"], a["seq_upper"],
                   bool(a["exact"]), int(a["nonfinite"]), 0)


@dataclass
class KLState(ModelState):
    """What the KL measure keeps per base model (dropped with the base when the store moves on)."""

    text: KLBatches | None = None  # the model's KL batches: made by text() at its first KL test
    # the gates of the last variant decided, by id: its mean, p99 and top-1 tests decide once
    gates: tuple[str, list[Gate]] | None = None


class KLMeasure(Measure):
    key = "kl"
    settings: KLSettings  # its entry of config.property_settings
    # what kl.py and kl_base.py compute (and metrics/topk.py's bounds under them): in the key of
    # the stored base outputs and exact KL values; bump it when they change (base.Measure.version)
    version = 1

    def __init__(self, config, store) -> None:  # config, store: as Measure.__init__
        super().__init__(config, store)
        self.stored = StoredBaseOutputs(config, store, self.text, self.version)

    def threshold(self, variant: Variant) -> float:
        return self.settings.threshold[variant.bits]

    # -- the text -----------------------------------------------------------------------------------

    def text(self, variant: Variant) -> KLBatches:
        """The KL batches of ``variant``'s model, once per model: windows of --qrel-kl-text, the
        zoo's held-out sentences for a zoo model, or windows of the shipped prose for a model
        outside the zoo (with a note saying so); with the share of their tokens unknown to its tokenizer."""
        self.store.hold(variant)
        state = self.store.state(variant, KLState)
        if state.text is None:
            base = self.store.base(variant)
            kl = self.settings
            vocab = int(base.model.get_output_embeddings().weight.shape[0])
            if kl.text is None and variant.model in ZOO_MODELS:
                texts = heldout_texts()
                longest = min(256, max(len(base.tokenizer(t)["input_ids"]) for t in texts))
                batches = encode(base.tokenizer, texts, batch_size=sequences_per_batch(longest, vocab))  # 32 on the zoo
                source, note = ZOO_TEXT, None
            else:
                text = kl.text or shipped_prose()
                note = None if kl.text else (
                    f"{variant.model}: KL measured on {text.source}, not on text of its own domain; give "
                    f"{options.KL_TEXT} (a file or an lm-eval task such as wikitext)")
                limit = getattr(base.model.config, "max_position_embeddings", None) or kl.context
                if kl.context_given and kl.context > limit:
                    raise VariantError(f"{options.KL_CONTEXT}={kl.context} is more than {variant.model}'s "
                                       f"{limit} positions")
                context = min(kl.context, limit)
                try:
                    batches = windows(base.tokenizer, text.read, context, kl.tokens, vocab)
                except ValueError as exc:
                    raise VariantError(f"{options.KL_TEXT}: {exc}") from None
                source = f"{text.source}, windows of {context} tokens"
            share = unknown_share(base.tokenizer, (b.input_ids[b.attention_mask.bool()].tolist() for b in batches))
            state.text = KLBatches(batches, source, note, share)
        return state.text

    def base_outputs(self, variant: Variant) -> BaseOutputs:
        return self.stored.get(variant)

    # -- one variant ----------------------------------------------------------------------------------

    def token_values(self, variant: Variant, exact: bool = False) -> TokenValues:
        """Per-token KL bounds and statistics of ``variant`` from the stored base outputs; with
        ``exact``, the exact KL with the base model run live beside the variant. A stored shard
        that changed in the cache since it was checked (deleted, overwritten) is never used: the
        base's outputs are computed again, held in memory, and the variant measured on them."""
        try:
            return self._token_values(variant, exact)
        except UnusableEntry as exc:
            self.stored.held(variant, exc)
            return self._token_values(variant, exact)

    def _token_values(self, variant: Variant, exact: bool) -> TokenValues:
        text = self.text(variant)
        stored: BaseOutputs | None = self.base_outputs(variant)
        # exact: from the base's stored full log-probs (issue 38: K + 1 passes at any vocabulary), or
        # with the base run live beside the variant where they could not be stored
        full = exact and stored is not None and stored.full
        if exact and not full:
            stored = None
        model = self.store.quantized(variant)
        # measured from the stored outputs, the variant needs nothing of the base's weights: a
        # real checkpoint's are released meanwhile (one model's memory, issue 38 item 3)
        live = exact and not full
        base = self.store.base(variant) if live else None
        if not live:
            self.store.release_base_weights(variant)
        out: dict[str, list] = {k: [] for k in ("lower", "upper", "top1", "base_ref", "quant_ref", "seq_lower", "seq_upper")}
        nonfinite = passes = 0
        with progress.step("KL exact" if exact else "KL", scored_tokens(text), "tok", model) as bar:
            for i, batch in enumerate(text.batches):
                mask = batch.score_mask.numpy().astype(bool)
                low, up = np.zeros(mask.shape), np.zeros(mask.shape)
                rows = np.argwhere(mask)  # (n, 2) row-major: the order blocks come in
                cursor = 0
                shard = stored.shard(i) if stored is not None and not full else None
                full_logp = stored.full_shard(i) if full and stored is not None else None
                in_step = _InStep(scored_rows(base.model, [batch])) if base is not None else None
                passes += in_step is not None
                for block in _rows(model, batch):
                    n = len(block.ref)
                    part = slice(cursor, cursor + n)
                    b = in_step.take(n) if in_step is not None else None  # the base's rows of this block, in step
                    if not bool(block.finite.all()):
                        nonfinite += int((~block.finite).sum())
                        cursor += n
                        continue
                    base_logp = b.logp if b is not None else full_logp[part] if full_logp is not None else None
                    if base_logp is not None:
                        stats, base_ref = exact_stats(base_logp, block.logp, block.ref), base_logp.gather(-1, block.ref[:, None]).squeeze(-1)
                    elif stored is None or shard is None:  # never: without a live base, the stored outputs
                        raise RuntimeError("Expected the base's stored outputs")
                    elif stored.topk is None:
                        stats, base_ref = exact_stats(shard["logp"][part], block.logp, block.ref), shard["ref_logp"][part]
                    else:
                        top = TopK(*(shard[k][part] for k in ("logp", "ids", "tail_logmass", "tail_plogp", "ref_logp")))
                        stats, base_ref = topk_bounds(top, block.logp, block.ref), top.ref_logp
                    where = rows[part]
                    low[where[:, 0], where[:, 1]] = stats.lower.numpy()
                    up[where[:, 0], where[:, 1]] = stats.upper.numpy()
                    out["lower"].append(stats.lower.numpy())
                    out["upper"].append(stats.upper.numpy())
                    out["top1"].append(stats.top1_same.numpy())
                    out["base_ref"].append(base_ref.double().numpy())
                    out["quant_ref"].append(stats.quant_ref_logp.numpy())
                    cursor += n
                    bar.update(n)
                if cursor != len(rows):
                    raise RuntimeError(f"Expected {len(rows)} scored tokens in KL batch {i}, but the variant gave {cursor}")
                if not nonfinite:
                    out["seq_lower"].append(sequence_mean(low, mask))
                    out["seq_upper"].append(sequence_mean(up, mask))
        arrays = {k: np.concatenate(v) if v else np.zeros(0) for k, v in out.items()}
        if stored is None or full:  # exact: the base ran live beside the variant, or its full log-probs were read
            return TokenValues(**arrays, exact=True, nonfinite=nonfinite, base_passes=passes)
        return TokenValues(**arrays, exact=stored.topk is None, nonfinite=nonfinite, base_passes=stored.forward_passes)

    def exact_values(self, variant: Variant) -> TokenValues:
        """``token_values(exact=True)``, once per (variant, text) across workers and reruns
        (outputs.py: the base run live beside the variant is a base evaluation too)."""
        text = self.text(variant)
        outputs = self.outputs()
        unit = tokens_digest(text)
        return outputs.get("kl_exact", outputs.model_key(variant, base=False), [unit],
                           lambda _: {"base": outputs.model_key(variant, base=True), "kl_format": KL_FORMAT},
                           lambda units: {unit: self.token_values(variant, exact=True)},
                           TokenValues.arrays, TokenValues.from_arrays)[unit]  # type: ignore[index]

    def outcome(self, variant: Variant) -> list[Gate]:
        """The variant's gates, decided by the bounds, or by the exact KL where the bounds
        straddle a threshold."""
        self.store.hold(variant)
        state = self.store.state(variant, KLState)
        if state.gates is not None and state.gates[0] == variant.id:
            return state.gates[1]
        values = self.token_values(variant)
        kl = self.settings
        p99 = kl.p99_threshold[variant.bits] if kl.p99_threshold else None
        tokens = int(values.lower.size)
        text = self.text(variant)
        if values.nonfinite:
            total = values.nonfinite + tokens
            problem = f"NaN or inf logits at {values.nonfinite} of {total} tokens"
            detail = {"nonfinite_tokens": values.nonfinite, "tokens": total, "kl_text": text.source}
            # the mean, and the tail and top-1 gates the user asked for, fail with the same reason
            asked = [(self.metric, 0.0, self.threshold(variant)), ("kl_p99", 0.0, p99),
                     ("top1_agreement", 1.0, kl.top1_threshold)]
            gates = [Gate(metric, Measurement(float("nan"), base, problem, detail), threshold)
                     for metric, base, threshold in asked if threshold is not None]
        else:
            lower, upper = _mean(values.seq_lower), _mean(values.seq_upper)
            undecided = (lower <= self.threshold(variant) < upper or upper - lower > min(KL_MAX_WIDTH, KL_MAX_REL_WIDTH * upper)
                         or self.needs_exact(variant, "kl_to_base", lower, upper))
            if p99 is not None:
                lo99, hi99 = _pct(values.lower, 99), _pct(values.upper, 99)
                undecided |= lo99 <= p99 < hi99 or self.needs_exact(variant, "kl_p99", lo99, hi99)
            bound = {"kl_lower": lower, "kl_upper": upper}
            if undecided and not values.exact:
                stored_passes = values.base_passes
                values = self.exact_values(variant)
                values.base_passes += stored_passes
            # how many base forward passes this variant's KL took: 0 when the stored outputs
            # were read back (run-dependent, like the cache's hit or miss)
            self.store.record_kl_base_passes(variant, values.base_passes)
            gates = self._gates(variant, values, bound, p99, text)
            why = unreadable(text.unknown_share, f"the KL text ({text.source})")
            if why:  # measured and shown, never gated: a KL over unknown tokens says nothing about the model
                gates = [replace(g, measurement=replace(g.measurement, unchecked=why)) for g in gates]
        state.gates = (variant.id, gates)  # one variant at a time
        return gates

    def _gates(self, variant: Variant, v: TokenValues, bound: dict, p99: float | None, text: KLBatches) -> list[Gate]:
        mid = (v.lower + v.upper) / 2
        seq_mid = (v.seq_lower + v.seq_upper) / 2
        n, seqs = mid.size, seq_mid.size
        agree = float(v.top1.mean())
        dp = np.exp(v.quant_ref) - np.exp(v.base_ref)
        # cast: kl_text_note (a model outside the zoo) spread in its place, after kl_text
        detail = cast("KLStatistics", {
            "tokens": n,
            "sequences": seqs,
            "kl_text": text.source,
            **({"kl_text_note": text.note} if text.note else {}),
            "kl_unknown_share": text.unknown_share,
            "kl_topk": "all" if self.settings.topk is None else self.settings.topk,
            "kl_decided": "exact" if v.exact else "bounds",
            "kl_lower": _mean(v.seq_lower),
            "kl_upper": _mean(v.seq_upper),
            "kl_bound_width": _mean(v.seq_upper) - _mean(v.seq_lower),
            # the bounds from the stored top-k (before an exact recompute, if there was one)
            "kl_stored_lower": bound["kl_lower"],
            "kl_stored_upper": bound["kl_upper"],
            "kl_stored_bound_width": bound["kl_upper"] - bound["kl_lower"],
            "kl_se": float(seq_mid.std(ddof=1) / math.sqrt(seqs)) if seqs > 1 else math.nan,
            "kl_median": _pct(mid, 50),
            "kl_p90": _pct(mid, 90),
            "kl_p99": _pct(mid, 99),
            "kl_p999": _pct(mid, 99.9),
            "kl_max": float(mid.max()),
            "top1_agreement": agree,
            "top1_se": math.sqrt(agree * (1 - agree) / n),
            "dp_mean": float(dp.mean()),
            "dp_rms": float(np.sqrt((dp**2).mean())),
            "ln_ppl_ratio": float((v.base_ref - v.quant_ref).mean()),
        })
        value = _mean(seq_mid)
        gates = [Gate(self.metric, Measurement(value, 0.0, None, detail), self.threshold(variant))]
        if p99 is not None:
            lo, hi = _pct(v.lower, 99), _pct(v.upper, 99)
            # below 100 tokens the 99th percentile is interpolated into the largest token KL:
            # the gate would hold the maximum to a tail threshold, so it is not checked
            few = (f"kl_p99 of {n} scored tokens would be their maximum: the tail gate needs at least "
                   f"{MIN_P99_TOKENS} ({options.KL_TOKENS} or a longer {options.KL_TEXT})") if n < MIN_P99_TOKENS else None
            gates.append(Gate("kl_p99", Measurement((lo + hi) / 2, 0.0, None, {"kl_p99_lower": lo, "kl_p99_upper": hi,
                                                                                 "kl_decided": detail["kl_decided"],
                                                                                 "tokens": n}, unchecked=few), p99))
        if self.settings.top1_threshold is not None:
            gates.append(Gate("top1_agreement", Measurement(agree, 1.0, None, {"top1_se": detail["top1_se"], "tokens": n}),
                              self.settings.top1_threshold))
        return gates

    def measure(self, variant: Variant) -> Measurement:
        """The mean token KL (eq. 7) with its statistics; tokens whose quantized logits are NaN
        or infinite make the value NaN, and the problem says how many."""
        return self.outcome(variant)[0].measurement

    def gates(self, variant: Variant, task: object = None, **params: str) -> list[Gate]:
        if task is not None or params:
            raise TypeError(f"Expected no task or parameters for property {self.key!r}, but got {task!r} {params}")
        return self.outcome(variant)


def _rows(model: torch.nn.Module, batch: TokenBatch):  # a generator of rows.RowBlock
    """The variant's scored rows of one batch; a sequence that does not fit is the variant's error."""
    try:
        yield from scored_rows(model, [batch], check_finite=False)
    except MemoryError as exc:
        raise VariantError(str(exc)) from None


def _mean(x: np.ndarray) -> float:
    return float(np.mean(x))


def _pct(x: np.ndarray, q: float) -> float:
    """A percentile that is monotone in every value (linear interpolation), so the percentile
    of per-token lower (upper) bounds bounds the percentile of the exact values."""
    return float(np.percentile(x, q))
