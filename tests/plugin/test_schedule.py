"""The plugin's xdist scheduler (issue 17): with -n and no --dist, and with --dist loadgroup
(whose grouping pytest 9.2 + xdist 3.8 lose), every test of one model runs on one worker."""

import re
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

from pytest_qrel.matrix import SCALING_GROUP
from pytest_qrel.schedule import model_scope, wants_own_scheduler

VARIANTS = [SimpleNamespace(id=i, model=m) for i, m in [
    ("zoo-s-hqq-4b-g64", "zoo-s"), ("zoo-xs-hqq-4b-g64", "zoo-xs"), ("zoo-s-x-rtn-8b-g64", "zoo-s-x")]]


@pytest.mark.parametrize("nodeid, scope", [
    ("suites/test_kl.py::test_kl_to_base[zoo-s-hqq-4b-g64]", "qrel-model:zoo-s"),
    ("suites/test_kl.py::test_kl_to_base[zoo-xs-hqq-4b-g64]", "qrel-model:zoo-xs"),
    ("suites/test_kl.py::test_kl_to_base[zoo-s-x-rtn-8b-g64]", "qrel-model:zoo-s-x"),  # not zoo-s
    ("suites/test_calibration.py::test_calibration_drift[zoo-s-hqq-4b-g64-zoo_recall]", "qrel-model:zoo-s"),
    ("suites/test_robustness.py::test_robustness[zoo-xs-hqq-4b-g64-typo-i4]", "qrel-model:zoo-xs"),
    ("suites/test_scaling.py::test_within_scaling_law[kl_to_base-zoo-s-hqq-4b-g64]", SCALING_GROUP),
    ("tests/test_other.py::test_plain", "tests/test_other.py::test_plain"),
    ("tests/test_other.py::test_param[zoo-s-hqq-4b-g64x]", "tests/test_other.py::test_param[zoo-s-hqq-4b-g64x]"),
])
def test_a_tests_scope_is_its_model(nodeid, scope):
    assert model_scope(nodeid, VARIANTS, ["kl_to_base"]) == scope


@pytest.mark.parametrize("workers, shared, scope", [
    (1, True, "qrel-model:zoo-s"),
    (3, True, "qrel-model:zoo-s"),  # three models, three workers: a model per worker
    (4, True, "qrel-variant:zoo-s-hqq-4b-g64"),  # fewer models than workers: variants spread
    (4, False, "qrel-model:zoo-s"),  # without a cache nothing is shared: the model stays whole
])
def test_variants_spread_only_with_fewer_models_than_workers_and_a_cache(workers, shared, scope):
    nodeid = "suites/test_calibration.py::test_calibration_drift[zoo-s-hqq-4b-g64-zoo_recall]"
    assert model_scope(nodeid, VARIANTS, ["kl_to_base"], workers, shared) == scope
    fitted = "suites/test_scaling.py::test_within_scaling_law[kl_to_base-zoo-s-hqq-4b-g64]"
    assert model_scope(fitted, VARIANTS, ["kl_to_base"], workers, shared) == SCALING_GROUP


@pytest.mark.parametrize("dist, args, wanted", [
    ("load", ["-n", "2"], True),  # -n alone: xdist sets load
    ("loadgroup", ["-n", "2", "--dist", "loadgroup"], True),
    ("load", ["-n", "2", "--dist", "load"], False),  # asked for by name
    ("load", ["-n", "2", "--dist=load"], False),
    ("loadscope", ["-n", "2"], False),  # e.g. from addopts
    ("no", [], False),
])
def test_the_scheduler_replaces_only_load_by_default_and_loadgroup(dist, args, wanted):
    config = SimpleNamespace(getoption=lambda name, default=None: dist,
                             invocation_params=SimpleNamespace(args=tuple(args)))
    assert wants_own_scheduler(config) is wanted


@pytest.mark.parametrize("workers", [["-n", "2"], ["-n", "2", "--dist", "loadgroup"],
                                     ["--tx", f"2*popen//python={sys.executable}", "--dist", "loadgroup"]],
                         ids=["n-alone", "loadgroup", "tx-popen"])
