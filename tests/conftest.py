import os

# Tests never reach a model hub: everything they need ships in the repo.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

# pytester's in-process runs drop the modules a run imported; C extensions such as numpy
# and torch cannot be imported twice in one process, so they are imported here once.
import numpy  # noqa: E402,F401
import scipy.stats  # noqa: E402,F401
import torch  # noqa: E402,F401
import transformers  # noqa: E402,F401

pytest_plugins = ["pytester"]
