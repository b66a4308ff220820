"""Models larger than memory (issue 38 item 5): --qrel-device-map=auto with a --qrel-max-memory
smaller than the model offloads layers to disk through accelerate's big-model inference, and the
gate measures the same KL as with the model in memory; the placement options' bad values and
combinations are usage errors naming the option."""

import json
import shutil
from pathlib import Path

import pytest

# records where accelerate placed each base the store loads (a real load: nothing replaced)
RECORDING = '''
import json
import os

import pytest_qrel.store as store

_load_base = store.load_base


def load_base(*args, **kwargs):
    loaded = _load_base(*args, **kwargs)
    with open(os.environ["QREL_PLACEMENT_LOG"], "a") as f:
        f.write(json.dumps(getattr(loaded.model, "hf_device_map", None)) + "\\n")
    return loaded


store.load_base = load_base
'''

RUN = ["suites/test_kl.py", "-p", "no:randomly", "-q", "--qrel-models=zoo-l", "--qrel-methods=rtn,hqq",
       "--qrel-bits=4", "--qrel-kl-tokens=2048", "--qrel-progress=off"]
ZOO_L_BYTES = 196_928 * 4  # its float32 weights (fixtures/zoo/zoo-l/model.safetensors)


def _kl(pytester, monkeypatch, name, *args):
    log = pytester.path / f"{name}.log"
    monkeypatch.setenv("QREL_PLACEMENT_LOG", str(log))
    result = pytester.runpytest_subprocess(*RUN, f"--qrel-cache-dir={name}-cache", f"--qrel-report-dir={name}", *args)
    assert result.ret == 0, result.stdout.str()[-3000:]
    records = json.loads((pytester.path / name / "results.json").read_text())["results"]
    maps = [json.loads(line) for line in log.read_text().splitlines()]
    return {r["variant"]: r["value"] for r in records if r["metric"] == "kl_to_base"}, maps


def test_an_offloaded_base_gives_the_kl_of_one_in_memory(pytester, monkeypatch):
    import pytest_qrel

    shutil.copytree(Path(pytest_qrel.__file__).parent.parent / "suites", pytester.path / "suites")
    pytester.makeconftest(RECORDING)
    in_memory, maps = _kl(pytester, monkeypatch, "memory")
    assert maps == [None]  # loaded whole, as before
    # 600 KB of CPU memory for a 788 KB model: its decoder layers go to disk
    offloaded, maps = _kl(pytester, monkeypatch, "offloaded", "--qrel-device-map=auto", "--qrel-max-memory=cpu=600KB")
    assert 600_000 < ZOO_L_BYTES and len(maps) == 1
    assert "disk" in maps[0].values() and "cpu" in maps[0].values(), maps  # some layers offloaded, some not
    assert set(offloaded) == set(in_memory) == {"zoo-l-rtn-4b-g64", "zoo-l-hqq-4b-g64"}
    for variant, kl in in_memory.items():
        assert kl > 0 and offloaded[variant] == pytest.approx(kl, rel=1e-5, abs=0), (variant, kl, offloaded[variant])


@pytest.mark.parametrize("args, message", [
    (["--qrel-device-map=auto", "--qrel-max-memory=cpu2GiB"],
     "*--qrel-max-memory: expected device=size pairs (device: cpu or a GPU index*got 'cpu2GiB'*"),
    (["--qrel-device-map=auto", "--qrel-max-memory=cpu=2 lots"], "*--qrel-max-memory: expected device=size pairs*"),
    (["--qrel-device-map=auto", "--qrel-max-memory=gpu0=2GiB"], "*--qrel-max-memory: expected device=size pairs*"),
    (["--qrel-device-map=auto", "--qrel-max-memory=cpu=1GiB,cpu=2GiB"], "*--qrel-max-memory: device 'cpu' given twice*"),
    (["--qrel-max-memory=cpu=2GiB"], "*--qrel-max-memory: applies only with --qrel-device-map=auto*"),
    (["--qrel-device-map=sharded"], "*--qrel-device-map: expected one of none, auto, but got 'sharded'*"),
    (["--qrel-dtype=int8"], "*--qrel-dtype: expected one of auto, float32, bfloat16, float16, but got 'int8'*"),
    (["--qrel-gpus-per-worker=0"], "*--qrel-gpus-per-worker: expected one integer >= 1, but got '0'*"),
    (["--qrel-device-map=auto", "--qrel-methods=rtn,gptq"], "*--qrel-device-map=auto: gptq cannot quantize an "
                                                            "offloaded base*use rtn, hqq*"),
])
def test_bad_placement_options_are_usage_errors(pytester, args, message):
    result = pytester.runpytest("--qrel-models=zoo-xs", "--qrel-bits=8", *args)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([message])


def test_bfloat16_halves_the_bases_memory_and_changes_its_variants_cache_key():
    import torch

    from pytest_qrel.models import load_base
    from pytest_qrel.placement import Placement
    from pytest_qrel.variant_cache import base_digests

    source = str(Path(__file__).resolve().parents[2] / "fixtures" / "zoo" / "zoo-s")
    full = load_base("zoo-s", source, torch.device("cpu"))
    half = load_base("zoo-s", source, torch.device("cpu"), placement=Placement(dtype="bfloat16"))
    same = load_base("zoo-s", source, torch.device("cpu"), placement=Placement(dtype="float32"))

    def size(m):
        return sum(p.numel() * p.element_size() for p in m.model.parameters())

    assert full.dtype == torch.float32 and half.dtype == torch.bfloat16
    assert size(half) * 2 == size(full)
    # the variants' cache key holds the base's weights digest: another dtype, another entry; auto on CPU is float32
    assert base_digests(half).weights != base_digests(full).weights == base_digests(same).weights
