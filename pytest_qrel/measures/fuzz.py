"""Perturbation fuzzing: hypothesis draws batches of perturbed prompts (pytest_qrel.strategies)
and the variant's greedy answers must agree with its base's on at least a configured share
of each batch; a batch below it fails, shrunk by hypothesis to a minimal one, which the
test's record (and so the report) keeps."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..data.qa import run_qa_set
from ..errors import ShrinkBudgetSpent
from ..model_state import ModelState
from ..sampling import sample_answers
from .base import Measure, Measurement, unreadable
from .family import POWER
from .generation import answer_text, normalize_answer, qa_unknown_share, stop_token_ids

if TYPE_CHECKING:
    from ..settings import Robustness
    from ..variants import Variant


def greedy_answers(model, tokenizer, prompts: list[str], max_new_tokens: int) -> list[str]:
    """Each prompt's greedy answer (deterministic, so agreement is not sampling noise)."""

    drawn = sample_answers(model, tokenizer(prompts)["input_ids"], [0] * len(prompts), 1, 0.0, max_new_tokens,
                           stop_token_ids(tokenizer))
    texts = tokenizer.batch_decode([[t for t in row[0] if t >= 0] for row in drawn.tokens], skip_special_tokens=True)
    return [answer_text(t).strip() for t in texts]


# most batches run while shrinking a failure, beyond the examples (each a base and a variant
# pass). Only the report's example depends on it, never a value or a status: the value is the
# first failing batch as drawn. 8, not 16: the default run's 12 failing variants took ~20 s less
# (benchmarks/README.md), their examples a little less shrunk (some still perturbed).
FUZZ_SHRINK_RUNS = 8
# The seed of hypothesis's draws. derandomize=True alone seeds them from a digest of the test
# function's source text, so an edit that changes nothing it computes (a renamed exception)
# drew other batches and moved the gate's numbers (issue 35: behaviour never follows source
# text). This is the seed that digest gave up to issue 35, kept so the batches stay the ones
# drawn before; a change of it changes what FuzzMeasure computes: bump its version.
FUZZ_SEED = 25008428937697275426340983297473409368591991416395756730544580969033470384669596904811353350103125010885199454758582


@dataclass
class FuzzState(ModelState):
    """What the fuzzing measure keeps per base model (dropped with the base when the store moves on)."""

    # the base's greedy answers by fuzzed batch: added by base_answers() as hypothesis draws batches
    base_answers: dict[tuple[str, ...], list[str]] = field(default_factory=dict)


