"""The quantized-model cache on real backends: hits reproduce the quantized model exactly,
a changed key quantizes again, a corrupt entry is rebuilt, concurrent workers quantize once."""

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from helpers import make_llama, run_session, session_for
from pytest_qrel.errors import QrelCacheWarning

ALL_METHODS = "rtn,hqq,bnb,bnb-fp4,gptq,quanto,quanto-fp8,quanto-a8,quanto-fp8-a8"


def _session(model, cache_dir, methods=ALL_METHODS, bits="4,8", group="64", no_cache=False, **opts):
    return session_for(model, cache_dir, methods=methods, bits=bits, group_size=group, no_cache=no_cache, **opts)


def test_second_run_loads_identical_models(tiny, tmp_path):
    first = run_session(_session(tiny, tmp_path))
    second = run_session(_session(tiny, tmp_path))
    assert len(first) == 14  # every backend's 4- and 8-bit variants it supports
    assert {i["cache"] for _, i in first.values()} == {"miss"}
    assert {i["cache"] for _, i in second.values()} == {"hit"}
    for vid, (kl, info) in first.items():
        kl2, info2 = second[vid]
        assert kl2 == kl, vid  # bit-identical outputs
        # the cache's hit or miss, and whether the base's KL outputs were computed or read back, differ
        run_dependent = {"cache", "kl_base_forward_passes"}
        assert {k: v for k, v in info2.items() if k not in run_dependent} == {
            k: v for k, v in info.items() if k not in run_dependent}


def test_changed_key_quantizes_again(tiny, tmp_path):
    run_session(_session(tiny, tmp_path, methods="hqq", bits="4"))
    assert run_session(_session(tiny, tmp_path, methods="hqq", bits="4"))["tiny-hqq-4b-g64"][1]["cache"] == "hit"
    # another group size, other bits, other base weights: each a miss
    assert run_session(_session(tiny, tmp_path, methods="hqq", bits="4", group="32"))["tiny-hqq-4b-g32"][1]["cache"] == "miss"
    assert run_session(_session(tiny, tmp_path, methods="hqq", bits="8"))["tiny-hqq-8b-g64"][1]["cache"] == "miss"
    other = make_llama(tmp_path / "other" / "tiny", seed=1)
    assert run_session(_session(other, tmp_path, methods="hqq", bits="4"))["tiny-hqq-4b-g64"][1]["cache"] == "miss"


def test_calibration_is_part_of_the_key_of_methods_that_use_it(tiny, tmp_path):
    first = run_session(_session(tiny, tmp_path, methods="gptq,hqq", bits="4", calibration_samples="32"))
    again = run_session(_session(tiny, tmp_path, methods="gptq,hqq", bits="4", calibration_samples="16"))
    assert first["tiny-gptq-4b-g64"][1]["cache"] == "miss" and again["tiny-gptq-4b-g64"][1]["cache"] == "miss"
    assert again["tiny-gptq-4b-g64"][0] != first["tiny-gptq-4b-g64"][0]
    assert again["tiny-hqq-4b-g64"][1]["cache"] == "hit"  # hqq uses no calibration data


def test_own_calibration_file_is_used_and_keyed(tiny, tmp_path):
    import json

    from pytest_qrel.data import heldout_texts

    own = tmp_path / "own.jsonl"
    own.write_text("".join(json.dumps({"text": t}) + "\n" for t in heldout_texts()[:24]))
    shipped = run_session(_session(tiny, tmp_path, methods="gptq", bits="4", calibration_samples="24"))
    session = _session(tiny, tmp_path, methods="gptq", bits="4", calibration_samples="24", calibration_file=str(own))
    assert session.calibration_texts() == heldout_texts()[:24]
    mine = run_session(session)
    assert mine["tiny-gptq-4b-g64"][1]["cache"] == "miss"
    assert mine["tiny-gptq-4b-g64"][0] != shipped["tiny-gptq-4b-g64"][0]
    with pytest.raises(pytest.UsageError, match=r"--qrel-calibration-samples: 25 asked for, but .*own.jsonl has 24"):
        _session(tiny, tmp_path, methods="gptq", bits="4", calibration_samples="25", calibration_file=str(own))


