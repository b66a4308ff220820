"""K variants cost K + 1 model evaluations across workers and reruns (issue 17 item 1): the
forward passes of every model are counted (a forward pre-hook on each model the store loads or
quantizes) in one process, on two workers (a model's variants spread over them), and in a
rerun. Two workers evaluate each model's outputs exactly as often as one process does, neither
computing what the other computed; a rerun evaluates the base zero times, and the results are
those of the single process."""

import json
from collections import Counter

COUNTING = '''
import os

import pytest_qrel.store as store

LOG = os.environ["QREL_FORWARD_LOG"]


def _count(model, tag):
    def hook(module, args):
        if module is model:  # not a copy of it (a variant quantized from a deep copy keeps its hooks)
            with open(LOG, "a") as f:
                f.write(f"{os.getpid()} {tag}\\n")
    model.register_forward_pre_hook(hook)


_load_base = store.load_base


def load_base(name, *args, **kwargs):
    loaded = _load_base(name, *args, **kwargs)
    _count(loaded.model, "base")
    return loaded


_quantize_or_load = store.ModelStore._quantize_or_load


def quantize_or_load(self, variant, base):
    model, info, state = _quantize_or_load(self, variant, base)
    _count(model, variant.id)
    return model, info, state


store.load_base = load_base
store.ModelStore._quantize_or_load = quantize_or_load
'''

# a small run of every property that evaluates models: calibration and confidence (a family),
# robustness (a family) and fuzzing, KL; four variants of one model
RUN = ["suites/", "-p", "no:randomly", "-q", "--qrel-models=zoo-xs", "--qrel-methods=hqq,rtn", "--qrel-bits=4,8",
       "--qrel-perturbations=word_swap,char_swap", "--qrel-intensities=2", "--qrel-qa-limit=30", "--qrel-samples=2",
       "--qrel-fuzz-examples=3", "--qrel-fuzz-batch=6", "--qrel-task-limit=30", "-k", "not scaling"]


def _run(pytester, monkeypatch, name, cache, *args):
    log = pytester.path / f"{name}.log"
    monkeypatch.setenv("QREL_FORWARD_LOG", str(log))
    # one torch thread in the single process as in each worker: a sum over two threads is
    # ordered otherwise, and a sampled answer at a probability boundary can change (the test
    # failed when run alone, outside xdist, whose workers set this for the runs they start)
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    result = pytester.runpytest_subprocess(*RUN, f"--qrel-cache-dir={cache}", f"--qrel-report-dir={name}", *args)
    assert result.ret in (0, 1), result.stdout.str()[-3000:]  # 1: a gate failed (measured all the same)
    lines = log.read_text().split() if log.exists() else []
    pids, tags = lines[0::2], lines[1::2]
    doc = json.loads((pytester.path / name / "results.json").read_text())
    results = json.dumps(sorted([r["test"], r["metric"], r["status"], r["value"]] for r in doc["results"]))
    return Counter(tags), {pid for pid in pids}, results, doc


def test_each_output_is_computed_once_across_two_workers_and_never_on_a_rerun(pytester, monkeypatch):
    import shutil
    from pathlib import Path

    import pytest_qrel

    shutil.copytree(Path(pytest_qrel.__file__).parent.parent / "suites", pytester.path / "suites")
    pytester.makeconftest(COUNTING)

    one, _, one_results, _ = _run(pytester, monkeypatch, "one", "cache-one")
    two, pids, two_results, _ = _run(pytester, monkeypatch, "two", "cache-two", "-n", "2")
    # the rerun in one process (its worker start-ups would cost 20 s and prove nothing more)
    again, _, again_results, doc = _run(pytester, monkeypatch, "again", "cache-two")

    variants = {"zoo-xs-hqq-4b-g64", "zoo-xs-hqq-8b-g64", "zoo-xs-rtn-4b-g64", "zoo-xs-rtn-8b-g64"}
    assert set(one) == {"base"} | variants and one["base"] > 0
    assert len(pids) == 2  # both workers evaluated models: the variants were spread
    # two workers: every model's forward passes exactly as many as in one process (nothing twice)
    assert two == one, (two, one)
    # a rerun: the base is never evaluated; a variant only for what is not kept (KL, its fuzz answers)
    assert again["base"] == 0, again
    assert all(again[v] < one[v] for v in variants), (again, one)
    # and the numbers are those of the single process
    assert two_results == one_results and again_results == one_results
    statuses = Counter(r["status"] for r in doc["results"])
    assert statuses["pass"] > 0 and sum(statuses.values()) > 20, statuses