def test_one_models_tests_run_on_one_worker(pytester, workers):
    """Also with execnet workers named by --tx (as remote ones are: ``--tx ssh=host//python=...``;
    xdist distributes them only with a --dist), sharing one cache directory."""
    result = pytester.runpytest("--qrel-models=zoo-xs,zoo-s", "--qrel-methods=hqq,rtn", "--qrel-bits=4,8",
                                "--qrel-kl-threshold=4:9,8:9", "--qrel-cache-dir=cache", "-p", "no:randomly",
                                "-k", "test_kl_to_base", "-v", *workers)
    result.assert_outcomes(passed=8)
    _each_model_on_one_worker(result.stdout.str(), 8)


def _each_model_on_one_worker(out: str, tests: int) -> None:
    workers: dict[str, set[str]] = {}
    for worker, model in re.findall(r"\[(gw\d)\] \[ *\d+%\] PASSED \S+::test_kl_to_base\[(zoo-x?s)-", out):
        workers.setdefault(model, set()).add(worker)
    assert sum(1 for _ in re.finditer(r"\[gw\d\] \[ *\d+%\] PASSED", out)) == tests
    assert set(workers) == {"zoo-xs", "zoo-s"}
    assert all(len(w) == 1 for w in workers.values()), workers  # each model's variants on one worker


def test_the_suites_run_from_the_checkouts_root_keep_each_model_on_one_worker(tmp_path):
    """Issue 38 item 6: from this repository's root, pyproject.toml's addopts (``--dist=loadscope``,
    for the project's own tests) apply to the suites too; a --dist from addopts must not give xdist
    the schedule (by file: every model loaded on both workers, its KL on one and its calibration on
    the other). The other tests here run in temporary directories, where those addopts do not apply."""
    pytest.importorskip("xdist")
    root = Path(__file__).resolve().parents[2]
    args = [sys.executable, "-m", "pytest", "suites/test_kl.py", "suites/test_calibration.py", "-n", "2", "-v",
            "-p", "no:randomly", "--qrel-models=zoo-xs,zoo-s", "--qrel-methods=rtn", "--qrel-bits=8",
            f"--qrel-cache-dir={tmp_path / 'cache'}", f"--qrel-report-dir={tmp_path / 'report'}", "--qrel-progress=off"]
    # python -m puts the checkout first on sys.path: its pytest_qrel, whatever is installed
    run = subprocess.run(args, cwd=root, capture_output=True, text=True, timeout=600)
    out = run.stdout + run.stderr
    assert run.returncode == 0, out[-3000:]
    ran = re.findall(r"\[(gw\d)\] \[ *\d+%\] PASSED suites/(test_\w+)\.py::\w+\[(zoo-x?s)-rtn-", out)
    # 2 models x 1 variant: 2 KL tests and 2 x 3 calibration tests (the zoo's three tasks)
    assert len(ran) == 8 and {suite for _, suite, _ in ran} == {"test_kl", "test_calibration"}, out[-3000:]
    workers: dict[str, set[str]] = {}
    for worker, _, model in ran:
        workers.setdefault(model, set()).add(worker)
    assert set(workers) == {"zoo-xs", "zoo-s"}
    assert all(len(w) == 1 for w in workers.values()), workers  # each model's KL and calibration on one worker


THREADS_TEST = '''
import os

import torch


def test_threads():
    with open("threads.txt", "w") as f:  # a worker's output is not shown
        f.write(f"{os.environ.get('PYTEST_XDIST_WORKER')} {os.environ.get('OMP_NUM_THREADS')} {torch.get_num_threads()}")
'''


