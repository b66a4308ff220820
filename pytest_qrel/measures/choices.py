"""Multiple-choice scores of one model on one task, and the paper 003 numbers computed
from them (accuracy, calibration, confidence, entropy), for one model or vs its base."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from ..engine import choice_loglikelihoods
from ..metrics import (
    adaptive_calibration_error,
    brier_score,
    entropy,
    expected_calibration_error,
)

if TYPE_CHECKING:
    import torch

    from ..data.types import ChoiceTask
    from ..schema import ChoiceSummary


@dataclass(frozen=True)
class ChoiceScores:
    """Per-question choice log-likelihoods of a model on a task: the small arrays a measure
    keeps per variant (questions x choices), never the model outputs."""

    loglik: np.ndarray  # (n, C) log p(choice | context), summed over its tokens; -inf pads
    lengths: np.ndarray  # (n, C) characters of each choice text (lm-eval's acc_norm), 1 pads
    labels: np.ndarray  # (n,) index of the true choice
    nonfinite: int = 0  # questions whose logits were NaN or infinite

    @property
    def probs(self) -> np.ndarray:
        """Confidence vector per question: softmax over the choices' sequence log-likelihoods
        (paper 003 §3, :math:`p_{LM}(y|x)` normalized over the choices :math:`Y`)."""
        z = self.loglik - self.loglik.max(axis=1, keepdims=True)
        e = np.exp(z)
        return e / e.sum(axis=1, keepdims=True)

    @property
    def log_probs(self) -> np.ndarray:
        z = self.loglik - self.loglik.max(axis=1, keepdims=True)
        return z - np.log(np.exp(z).sum(axis=1, keepdims=True))

    @property
    def predictions(self) -> np.ndarray:
        """argmax of the log-likelihoods (paper 003 §3, lm-eval's ``acc``; first on ties)."""
        return np.argmax(self.loglik, axis=1)

    @property
    def predictions_norm(self) -> np.ndarray:
        """argmax of log-likelihood per character of the choice (lm-eval's ``acc_norm``)."""
        return np.argmax(self.loglik / self.lengths, axis=1)

    @property
    def correct(self) -> np.ndarray:
        return self.predictions == self.labels

    @property
    def true_class_confidence(self) -> np.ndarray:
        """Conf_true per question: the probability of the true choice (paper 003 Table 2)."""
        return self.probs[np.arange(len(self.labels)), self.labels]

    def arrays(self) -> dict[str, np.ndarray | np.int64]:
        """What the cache keeps (``from_arrays`` reads it back, bit for bit)."""
        return {"loglik": self.loglik, "lengths": self.lengths, "labels": self.labels, "nonfinite": np.int64(self.nonfinite)}

    @classmethod
    def from_arrays(cls, a: dict[str, np.ndarray]) -> ChoiceScores:
        return cls(a["loglik"], a["lengths"], a["labels"], int(a["nonfinite"]))

    def subset(self, index: np.ndarray) -> ChoiceScores:
        return ChoiceScores(self.loglik[index], self.lengths[index], self.labels[index], self.nonfinite)


def score_task(model: torch.nn.Module, tokenizer, task: ChoiceTask, batch_size: int | None = None) -> ChoiceScores:
    """Score every question of ``task`` with ``model`` (engine.choice_loglikelihoods, rows per
    batch ``batch_size`` or its default)."""

    pairs = list(zip(task.contexts, task.continuations))
    lls, nonfinite = (choice_loglikelihoods(model, tokenizer, pairs) if batch_size is None
                      else choice_loglikelihoods(model, tokenizer, pairs, batch_size=batch_size))
    width = max(len(c) for c in task.choices)
    loglik = np.full((len(lls), width), -np.inf)
    lengths = np.ones((len(lls), width))
    for i, (row, texts) in enumerate(zip(lls, task.choices)):
        loglik[i, : len(row)] = row
        lengths[i, : len(texts)] = [max(len(t), 1) for t in texts]
    return ChoiceScores(loglik, lengths, np.asarray(task.labels, dtype=np.int64), nonfinite)


N_BINS = 10  # paper 003 App. B leaves the number of bins open; tenths, as its Fig. 1 bins


def summary(scores: ChoiceScores) -> ChoiceSummary:
    """One model's numbers on one task, paper 003 Tables 1-2: accuracy (and lm-eval's
    acc_norm), ECE, adaptive CE, Brier, mean confidence in the prediction (Conf), in wrong
    predictions (Conf_err), in the true class (Conf_true), and mean predictive entropy H."""

    probs, correct = scores.probs, scores.correct
    conf = probs.max(axis=1)
    return {
        "accuracy": float(correct.mean()),
        "accuracy_norm": float((scores.predictions_norm == scores.labels).mean()),
        "ece": expected_calibration_error(conf, correct, n_bins=N_BINS),
        "ace": adaptive_calibration_error(probs, scores.labels, n_bins=N_BINS),
        "brier": brier_score(probs, scores.labels),
        "conf": float(conf.mean()),
        "conf_err": float(conf[~correct].mean()) if (~correct).any() else float("nan"),
        "conf_true": float(scores.true_class_confidence.mean()),
        "entropy": float(entropy(scores.log_probs, axis=1).mean()),
    }
