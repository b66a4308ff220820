"""The placement options' parsing and each xdist worker's GPUs (issue 38 item 5): pure
arithmetic, tested here as no GPU is at hand."""

import pytest

from pytest_qrel.engine import first_gpu_index, pin_worker_gpu
from pytest_qrel.placement import Placement, max_memory, worker_gpus


@pytest.mark.parametrize("value, parsed", [
    ("cpu=2GiB", {"cpu": "2GiB"}),
    ("0=20GiB,cpu=64GiB", {0: "20GiB", "cpu": "64GiB"}),
    (" 1 = 1.5GB , 0=512MiB", {1: "1.5GB", 0: "512MiB"}),
])
def test_max_memory_parses_device_size_pairs(value, parsed):
    assert max_memory("--qrel-max-memory", value) == parsed


@pytest.mark.parametrize("value", ["", "cpu", "cpu=", "=2GiB", "cpu=2", "cpu=2gb", "cuda:0=2GiB", "cpu=-1GiB",
                                   "cpu=2GiB,", "disk=2GiB", "cpu=2GiB,cpu=3GiB"])
def test_a_bad_max_memory_is_a_usage_error_naming_the_option(value):
    with pytest.raises(pytest.UsageError, match="^--qrel-max-memory: "):
        max_memory("--qrel-max-memory", value)


def test_the_default_placement_loads_as_before():
    import torch

    default = Placement()
    assert not default.dispatched and default.load_kwargs("/tmp/x") == {}
    assert default.torch_dtype(torch.device("cpu")) == torch.float32
    assert default.torch_dtype(torch.device("cuda", 0)) == torch.bfloat16
    auto = Placement("auto", {"cpu": "1GiB"})
    assert auto.load_kwargs("/tmp/x") == {"device_map": "auto", "offload_folder": "/tmp/x", "max_memory": {"cpu": "1GiB"}}


@pytest.mark.parametrize("per_worker, gpus, expected", [
    (1, ["0", "1", "2"], [["0"], ["1"], ["2"], ["0"]]),  # one each: round robin, as before
    (2, ["0", "1", "2", "3"], [["0", "1"], ["2", "3"], ["0", "1"], ["2", "3"]]),
    (2, ["3", "5", "GPU-9f"], [["3", "5"], ["GPU-9f", "3"], ["5", "GPU-9f"], ["3", "5"]]),  # only the user's entries
    (4, ["0", "1"], [["0", "1"]] * 4),  # more than there are: all of them
    (2, [], [[]] * 4),
])
def test_each_worker_owns_its_gpus(per_worker, gpus, expected):
    assert [worker_gpus(w, per_worker, gpus) for w in range(4)] == expected
    for w in range(4):
        env = {"CUDA_VISIBLE_DEVICES": ",".join(gpus)}
        got = pin_worker_gpu(w, env, per_worker=per_worker)
        assert got == (",".join(expected[w]) if gpus else None)
        assert env["CUDA_VISIBLE_DEVICES"] == (got if got is not None else "")


def test_an_unpinned_workers_first_gpu_is_its_first_own_index():
    # CUDA initialised before pinning: every GPU visible, the worker takes the first of its own
    assert [first_gpu_index(f"gw{w}", 2, 4) for w in range(3)] == [0, 2, 0]
    assert [first_gpu_index(f"gw{w}", 1, 3) for w in range(4)] == [0, 1, 2, 0]
