"""Open-ended QA prompts with reference answers, for the robustness suite: the zoo's
robustness questions by default, or a user's JSONL file; subsampled reproducibly. A prompt
may name its stratum (the zoo's: recall, utilization, utilization_heldout, paper 002 §3),
so the report can say which stratum perturbations hurt more."""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from pathlib import Path

from .files import data_dir, load_jsonl


@dataclass(frozen=True)
class QASet:
    """``prompts[i]`` is answered freely; any of ``answers[i]`` is a correct answer."""

    name: str
    prompts: tuple[str, ...]
    answers: tuple[tuple[str, ...], ...]
    total: int  # prompts before subsampling
    strata: tuple[str, ...] = ()  # per prompt, or () when the set has none

    def __len__(self) -> int:
        return len(self.prompts)

    def subsample(self, limit: int | None, seed: int) -> QASet:
        """At most ``limit`` prompts drawn without replacement from ``seed`` and the set's
        name, the same for every model and variant of a run (kept in their order)."""
        import numpy as np

        if limit is None or limit >= len(self.prompts):
            return self
        rng = np.random.default_rng([seed, zlib.crc32(self.name.encode())])
        keep = np.sort(rng.choice(len(self.prompts), size=limit, replace=False))
        return QASet(self.name, tuple(self.prompts[i] for i in keep), tuple(self.answers[i] for i in keep), self.total,
                     tuple(self.strata[i] for i in keep) if self.strata else ())


def zoo_stratum(row: dict) -> str:
    """A zoo question's stratum (paper 002 §3): ``recall`` (one stored fact), ``utilization``
    (two facts composed, trained) or ``utilization_heldout`` (composed for people whose
    composition was never trained)."""
    return row["task"] + ("" if row["trained"] else "_heldout")


def zoo_qa() -> QASet:
    """The zoo's robustness questions (``question : where does yusuf price live ? answer :``,
    reference ``montreal``): every question about the people the corpus sets apart for
    robustness (``robustness`` in zoo_qa.jsonl), in all three strata."""
    rows = [r for r in load_jsonl(data_dir() / "zoo_qa.jsonl") if r["robustness"]]  # a field of the file, not a property
    return QASet("zoo_qa", tuple(r["question"] for r in rows), tuple((r["answer"],) for r in rows), len(rows),
                 tuple(zoo_stratum(r) for r in rows))


def read_qa_file(path: str | Path) -> QASet:
    """A JSONL file of ``{"prompt": ..., "answers": [...]}`` rows (``question`` and ``answer``
    are accepted for them), each with an optional ``stratum`` (every row or none); ValueError
    naming the file and the first bad row."""
    path = Path(path)
    rows = load_jsonl(path)
    prompts, answers, strata = [], [], []
    for lineno, row in enumerate(rows, 1):
        prompt = row.get("prompt", row.get("question")) if isinstance(row, dict) else None
        refs = row.get("answers", row.get("answer")) if isinstance(row, dict) else None
        refs = [refs] if isinstance(refs, str) else refs
        if not isinstance(prompt, str) or not prompt.strip():
            raise ValueError(f"Expected a non-empty 'prompt' string in row {lineno} of {path}, but got {prompt!r}")
        if not isinstance(refs, list) or not refs or not all(isinstance(a, str) and a.strip() for a in refs):
            raise ValueError(
                f"Expected 'answers' to be a non-empty list of non-empty strings in row {lineno} of {path}, but got {refs!r}"
            )
        stratum = row.get("stratum")
        if stratum is not None and (not isinstance(stratum, str) or not stratum.strip()):
            raise ValueError(f"Expected 'stratum' to be a non-empty string in row {lineno} of {path}, but got {stratum!r}")
        prompts.append(prompt)
        answers.append(tuple(refs))
        strata.append(stratum)
    named = [k for k, s in enumerate(strata, 1) if s is not None]
    if named and len(named) < len(strata):
        unnamed = next(k for k, s in enumerate(strata, 1) if s is None)
        raise ValueError(f"Expected a 'stratum' in every row of {path} or in none, but row {named[0]} has one and "
                         f"row {unnamed} has none")
    first: dict[str, int] = {}
    for number, prompt in enumerate(prompts, 1):
        if prompt in first:
            raise ValueError(f"Expected distinct prompts in {path}, but rows {first[prompt]} and {number} are both "
                             f"{prompt[:60]!r}: a repeated prompt counts twice in every gate")
        first[prompt] = number
    return QASet(path.stem, tuple(prompts), tuple(answers), len(prompts),
                 tuple(s for s in strata if s is not None) if named else ())


_LOADED: dict[tuple, QASet] = {}


def run_qa_set(qa_file: Path | None, limit: int | None, seed: int) -> QASet:
    """The run's prompts (the QA file, else the zoo's), subsampled; loaded once per process."""
    key = (qa_file, limit, seed)
    if key not in _LOADED:
        _LOADED[key] = (read_qa_file(qa_file) if qa_file else zoo_qa()).subsample(limit, seed)
    return _LOADED[key]