@pytest.mark.parametrize("method", ["hqq", "bnb", "gptq", "quanto"])
def test_corrupt_entry_is_rebuilt(tiny, tmp_path, method):
    vid = f"tiny-{method}-4b-g{128 if method == 'quanto' else 64}"
    kl, _ = run_session(_session(tiny, tmp_path, methods=method, bits="4"))[vid]
    # the quantized weights, not the base's stored KL outputs (shard-*.safetensors)
    (payload,) = [p for p in tmp_path.rglob("*.safetensors") if not p.name.startswith("shard-")]
    payload.write_bytes(payload.read_bytes()[: payload.stat().st_size // 2])  # truncated
    with pytest.warns(QrelCacheWarning, match="checksum mismatch"):
        kl2, info = run_session(_session(tiny, tmp_path, methods=method, bits="4"))[vid]
    assert info["cache"] == "miss" and kl2 == kl
    assert run_session(_session(tiny, tmp_path, methods=method, bits="4"))[vid][1]["cache"] == "hit"


def test_no_cache_writes_nothing(tiny, tmp_path):
    out = run_session(_session(tiny, tmp_path / "c", methods="rtn", bits="4", no_cache=True))
    assert out["tiny-rtn-4b-g64"][1]["cache"] == "off"
    assert not (tmp_path / "c").exists()


def test_concurrent_processes_quantize_once(tiny, tmp_path):
    code = textwrap.dedent(
        f"""
        import sys; sys.path.insert(0, {str(Path(__file__).parent)!r})
        from helpers import run_session, session_for
        from pathlib import Path
        out = run_session(session_for(Path({str(tiny)!r}), Path({str(tmp_path)!r}), methods="hqq", bits="3"))
        print("STATE", out["tiny-hqq-3b-g64"][1]["cache"], out["tiny-hqq-3b-g64"][0])
        """
    )
    procs = [subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True) for _ in range(2)]
    lines = [next(ln for ln in p.communicate(timeout=300)[0].splitlines() if ln.startswith("STATE")) for p in procs]
    states = sorted(line.split()[1] for line in lines)
    assert states == ["hit", "miss"]
    assert lines[0].split()[2] == lines[1].split()[2]


def _swap_in(source: Path, target: Path) -> None:
    """Put ``source``'s quantized files into the entry ``target`` and recompute its checksums,
    keeping the target's manifest meta: the entry verifies, but holds another variant."""
    import hashlib
    import json

    for f in source.iterdir():
        if f.name != "manifest.json":
            (target / f.name).write_bytes(f.read_bytes())
    manifest = json.loads((target / "manifest.json").read_text())
    manifest["files"] = {f.name: hashlib.sha256(f.read_bytes()).hexdigest()
                         for f in sorted(target.iterdir()) if f.name != "manifest.json"}
    (target / "manifest.json").write_text(json.dumps(manifest))


@pytest.mark.parametrize("method, why", [("hqq", "its layer .* stores 8-bit codes, but {low} is 2-bit"),
                                         ("rtn", "is unusable")])
def test_an_entry_holding_another_variant_is_discarded_and_requantized(tiny, tmp_path, method, why):
    """Issue 15: the 8-bit entry's files copied into the 2-bit entry (checksums recomputed)
    must not let the 2-bit variant be measured as 8-bit: each loaded layer's code width is
    checked against the variant, and the entry is discarded with a warning."""
    group = 64
    first = run_session(_session(tiny, tmp_path, methods=method, bits="2,8"))
    low, high = f"tiny-{method}-2b-g{group}", f"tiny-{method}-8b-g{group}"
    entries = {json_meta["variant"]: d for d in tmp_path.rglob("manifest.json")
               for json_meta in [__import__("json").loads(d.read_text())["meta"]] if "variant" in json_meta}
    _swap_in(entries[high].parent, entries[low].parent)
    with pytest.warns(QrelCacheWarning, match=why.format(low=low)):
        again = run_session(_session(tiny, tmp_path, methods=method, bits="2,8"))
    assert again[low][1]["cache"] == "miss" and again[low][0] == first[low][0]  # requantized: the same KL as before
    assert again[high][1]["cache"] == "hit"


def test_the_cache_key_does_not_depend_on_tokenizer_state(tiny, tmp_path):
    """Encoding text sets padding and truncation on a fast tokenizer: the key stays the same."""
    from pytest_qrel.variant_cache import tokenizer_digest

    session = _session(tiny, tmp_path, methods="hqq", bits="4")
    tokenizer = session.store.base(session.variants[0]).tokenizer
    before = tokenizer_digest(tokenizer)
    tokenizer(["a b c", "a much longer text here"], padding=True, truncation=True, max_length=8)
    assert tokenizer_digest(tokenizer) == before


def _unlockable(cache: Path) -> None:
    # every entry's lock lives in cache/<two hex digits>/: a file in each of their places makes
    # every lock and write an OSError, as a cache directory made read-only mid-run does (root,
    # whom tests may run as, ignores permission bits, so those cannot show it)
    for i in range(256):
        (cache / f"{i:02x}").write_text("not a directory")


def _full_disk():
    # writes past 64 KB fail with EFBIG (Python ignores SIGXFSZ), as on a full disk: the base's
    # safetensors shards then fail inside safetensors (SafetensorError, not an OSError)
    import contextlib
    import resource

    @contextlib.contextmanager
    def limited():
        soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
        resource.setrlimit(resource.RLIMIT_FSIZE, (64 * 1024, hard))
        try:
            yield
        finally:
            resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))

    return limited()


