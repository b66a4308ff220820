"""The task types: a task as the user named it, and multiple-choice questions (a leaf of data/)."""

from __future__ import annotations

import zlib
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    import numpy as np

Stratum = Literal["memorization", "utilization"]

# The zoo's QA rows (fixtures/data/zoo_qa.jsonl) as tasks. Paper 002 separates knowledge
# *memorization* (recall of one stored fact) from knowledge *utilization* (composing
# facts): `recall` rows are the first, the two-fact `utilization` rows (country of a
# person = country of the city they live in) the second, for people whose country was
# trained and for held-out people whose country must be composed.
ZOO_TASKS: dict[str, tuple[str, bool | None, Stratum]] = {
    "zoo_recall": ("recall", True, "memorization"),
    "zoo_utilization": ("utilization", True, "utilization"),
    "zoo_utilization_heldout": ("utilization", False, "utilization"),
}
TARGET_DELIMITER = " "  # lm-eval's default between a context and a choice


@dataclass(frozen=True)
class TaskRef:
    """A task as the user named it: a zoo task, an lm-eval task name, or a local YAML file."""

    name: str  # the test-id part: zoo or lm-eval task name, or the YAML's `task` field
    kind: Literal["zoo", "lmeval", "yaml"]
    source: str  # the name, or the YAML file's absolute path
    allow_code: bool = False  # the YAML may run Python beside it (`!function`): --qrel-allow-task-code


@dataclass(frozen=True)
class ChoiceTask:
    """Questions with answer choices: ``continuations[i][k]`` is scored after ``contexts[i]``;
    ``choices[i][k]`` is the bare choice text (its length normalizes ``acc_norm`` as in lm-eval)."""

    name: str
    contexts: tuple[str, ...]
    continuations: tuple[tuple[str, ...], ...]
    choices: tuple[tuple[str, ...], ...]
    labels: tuple[int, ...]
    stratum: Stratum | None = None
    questions_total: int = 0  # before subsampling

    def __len__(self) -> int:
        return len(self.labels)

    def sample_index(self, limit: int, seed: int) -> np.ndarray:
        """Sorted indices of ``limit`` questions drawn without replacement, from ``seed`` and
        the task's name (two tasks of one run get independent draws)."""
        import numpy as np

        rng = np.random.default_rng([seed, zlib.crc32(self.name.encode())])
        return np.sort(rng.choice(len(self.labels), size=min(limit, len(self.labels)), replace=False))

    def subsample(self, limit: int | None, seed: int) -> ChoiceTask:
        """At most ``limit`` questions drawn without replacement, the same for every model
        and variant of a run with this seed (kept in their original order)."""
        total = len(self.labels)
        if limit is None or limit >= total:
            return replace(self, questions_total=total)
        keep = self.sample_index(limit, seed)
        pick = lambda xs: tuple(xs[i] for i in keep)  # noqa: E731
        return replace(
            self,
            contexts=pick(self.contexts),
            continuations=pick(self.continuations),
            choices=pick(self.choices),
            labels=pick(self.labels),
            questions_total=total,
        )
