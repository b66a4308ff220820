"""Open-ended QA prompts with reference answers, for the robustness suite: the zoo's
recall questions by default, or a user's JSONL file; subsampled reproducibly."""

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
        return QASet(self.name, tuple(self.prompts[i] for i in keep), tuple(self.answers[i] for i in keep), self.total)


def zoo_qa() -> QASet:
    """The zoo's trained recall questions (``question : where does yusuf price live ? answer :``,
    reference ``montreal``): one stored fact each, the stratum every zoo model learned best."""
    rows = [r for r in load_jsonl(data_dir() / "zoo_qa.jsonl") if r["task"] == "recall" and r["trained"]]
    return QASet("zoo_qa", tuple(r["question"] for r in rows), tuple((r["answer"],) for r in rows), len(rows))


def read_qa_file(path: str | Path) -> QASet:
    """A JSONL file of ``{"prompt": ..., "answers": [...]}`` rows (``question`` and ``answer``
    are accepted for them); ValueError naming the file and the first bad row."""
    path = Path(path)
    rows = load_jsonl(path)
    prompts, answers = [], []
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
        prompts.append(prompt)
        answers.append(tuple(refs))
    first = {}
    for row, prompt in enumerate(prompts, 1):
        if prompt in first:
            raise ValueError(f"Expected distinct prompts in {path}, but rows {first[prompt]} and {row} are both "
                             f"{prompt[:60]!r}: a repeated prompt counts twice in every gate")
        first[prompt] = row
    return QASet(path.stem, tuple(prompts), tuple(answers), len(prompts))


_LOADED: dict[tuple, QASet] = {}


def run_qa_set(qa_file: Path | None, limit: int | None, seed: int) -> QASet:
    """The run's prompts (the QA file, else the zoo's), subsampled; loaded once per process."""
    key = (qa_file, limit, seed)
    if key not in _LOADED:
        _LOADED[key] = (read_qa_file(qa_file) if qa_file else zoo_qa()).subsample(limit, seed)
    return _LOADED[key]
