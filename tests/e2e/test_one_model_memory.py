"""One model's memory (issue 38 item 3): a variant measured from what is stored of its base (the
KL's stored outputs) runs with the base's weights released, and the base is loaded again from
disk when it is needed next (to quantize the next variant); its numbers are those of a run that
keeps the base."""

import gc
import weakref

import pytest

from helpers import session_for
from pytest_qrel import model_state
from pytest_qrel.measures import kl

OPTS = {"methods": "rtn", "bits": "2,8"}


def _watched(monkeypatch, session):
    """Per variant KL measured: whether a base model was alive while the variant's rows were computed."""
    alive: list[bool] = []
    rows, ref = kl._rows, [None]

    def watched(model, batch):
        gc.collect()
        # the base loaded before (a live base is loaded again if released: held weights count too)
        alive.append(ref[0]() is not None or session.store._held.loaded is not None)
        yield from rows(model, batch)

    monkeypatch.setattr(kl, "_rows", watched)

    def measure(variant):
        ref[0] = weakref.ref(session.base_model(variant).model)
        before = len(alive)
        value = session.measures["kl"].outcome(variant)[0].measurement
        return value, set(alive[before:])

    return measure


def test_the_base_is_released_while_a_variant_is_measured_from_its_stored_outputs(tmp_path, monkeypatch):
    kept = session_for("zoo-s", tmp_path / "kept", **OPTS)
    measure = _watched(monkeypatch, kept)
    # a zoo model's weights (under 32 MB) are kept: reloading them would cost more than they take
    expected = {}
    for v in kept.variants:
        expected[v.id], alive = measure(v)
        assert alive == {True}
    monkeypatch.setattr(model_state, "RELEASE_BASE_BYTES", 0)
    released = session_for("zoo-s", tmp_path / "released", **OPTS)
    measure = _watched(monkeypatch, released)
    for v in released.variants:  # the second variant's base is loaded again to quantize it, then released
        got, alive = measure(v)
        assert alive == {False}
        assert got.value == expected[v.id].value and got.detail == expected[v.id].detail


def test_a_base_run_live_beside_the_variant_is_held(tmp_path, monkeypatch):
    """Where the exact KL needs the base live (no room on disk for its full log-probs), it is held."""
    import shutil

    monkeypatch.setattr(model_state, "RELEASE_BASE_BYTES", 0)
    real = shutil.disk_usage
    monkeypatch.setattr(shutil, "disk_usage", lambda path: real(path)._replace(free=0))
    session = session_for("zoo-s", tmp_path, kl_topk="16", **OPTS)
    measure = _watched(monkeypatch, session)
    with pytest.warns(Warning, match="full log-probs"):
        value, alive = measure(session.variants[0])
    # the bounds from the stored top-16 ran without it; the exact KL beside the live base
    assert value.detail["kl_decided"] == "exact" and alive == {False, True}