class FuzzMeasure(Measure):
    """``answer_agreement``: the share of a fuzzed batch on which the variant answers as
    its base does (normalized match); the lowest share hypothesis found, or its minimal
    failing batch's."""

    key = "fuzz"
    settings: Robustness  # its entry of config.property_settings
    # what it computes (greedy answers, their agreement, the batches hypothesis draws): in the key
    # of the base's stored answers; bump it when they change (base.Measure.version)
    version = 1

    def threshold(self, variant: Variant) -> float:
        return self.settings.fuzz_agreement

    def base_answers(self, variant: Variant, texts: list[str]) -> list[str]:
        """The base's greedy answers to a batch, once per batch (the variants of a model draw the
        same batches; outputs.py keeps them across workers and reruns). Per batch, not per
        prompt: the answers are those of the batch as it is padded, exactly as if recomputed."""
        self.store.base(variant)
        memo = self.store.state(variant, FuzzState).base_answers
        batch = tuple(texts)
        if batch not in memo:
            import numpy as np

            base, limit = self.store.base(variant), self.settings.max_new_tokens
            outputs = self.outputs()
            memo[batch] = outputs.get(
                "fuzz_base", outputs.model_key(variant, base=True), [batch], lambda _: {"max_new_tokens": limit},
                lambda batches: {b: greedy_answers(base.model, base.tokenizer, list(b), limit) for b in batches},
                lambda answers: {"answers": np.array(answers, dtype=str)},
                lambda arrays: [str(a) for a in arrays["answers"]])[batch]  # type: ignore[index]
        return memo[batch]

    def measure(self, variant: Variant) -> Measurement:
        from hypothesis import HealthCheck, Phase, given, seed, settings
        from hypothesis import strategies as st

        from ..strategies import perturbed_prompts

        r = self.settings
        qa = run_qa_set(r.qa_file, r.qa_limit, self.config.seed)
        prompts = qa.prompts
        base = self.store.base(variant)
        unknown = unreadable(qa_unknown_share(base.tokenizer, qa.prompts, qa.answers),
                             f"the QA prompts and answers ({qa.name})")
        if unknown:  # greedy answers to unknown tokens say nothing about the model: not fuzzed
            return Measurement(float("nan"), None, None, {}, unchecked=unknown)
        model = self.store.quantized(variant)
        threshold = self.threshold(variant)
        runs, rates = [0], []
        results: dict[tuple, list[dict]] = {}  # batch -> its examples and answers
        last_failing: list[tuple] = []

        def check(batch: list) -> list[dict]:
            texts = [ex.perturbed for ex in batch]
            ours = self.base_answers(variant, texts)
            theirs = greedy_answers(model, base.tokenizer, texts, r.max_new_tokens)
            return [{"prompt": ex.prompt, "perturbed": ex.perturbed, "perturbation": ex.perturbation,
                     "intensity": ex.intensity, "seed": ex.seed, "base_answer": a, "answer": b,
                     "agree": normalize_answer(a) == normalize_answer(b)}
                    for ex, a, b in zip(batch, ours, theirs)]

        # distinct prompts per batch: a batch shrinks to the prompts that disagree, with the
        # smallest perturbations that still make them, not to one prompt copied
        size = min(r.fuzz_batch, len(prompts))

        # No explain phase (it re-runs the test hundreds of times to annotate the example).
        @seed(FUZZ_SEED)
        @settings(max_examples=r.fuzz_examples, derandomize=True, database=None, deadline=None,
                  suppress_health_check=list(HealthCheck), print_blob=False,
                  phases=(Phase.explicit, Phase.generate, Phase.shrink))
        @given(st.lists(perturbed_prompts(prompts, perturbations=r.perturbations, max_intensity=max(r.intensities)),
                        min_size=size, max_size=size, unique_by=lambda ex: ex.prompt))
        def agree(batch: list) -> None:
            key = tuple(batch)
            if key not in results:
                if runs[0] >= r.fuzz_examples + FUZZ_SHRINK_RUNS:
                    # past the shrinking budget: stop hypothesis here (a passing batch would only
                    # make its shrinker draw ~200 more batches before it gives up)
                    raise ShrinkBudgetSpent
                runs[0] += 1
                results[key] = check(batch)
                rates.append(sum(e["agree"] for e in results[key]) / len(batch))
            rate = sum(e["agree"] for e in results[key]) / len(batch)
            if rate < threshold:
                last_failing.append(key)
                raise AssertionError(f"answers agree on {rate:.0%} of the batch, below {threshold:.0%}")

        detail: dict[str, Any] = {"fuzz_examples": r.fuzz_examples, "fuzz_batch": size}
        try:
            agree()
        except (AssertionError, ShrinkBudgetSpent):
            if not last_failing:
                raise
            # the value: the first failing batch as hypothesis drew it (shrinking then makes
            # batches fail by as much as it can); the example: the batch it shrank to, which
            # hypothesis replays last (or the last failing batch it reached when the shrinking
            # budget ran out), its disagreeing prompts once each
            found = next(rate for rate in rates if rate < threshold)
            shrunk = list({e["perturbed"]: e for e in results[last_failing[-1]] if not e["agree"]}.values())
            return Measurement(found, 1.0, None, {**detail, "batches_run": runs[0], "shrunk_example": shrunk})
        power = fuzz_power(size, runs[0], threshold)
        detail = {**detail, "batches_run": runs[0], "power": power}
        if power < POWER:
            return Measurement(min(rates), 1.0, None, detail, unchecked=(
                f"{runs[0]} batches of {size} prompts would let a variant that agrees with its base on "
                f"{threshold - FUZZ_HARM:.2g} of its answers ({FUZZ_HARM:g} below the required {threshold:g}) pass "
                f"with probability {1 - power:.2g}: more prompts per batch (--qrel-fuzz-batch, --qrel-qa-limit) or "
                f"more batches (--qrel-fuzz-examples)"))
        return Measurement(min(rates), 1.0, None, detail)


FUZZ_HARM = 0.1  # the agreement shortfall the fuzzing gate must be able to catch


def all_batches_pass(agreement: float, batch: int, batches: int, threshold: float) -> float:
    """The probability that every one of ``batches`` independent batches of ``batch`` prompts,
    each prompt agreeing with the base with probability ``agreement``, agrees on at least
    ``threshold`` of its prompts: one batch passes with P(Binomial(batch, agreement) >=
    threshold x batch)."""
    from scipy import stats

    needed = math.ceil(threshold * batch - 1e-9)
    passes = float(stats.binom(batch, agreement).sf(needed - 1)) if batch else 1.0
    return passes ** max(batches, 1)


def fuzz_power(batch: int, batches: int, threshold: float) -> float:
    """The probability that ``batches`` independent batches of ``batch`` prompts catch a
    variant agreeing with its base on ``threshold - FUZZ_HARM`` of its answers (the gate fails
    when one batch does not reach ``threshold``)."""
    return 1.0 - all_batches_pass(max(threshold - FUZZ_HARM, 0.0), batch, batches, threshold)