@pytest.mark.parametrize("topk", ["1024", "16"])  # 16: bounds that do not decide, full log-probs stored (issue 38)
@pytest.mark.parametrize("broken", ["unlockable", "full disk"])
def test_kl_base_outputs_the_cache_cannot_take_are_computed_without_it(tmp_path, broken, topk):
    """A cache directory that cannot be locked or written (read-only, full) costs the KL tests
    their caching, not their result: one warning, and the value of an uncached run."""
    import contextlib

    expected = session_for("zoo-xs", tmp_path / "ref", no_cache=True, kl_topk=topk)
    want = expected.kl_to_base(expected.variants[0])
    session = session_for("zoo-xs", tmp_path / "cache", kl_topk=topk)  # start-up checks the directory: usable then
    if broken == "unlockable":
        _unlockable(tmp_path / "cache")
    with _full_disk() if broken == "full disk" else contextlib.nullcontext():
        with pytest.warns(QrelCacheWarning) as caught:
            got = session.kl_to_base(session.variants[0])
    messages = [str(w.message) for w in caught]
    assert got == want
    assert sum("KL base outputs" in m and "computed without it" in m for m in messages) == 1, messages
    info = session.variant_info[session.variants[0].id]
    assert info["kl_base_forward_passes"] >= 1


def test_a_config_edited_between_runs_is_a_cache_miss(tmp_path):
    """The same weights under another config (here the MLP's activation) compute other outputs:
    a rerun on the same cache must measure what a fresh cache measures, not read the first run's."""
    import json
    import shutil

    from pytest_qrel.models import resolve_model

    model = tmp_path / "mymodel"
    shutil.copytree(resolve_model("zoo-xs")[1], model)
    first = run_session(_session(model, tmp_path / "cache", methods="hqq", bits="4"))
    config = json.loads((model / "config.json").read_text())
    config["hidden_act"] = "gelu"
    (model / "config.json").write_text(json.dumps(config))
    rerun = run_session(_session(model, tmp_path / "cache", methods="hqq", bits="4"))
    fresh = run_session(_session(model, tmp_path / "fresh", methods="hqq", bits="4"))
    (vid,) = first
    assert rerun[vid][0] == fresh[vid][0] != first[vid][0]
    assert rerun[vid][1]["cache"] == "miss"


@pytest.mark.parametrize("change", ["deleted", "overwritten", "swapped"])
def test_kl_base_outputs_changed_in_the_cache_mid_run_are_not_used(tmp_path, change):
    """The base's KL shards are read lazily, a batch at a time, for each variant: one deleted or
    changed in the cache after the entry was checked (another process, a cleanup) is found at its
    read and computed again, never read as it is (a shard swapped for another verifies as a file
    but holds the wrong batch's outputs)."""
    import shutil

    expected = session_for("zoo-xs", tmp_path / "ref", no_cache=True, methods="hqq", bits="4,8")
    want = expected.kl_to_base(expected.variants[1])
    session = session_for("zoo-xs", tmp_path / "cache", methods="hqq", bits="4,8")
    session.kl_to_base(session.variants[0])
    shards = sorted((tmp_path / "cache").rglob("shard-*.safetensors"))
    assert len(shards) >= 2
    if change == "deleted":
        shutil.rmtree(tmp_path / "cache")
    elif change == "overwritten":
        for shard in shards:
            shard.write_bytes(b"not a shard")
    else:
        first, second = shards[0].read_bytes(), shards[1].read_bytes()
        shards[0].write_bytes(second)
        shards[1].write_bytes(first)
    with pytest.warns(QrelCacheWarning, match="KL base outputs .* computed without it"):
        got = session.kl_to_base(session.variants[1])
    assert got == want
