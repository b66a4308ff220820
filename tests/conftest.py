import gc
import os
import sys

import _pytest.pytester as _pytester
import pytest

# Tests never reach a model hub: everything they need ships in the repo.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# gptqmodel packs its weights with a C++ extension it compiles on first use (45-100 s with ninja
# on a fresh machine, as CI is); its Python path packs the same bytes (measured: the state dicts
# of zoo-m's gptq 2/4/8-bit variants hash identically either way) in no measurable extra time.
os.environ.setdefault("GPTQMODEL_DISABLE_PACK_EXT", "1")
# One torch thread per xdist worker (and per pytest it starts in a subprocess): `-n 2` on two
# cores with torch's default of a thread per core ran 4 threads on 2 cores, and the zoo's small
# matrices lose more to that contention than they gain from threads (measured: the robustness
# tests under -n 2 took 127 s with the default and 77 s with one thread each).
if os.environ.get("PYTEST_XDIST_WORKER"):
    os.environ.setdefault("OMP_NUM_THREADS", "1")

# pytester's in-process runs drop the modules a run imported; C extensions such as numpy
# and torch cannot be imported twice in one process, so they are imported here once.
import numpy  # noqa: F401
import scipy.stats  # noqa: F401
import torch

if os.environ.get("PYTEST_XDIST_WORKER"):
    torch.set_num_threads(int(os.environ["OMP_NUM_THREADS"]))
import transformers  # noqa: F401

sys.path.insert(0, os.path.dirname(__file__))  # tests/quanto_unpack.py
from quanto_unpack import use_torch_unpack

use_torch_unpack()

pytest_plugins = ["pytester"]


def _is_library_module(name: str) -> bool:
    """Whether a module is installed code (the standard library, site-packages, this package)
    rather than a test module a pytester run collected."""
    module = sys.modules.get(name)
    if module is None:  # a test's conftest may block an import with sys.modules[name] = None
        return False
    if name == "pytest_qrel" or name.startswith("pytest_qrel."):
        return True
    # a namespace package has no __file__, only its directories
    file = getattr(module, "__file__", None) or next(iter(getattr(module, "__path__", None) or ()), None)
    return file is None or str(file).startswith(_INSTALLED)


_INSTALLED = tuple(sorted({sys.prefix, sys.base_prefix, sys.exec_prefix}))


class _LibrariesStayImported(_pytester.SysModulesSnapshot):
    """pytester's in-process runs drop every module a run imported, so that the next run
    imports its test files afresh. Libraries must stay: torch registers its operators
    (quanto, bitsandbytes, torch.distributed) once per process and fails on a second import,
    and re-importing transformers and the backends would cost a subprocess's start-up on every
    run. Test modules (the shipped suites, a test's own files) are still dropped."""

    def __init__(self, preserve=None) -> None:
        super().__init__(preserve=lambda name: _is_library_module(name) or bool(preserve and preserve(name)))


_pytester.SysModulesSnapshot = _LibrariesStayImported


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    """What is alive when a test starts (the imported libraries, module fixtures) is frozen out
    of the garbage collector's scans; what the test creates is collected as before.

    The store calls gc.collect() each time it moves to another variant, as gptqmodel,
    accelerate and pytest itself do: in a process holding torch, transformers and the
    backends each full collection scanned ~10^6 objects, 0.3-0.4 s a call (17 s of the 40 s of
    test_second_run_loads_identical_models)."""
    gc.collect()
    gc.freeze()