def test_each_worker_gets_its_share_of_the_cores(pytester, monkeypatch):
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    pytester.makepyfile(test_threads=THREADS_TEST)
    result = pytester.runpytest_subprocess("-n", "2", "-p", "no:randomly")
    result.assert_outcomes(passed=1)
    share = max(1, len(__import__("os").sched_getaffinity(0)) // 2)
    worker, env, threads = (pytester.path / "threads.txt").read_text().split()
    assert worker in ("gw0", "gw1") and env == str(share) and threads == str(share)


def test_a_thread_count_the_user_set_is_kept(pytester, monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    pytester.makepyfile(test_threads=THREADS_TEST)
    result = pytester.runpytest_subprocess("-n", "2", "-p", "no:randomly")
    result.assert_outcomes(passed=1)
    assert (pytester.path / "threads.txt").read_text().split()[1] == "3"  # left as the user set it


GPU_TEST = '''
import os

import pytest


@pytest.mark.parametrize("i", range(4))
def test_gpu(i):
    with open(f"gpu-{os.environ['PYTEST_XDIST_WORKER']}.txt", "w") as f:  # a worker's output is not shown
        f.write(os.environ.get("CUDA_VISIBLE_DEVICES", "unset"))
'''


def test_each_worker_owns_one_of_the_users_gpus(pytester, monkeypatch):
    """Item 3 of issue 17: each xdist worker's CUDA_VISIBLE_DEVICES is one entry of the user's
    list (never a device outside it), set when the worker starts, before anything runs on CUDA."""
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "3,GPU-9f2c")
    pytester.makepyfile(test_gpu=GPU_TEST)
    result = pytester.runpytest_subprocess("test_gpu.py", "-n", "2", "-p", "no:randomly", "--qrel-progress=off")
    result.assert_outcomes(passed=4)
    seen = {f.stem: f.read_text() for f in pytester.path.glob("gpu-gw*.txt")}
    assert seen == {"gpu-gw0": "3", "gpu-gw1": "GPU-9f2c"}
    # another project's run (no --qrel-* option, no shipped suite) keeps every GPU it was given
    for f in pytester.path.glob("gpu-gw*.txt"):
        f.unlink()
    result = pytester.runpytest_subprocess("test_gpu.py", "-n", "2", "-p", "no:randomly")
    result.assert_outcomes(passed=4)
    assert {f.read_text() for f in pytester.path.glob("gpu-gw*.txt")} == {"3,GPU-9f2c"}


@pytest.mark.parametrize("visible, count, expected", [
    ("2,5,7", 8, ["2", "5", "7", "2", "5", "7"]),  # round robin over the user's list, never 0, 1, ...
    (None, 3, ["0", "1", "2", "0", "1", "2"]),  # no list: every device the driver counts
    ("", 8, [None] * 6),  # the user hid every GPU: none is taken
    (None, 0, [None] * 6),  # no GPU at all (CPU)
])
def test_a_workers_gpu_is_always_one_the_user_made_visible(visible, count, expected):
    from pytest_qrel.engine import pin_worker_gpu, visible_gpus

    for worker in range(6):
        env = {} if visible is None else {"CUDA_VISIBLE_DEVICES": visible}
        allowed = visible_gpus(dict(env), lambda: count)
        got = pin_worker_gpu(worker, env, lambda: count)
        assert got == expected[worker] and (got is None or got in allowed)
        assert env.get("CUDA_VISIBLE_DEVICES") == (got if got is not None else visible)


def test_n_auto_is_one_worker_per_visible_gpu_in_a_qrel_run(monkeypatch):
    from pytest_qrel import plugin

    qrel = SimpleNamespace(getoption=lambda name, default=None: "zoo-m" if name == "qrel_models" else None,
                           invocation_params=SimpleNamespace(args=("--qrel-models=zoo-m", "-n", "auto")))
    suites = SimpleNamespace(getoption=lambda name, default=None: None,
                             invocation_params=SimpleNamespace(args=(str(plugin.suites_dir() / "test_kl.py"),)))
    other = SimpleNamespace(getoption=lambda name, default=None: None,
                            invocation_params=SimpleNamespace(args=("tests/", "-n", "auto")))
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "1,3")
    assert plugin.pytest_xdist_auto_num_workers(qrel) == 2 and plugin.pytest_xdist_auto_num_workers(suites) == 2
    assert plugin.pytest_xdist_auto_num_workers(other) is None  # another project's run: xdist counts the CPUs
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    assert plugin.pytest_xdist_auto_num_workers(qrel) is None  # no GPU: xdist counts the CPUs
