"""Issue 38 item 2: K variants cost K + 1 forward passes at any vocabulary. Where the base's stored
top-k does not bound a variant's KL tightly enough (a vocabulary larger than k), the base's full
log-probs of the scored tokens, stored in the same pass, give the exact KL: the base never runs
again beside a variant, and the values are those of the base run live."""

from collections import namedtuple

import pytest

from pytest_qrel.errors import QrelCacheWarning
from pytest_qrel.measures import kl_base

from .helpers import run_session, session_for


def _kl(tmp_path, topk: str):
    """{variant id: (KL, its detail, the base passes it cost)} of rtn 4 and 8 bits of zoo-s."""
    session = session_for("zoo-s", tmp_path, methods="rtn", bits="4,8", kl_topk=topk)
    measure = session.measures[session.config.catalog.scaled_metrics()["kl_to_base"]]
    out = {}
    for vid, (value, info) in run_session(session).items():
        variant = next(v for v in session.variants if v.id == vid)
        out[vid] = (value, measure.measure(variant).detail, info["kl_base_forward_passes"])
    return out


def test_two_variants_whose_bounds_do_not_decide_cost_one_base_pass(tmp_path):
    undecided = _kl(tmp_path / "top4", "4")  # 4 of zoo-s's 1,024 tokens: bounds too wide to decide
    (first, second) = undecided.values()
    assert first[1]["kl_decided"] == second[1]["kl_decided"] == "exact"
    assert first[1]["kl_stored_bound_width"] > 1e-3 and second[1]["kl_stored_bound_width"] > 1e-3
    assert first[2] > 0 and second[2] == 0  # one pass over the text's batches, by the first variant
    exact = _kl(tmp_path / "all", "all")  # every log-prob stored: the exact KL from the start
    assert {v: x[0] for v, x in undecided.items()} == {v: x[0] for v, x in exact.items()}  # bit for bit
    assert list(exact.values())[0][2] == first[2]  # the same one pass
    again = _kl(tmp_path / "top4", "4")  # a rerun reads everything back
    assert [x[2] for x in again.values()] == [0, 0] and {v: x[0] for v, x in again.items()} == {
        v: x[0] for v, x in undecided.items()}


def test_without_room_for_the_full_log_probs_the_base_runs_live_with_the_same_values(tmp_path, monkeypatch):
    stored = _kl(tmp_path / "stored", "4")
    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(kl_base.shutil, "disk_usage", lambda path: usage(10**6, 10**6 - 1000, 1000))
    with pytest.warns(QrelCacheWarning, match=r"full log-probs on the KL text need .* GiB.*runs the base again"):
        live = _kl(tmp_path / "live", "4")
    (first, second) = live.values()
    passes = list(stored.values())[0][2]
    assert first[2] == 2 * passes and second[2] == passes  # today's path: the base again per variant
    assert {v: x[0] for v, x in live.items()} == {v: x[0] for v, x in stored.items()}
