"""Stored model outputs (measures/outputs.py): read back bit for bit, computed once, a miss on
any change of their key, rebuilt when corrupt or pickled, and left to another process that is
computing them (the caller does other work meanwhile)."""

import subprocess
import sys
import time
from types import SimpleNamespace

import numpy as np
import pytest

from pytest_qrel.cache import ARRAYS, QuantCache, write_arrays
from pytest_qrel.errors import QrelCacheWarning
from pytest_qrel.measures.choices import ChoiceScores
from pytest_qrel.measures.generation import QAScores
from pytest_qrel.measures.kl import TokenValues
from pytest_qrel.measures.outputs import Outputs

RNG = np.random.default_rng(0)


@pytest.mark.parametrize("score", [
    ChoiceScores(np.array([[-1.5, -np.inf], [-0.25, -3.0]]), np.array([[4.0, 1.0], [2.0, 7.0]]), np.array([0, 1]), 1),
    QAScores(RNG.random((3, 2)) > 0.5, RNG.random((3, 2)), RNG.random(3), RNG.random(3), ("Paris", "", "naïve 東京")),
    QAScores(RNG.random((2, 1)) > 0.5, RNG.random((2, 1)), RNG.random(2), RNG.random(2), ("a", "b"),
             np.array([True, False])),
], ids=["choices", "qa", "qa-nonfinite"])
def test_scores_read_back_bit_for_bit(tmp_path, score):
    outputs = Outputs(SimpleNamespace(cache_dir=tmp_path), None)
    first = outputs.get("k", "model", ["u"], lambda u: {}, lambda us: {"u": score}, type(score).arrays,
                        type(score).from_arrays)["u"]
    again = outputs.get("k", "model", ["u"], lambda u: {}, pytest.fail, type(score).arrays, type(score).from_arrays)["u"]
    assert first is score
    for name, value in score.arrays().items():
        got = again.arrays()[name]
        assert got.dtype == np.asarray(value).dtype and np.array_equal(got, value), name
    if isinstance(score, QAScores):
        assert again.answers == score.answers and again.nonfinite == score.nonfinite


def test_kl_values_read_back_with_no_base_pass(tmp_path):
    values = TokenValues(*(RNG.random(5) for _ in range(5)), RNG.random(2), RNG.random(2), True, 0, 3)
    back = TokenValues.from_arrays({k: np.asarray(v) for k, v in values.arrays().items()})
    assert all(np.array_equal(getattr(back, k), getattr(values, k)) for k in TokenValues.ARRAYS)
    assert back.exact and back.nonfinite == 0 and back.base_passes == 0  # read back: no base forward pass


def _get(outputs, calls, model="m", units=("a", "b"), setting=1, ahead=False):
    def compute(us):
        calls.append(list(us))
        return {u: np.arange(3.0) * setting + len(u) for u in us}

    return outputs.get("kind", model, list(units), lambda u: {"setting": setting}, compute,
                       lambda a: {"x": a}, lambda d: d["x"], ahead)


def test_each_output_is_computed_once_and_any_key_change_is_a_miss(tmp_path):
    outputs, calls = Outputs(SimpleNamespace(cache_dir=tmp_path), None), []
    got = _get(outputs, calls)
    assert calls == [["a", "b"]]  # the missing units together, in one call
    assert _get(outputs, calls, units=("b", "c")).keys() == {"b", "c"} and calls[-1] == ["c"]
    assert np.array_equal(_get(outputs, calls)["a"], got["a"]) and len(calls) == 2
    _get(outputs, calls, model="other")  # other weights
    _get(outputs, calls, setting=2)  # another setting
    assert calls[2:] == [["a", "b"], ["a", "b"]]


def test_without_a_cache_everything_is_computed(tmp_path):
    outputs, calls = Outputs(SimpleNamespace(cache_dir=None), None), []
    _get(outputs, calls)
    _get(outputs, calls)
    assert calls == [["a", "b"], ["a", "b"]]


def test_a_corrupt_or_pickled_entry_is_rebuilt_with_a_warning(tmp_path):
    outputs, calls = Outputs(SimpleNamespace(cache_dir=tmp_path), None), []
    _get(outputs, calls, units=("a",))
    (entry,) = [p for p in tmp_path.glob("*/*") if p.is_dir()]
    data = (entry / ARRAYS).read_bytes()
    (entry / ARRAYS).write_bytes(data[:-7] + b"garbage")
    with pytest.warns(QrelCacheWarning, match="checksum mismatch"):
        assert np.array_equal(_get(outputs, calls, units=("a",))["a"], np.arange(3.0) + 1)
    assert len(calls) == 2
    # an entry that verifies but holds a pickled object array is never unpickled
    key = entry.name
    write_arrays(QuantCache(tmp_path), key, {"x": np.array([{"code": 1}], dtype=object)}, {})
    with pytest.warns(QrelCacheWarning, match="ValueError"):
        _get(outputs, calls, units=("a",))
    assert len(calls) == 3


def test_an_output_another_process_is_computing_is_left_for_later(tmp_path):
    outputs, calls = Outputs(SimpleNamespace(cache_dir=tmp_path), None), []
    _get(outputs, calls, units=("a",))
    (lock,) = tmp_path.glob("*/*.lock")
    holder = subprocess.Popen([sys.executable, "-c", f"import time; from filelock import FileLock; "
                               f"held = FileLock({str(lock)!r}); held.acquire(); print('held', flush=True); time.sleep(60)"],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        assert _get(outputs, calls, units=("a", "b"), ahead=True) is None  # busy: nothing done
        assert len(calls) == 1
        start = time.monotonic()
        holder.kill()
        holder.wait()
        assert _get(outputs, calls, units=("a", "b"))["b"] is not None  # waits, then computes only b
        assert calls[-1] == ["b"] and time.monotonic() - start < 30
    finally:
        holder.kill()
        holder.wait()
        holder.stdout.close()


def test_a_cache_that_cannot_be_locked_or_written_warns_and_computes(tmp_path):
    outputs, calls = Outputs(SimpleNamespace(cache_dir=tmp_path / "cache"), None), []
    (tmp_path / "cache").write_text("a file where the cache directory goes")
    with pytest.warns(QrelCacheWarning, match="could not use the cache .* computed without it"):
        got = _get(outputs, calls)
    assert calls == [["a", "b"]] and np.array_equal(got["b"], np.arange(3.0) + 1)
