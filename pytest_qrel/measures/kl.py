"""KL to base: mean token KL(P_base || P_quant) on held-out text (paper 000 §4.3, eq. 7)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..data import heldout_texts
from ..engine import encode, next_token_logprobs
from ..metrics import kl_divergence, sequence_mean
from .base import Measure, Measurement

if TYPE_CHECKING:
    from ..variants import Variant


class KLMeasure(Measure):
    key = "kl"

    def threshold(self, variant: Variant) -> float:
        return self.config.kl_threshold[variant.bits]

    def base_outputs(self, variant: Variant) -> tuple[list, list]:
        """The held-out batches and the base's next-token log-probs on them, once per model."""
        scratch = self.store.scratch(variant)
        if "kl_base_outputs" not in scratch:

            base = self.store.base(variant)
            batches = encode(base.tokenizer, heldout_texts())
            scratch["kl_base_outputs"] = (batches, list(next_token_logprobs(base.model, batches)))
        return scratch["kl_base_outputs"]

    def measure(self, variant: Variant) -> Measurement:
        """Mean over held-out sequences of the mean token KL (eq. 7); tokens whose quantized
        logits are NaN or infinite make the value NaN, and the problem says how many."""
        import numpy as np


        batches, base_outputs = self.base_outputs(variant)
        model = self.store.quantized(variant)
        per_sequence, bad, tokens = [], 0, 0
        for batch, base_lp, quant_lp in zip(batches, base_outputs, next_token_logprobs(model, batches, check_finite=False)):
            mask = batch.target_mask.numpy().astype(bool)
            nonfinite = ~np.isfinite(quant_lp.numpy()).all(-1) & mask
            bad += int(nonfinite.sum())
            tokens += int(mask.sum())
            if not nonfinite.any():
                kl = kl_divergence(base_lp.double().numpy(), quant_lp.double().numpy())
                per_sequence.append(sequence_mean(kl, batch.target_mask.numpy()))
        if bad:
            return Measurement(float("nan"), 0.0, f"NaN or inf logits at {bad} of {tokens} tokens",
                               {"nonfinite_tokens": bad, "tokens": tokens})
        return Measurement(float(np.mean(np.concatenate(per_sequence))), 0.0)
