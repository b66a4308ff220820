"""A measure's output does not change unless its version does (issue 35 item 4).

Stored outputs are keyed by the code's versions (``Measure.version``, engine.py's, rows.py's and
sampling.py's ``VERSION``; measures/outputs.py), not by its source text, so a change of what a
measure computes that bumps no version would let a rerun read outputs computed the old way. Each
built-in measure computes a small fixed output here (zoo-xs, one rtn 4-bit variant, one task of
30 questions, 20 prompts under one perturbation, 2 samples, 2 fuzzing batches; fixed seeds; one
torch thread, so the numbers do not depend on the machine's cores) and every number its gates
carry is compared with the golden values in measure_versions.json, recorded with the versions
they were recorded at:

- the numbers differ and the versions are those recorded: fail, "bump <Measure>.version";
- the versions differ from those recorded: fail, "re-record" (the new version's numbers).

Re-record: ``QREL_RECORD_GOLDEN=1 pytest tests/e2e/test_measure_versions.py -n 0``.

The comparison is to 1e-9 relative, not exact: on one machine the numbers are bit-identical
run to run (same code, same thread count), but the golden file travels to other machines whose
numpy and torch may pick other SIMD kernels, which round float64 summaries (means, sums of
per-question terms) differently in their last bits; 1e-9 is far above that and far below any
change of what a measure computes. A CPU whose float32 kernels round differently, or another
torch, may move the numbers further: the failure says so, and re-recording is then the fix.
"""

import json
import math
import os
from pathlib import Path

import numpy as np
import pytest
import torch

from helpers import session_for
from pytest_qrel.measures import MEASURES, Measure
from pytest_qrel.measures.outputs import code_versions
from pytest_qrel.measures.scaling import law_gate

GOLDEN = Path(__file__).with_name("measure_versions.json")
RECORD = os.environ.get("QREL_RECORD_GOLDEN") == "1"
AGAIN = "QREL_RECORD_GOLDEN=1 pytest tests/e2e/test_measure_versions.py -n 0"
REL_TOL = 1e-9
TASK, CONDITION = "zoo_recall", ("char_swap", 2)
# (KL to base, total model bits) of other 4-bit variants, and the variant bounded by their law
SCALING_POINTS = [(0.30, 1.0e6), (0.22, 1.4e6), (0.16, 2.0e6), (0.12, 2.6e6), (0.10, 3.2e6), (0.085, 4.0e6)]
SCALING_VARIANT = (0.14, 2.2e6)

pytestmark = pytest.mark.skipif(torch.cuda.is_available(), reason="the golden values are CPU values")


def _numbers(x, path: str, out: dict[str, float]) -> None:
    """Every number in ``x`` (nested dicts and lists) by its path; text is left out (a reason's
    wording is not what a measure computes)."""
    if isinstance(x, (bool, int, float, np.number, np.bool_)):
        out[path] = float(x)
    elif isinstance(x, dict):
        for k in sorted(x, key=str):
            _numbers(x[k], f"{path}.{k}", out)
    elif isinstance(x, (list, tuple, np.ndarray)):
        for i, y in enumerate(x):
            _numbers(y, f"{path}[{i}]", out)


def _gate_numbers(gates) -> dict[str, float]:
    """The numbers a measure's gates carry: each value, base value and detail (not the threshold,
    which the catalog and the options set)."""
    out: dict[str, float] = {}
    for i, g in enumerate(gates):
        m = g.measurement
        # a family's gates on one unit carry the same comparison: its numbers once, with the first
        detail = {k: v for k, v in m.detail.items() if k != "comparison" or i == 0}
        _numbers({"value": m.value, "base_value": m.base_value, "significant": m.significant, "detail": detail},
                 g.metric, out)
    return out


@pytest.fixture(scope="module")
def outputs(tmp_path_factory) -> dict[str, dict[str, float]]:
    """Every built-in measure's numbers on zoo-xs's rtn 4-bit variant."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        session = session_for("zoo-xs", tmp_path_factory.mktemp("versions"), no_cache=True, tasks=TASK,
                              task_limit="30", qa_limit="20", samples="2", max_new_tokens="8",
                              perturbations=CONDITION[0], intensities=str(CONDITION[1]), fuzz_examples="2",
                              fuzz_batch="6")
        (variant,) = [v for v in session.variants if not v.skip_reason]
        planned = {(variant, TASK, "calibration"), (variant, TASK, "confidence"), (variant, CONDITION, "robustness")}
        for measure in session.measures.values():
            measure.plan(planned)
        units = {"calibration": TASK, "confidence": TASK, "robustness": CONDITION}
        out = {key: _gate_numbers(session.measures[key].gates(variant, units.get(key)))
               for key in ("kl", "calibration", "confidence", "robustness", "fuzz")}
        out["scaling"] = _gate_numbers([law_gate("kl_to_base", 4, *SCALING_VARIANT, SCALING_POINTS, 0.95, False)])
        return out
    finally:
        torch.set_num_threads(threads)


def _owner(cls: type[Measure]) -> str:
    """The class whose ``version`` a measure has (calibration and confidence: their family's)."""
    return next(c for c in cls.__mro__ if "version" in vars(c)).__name__


def _differences(recorded: dict[str, float], now: dict[str, float]) -> list[str]:
    return [f"{p}: recorded {recorded.get(p)!r}, now {now.get(p)!r}" for p in sorted(set(recorded) | set(now))
           if p not in recorded or p not in now or not (
               math.isclose(recorded[p], now[p], rel_tol=REL_TOL) or math.isnan(recorded[p]) and math.isnan(now[p]))]


def _installed() -> dict[str, str]:
    import transformers

    return {"torch": torch.__version__, "transformers": transformers.__version__}


@pytest.mark.parametrize("key", sorted(MEASURES))
def test_a_measure_output_changes_only_with_its_version(outputs, key):
    cls = MEASURES[key]
    versions = code_versions(cls.version)
    golden = json.loads(GOLDEN.read_text()) if GOLDEN.exists() else {}
    if RECORD:
        golden[key] = {"versions": versions, "recorded_with": _installed(), "numbers": outputs[key]}
        GOLDEN.write_text(json.dumps(dict(sorted(golden.items())), indent=1) + "\n")
        return
    assert key in golden, f"no golden values of measure {key!r}: record them with {AGAIN}"
    entry = golden[key]
    assert entry["versions"] == versions, (
        f"{key}: the versions are now {versions}, its golden values were recorded at {entry['versions']}: "
        f"re-record them with {AGAIN}")
    diff = _differences(entry["numbers"], outputs[key])
    assert not diff, (
        f"{key}'s output changed but its version did not: bump {_owner(cls)}.version (measures/), or the VERSION of "
        f"the shared module whose numbers changed (engine.py, rows.py, sampling.py), then re-record with {AGAIN}. "
        f"(If no code changed: recorded with {entry['recorded_with']}, installed {_installed()}; another torch or "
        f"CPU kernel: re-record only.) {len(diff)} of {len(outputs[key])} numbers differ, e.g. " + "; ".join(diff[:3]))
