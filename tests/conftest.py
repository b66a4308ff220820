import os

# Tests never reach a model hub: everything they need ships in the repo.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# One torch thread per xdist worker (and per pytest it starts in a subprocess): `-n 2` on two
# cores with torch's default of a thread per core ran 4 threads on 2 cores, and the zoo's small
# matrices lose more to that contention than they gain from threads (measured: the robustness
# tests under -n 2 took 127 s with the default and 77 s with one thread each).
if os.environ.get("PYTEST_XDIST_WORKER"):
    os.environ.setdefault("OMP_NUM_THREADS", "1")

# pytester's in-process runs drop the modules a run imported; C extensions such as numpy
# and torch cannot be imported twice in one process, so they are imported here once.
import numpy  # noqa: E402,F401
import scipy.stats  # noqa: E402,F401
import torch  # noqa: E402,F401

if os.environ.get("PYTEST_XDIST_WORKER"):
    torch.set_num_threads(int(os.environ["OMP_NUM_THREADS"]))
import transformers  # noqa: E402,F401

pytest_plugins = ["pytester"]
