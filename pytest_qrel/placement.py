"""Where a model's weights live (issue 38 item 5): ``--qrel-device-map=auto`` loads base and
variants through accelerate's big-model inference (sharded over the worker's GPUs, offloaded to
CPU or disk within ``--qrel-max-memory``), ``--qrel-dtype`` picks the compute dtype, and
``--qrel-gpus-per-worker`` gives each xdist worker several GPUs (docs/big-models.md).

An offloaded base keeps its disk-resident weights on the meta device, read back by accelerate's
hooks for each forward pass. A quantized variant of it is built layer by layer: each layer is
read back (``offloaded_value``), quantized and kept; the rest is read back at full precision, and
the variant is held whole on the worker's first device at its quantized size."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    import torch

DEVICE_MAP = "--qrel-device-map"
MAX_MEMORY = "--qrel-max-memory"
DTYPE = "--qrel-dtype"
GPUS_PER_WORKER = "--qrel-gpus-per-worker"
# where the weights are placed changes no number (an offloaded run's KL is an in-memory run's): runs on
# machines of other sizes merge and resume (options.PER_RUN, options.WHERE); --qrel-dtype changes them
WHERE = frozenset({DEVICE_MAP, MAX_MEMORY, GPUS_PER_WORKER})
DEVICE_MAPS = ("none", "auto")
DTYPES = ("auto", "float32", "bfloat16", "float16")
# methods that quantize one Linear at a time from its weights alone: they can quantize an offloaded base
# as its layers are read back; the others run the whole model (calibration) or load it their own way
OFFLOADABLE_METHODS = ("rtn", "hqq")
_SIZE = re.compile(r"(\d+(?:\.\d+)?)(B|KB|MB|GB|TB|KiB|MiB|GiB|TiB)")


def options(option: Callable[..., Any], choice_of: Callable[..., Any], integer_in: Callable[..., Any]) -> tuple:
    """The four options, as ``options.Option``s (passed in: options.py imports this module)."""
    return (
        option(DEVICE_MAP, "none: load each model whole on the worker's device; auto: through accelerate's "
               "big-model inference, sharded over the worker's GPUs and offloaded to CPU, then disk, within "
               f"{MAX_MEMORY} (docs/big-models.md) (default: none)", "none", parse=choice_of(DEVICE_MAPS)),
        option(MAX_MEMORY, f"with {DEVICE_MAP}=auto, the most memory per device as device=size pairs, e.g. "
               "cpu=2GiB or 0=20GiB,cpu=64GiB (GPU indices among the worker's own); the rest goes to disk "
               "(default: what accelerate finds free)", None, parse=max_memory),
        option(DTYPE, "dtype the base is computed in: auto (float32 on CPU, bfloat16 on GPUs), float32, "
               "bfloat16 (half the base's memory on CPU) or float16 (default: auto)", "auto",
               parse=choice_of(DTYPES)),
        option(GPUS_PER_WORKER, "GPUs each xdist worker owns, consecutive entries of CUDA_VISIBLE_DEVICES "
               f"(with {DEVICE_MAP}=auto a model is sharded over them) (default: 1)", "1", parse=integer_in(1)),
    )


def max_memory(flag: str, value: Any) -> dict[int | str, str]:
    """``cpu=2GiB`` or ``0=20GiB,cpu=64GiB`` as accelerate's ``max_memory`` ({0: "20GiB", "cpu": "64GiB"})."""
    usage = f"{flag}: expected device=size pairs (device: cpu or a GPU index; size: a number and B, KB, MB, GB, " \
            f"KiB, MiB or GiB, e.g. cpu=2GiB or 0=20GiB,cpu=64GiB), got {value!r}"
    out: dict[int | str, str] = {}
    for pair in str(value).split(","):
        device, eq, size = (part.strip() for part in pair.partition("="))
        if not eq or not (device == "cpu" or device.isdigit()) or not _SIZE.fullmatch(size):
            raise pytest.UsageError(usage)
        key: int | str = int(device) if device.isdigit() else device
        if key in out:
            raise pytest.UsageError(f"{flag}: device {device!r} given twice in {value!r}")
        out[key] = size
    return out


@dataclass(frozen=True)
class Placement:
    """The run's placement settings (QrelConfig.placement)."""

    device_map: str = "none"
    max_memory: dict | None = None
    dtype: str = "auto"
    gpus_per_worker: int = 1

    @property
    def dispatched(self) -> bool:
        return self.device_map == "auto"

    def torch_dtype(self, device: torch.device) -> torch.dtype:
        """auto: full precision on CPU (no fast half-precision kernels there), bfloat16 on GPUs."""
        import torch

        if self.dtype == "auto":
            return torch.float32 if device.type == "cpu" else torch.bfloat16
        return getattr(torch, self.dtype)

    def load_kwargs(self, offload_dir: str) -> dict[str, Any]:
        """from_pretrained's arguments for accelerate's big-model inference ({} without it)."""
        if not self.dispatched:
            return {}
        return {"device_map": "auto", "offload_folder": offload_dir,
                **({"max_memory": dict(self.max_memory)} if self.max_memory else {})}


def worker_gpus(worker: int, per_worker: int, gpus: list[str]) -> list[str]:
    """The entries of ``gpus`` xdist worker ``worker`` owns: ``per_worker`` consecutive ones
    (all of them if there are fewer), round robin as one per worker is (worker i, one each:
    entry i mod n)."""
    if not gpus:
        return []
    take = min(per_worker, len(gpus))
    return [gpus[(worker * take + k) % len(gpus)] for k in range(take)]


def is_dispatched(model: torch.nn.Module) -> bool:
    """Whether accelerate placed ``model`` (its hooks move weights and inputs)."""
    return getattr(model, "hf_device_map", None) is not None


def offloaded_value(model: torch.nn.Module, name: str) -> torch.Tensor:
    """The stored value of ``model``'s tensor ``name`` when accelerate offloaded it (a meta
    tensor in the model): read from the weights map of the hook on its module."""
    module_name, _, leaf = name.rpartition(".")
    module = model.get_submodule(module_name)
    hook = getattr(module, "_hf_hook", None)
    for h in getattr(hook, "hooks", None) or ([hook] if hook is not None else []):
        weights = getattr(h, "weights_map", None)
        if weights is not None and leaf in weights:
            return weights[leaf]
    raise KeyError(f"{name}: on the meta device and in no accelerate weights map")


def real_tensors(model: torch.nn.Module) -> Iterator[tuple[str, torch.Tensor]]:
    """``model.state_dict()``'s items, offloaded ones read back one at a time."""
    for name, tensor in model.state_dict().items():
        yield name, offloaded_value(model, name) if tensor.device.type == "meta" else tensor


def read_back(module: torch.nn.Module, root: torch.nn.Module, prefix: str, device: torch.device) -> torch.nn.Module:
    """``module`` (named ``prefix`` in ``root``, a copy of a dispatched model) with its offloaded
    tensors read back onto ``device`` and its accelerate hooks removed."""
    from accelerate.hooks import remove_hook_from_module
    from accelerate.utils import set_module_tensor_to_device

    for name, tensor in list(module.named_parameters()) + list(module.named_buffers()):
        full = f"{prefix}.{name}" if prefix else name
        value = offloaded_value(root, full) if tensor.device.type == "meta" else tensor
        set_module_tensor_to_device(module, name, device, value=value)
    return remove_hook_from_module(module, recurse=True)


def settle(model: torch.nn.Module, base: torch.nn.Module, device: torch.device) -> torch.nn.Module:
    """A quantized copy of ``base`` when accelerate dispatched it, as a plain model on ``device``:
    what is still offloaded (the layers left at full precision, embeddings, norms) read back,
    hooks removed; any other model as it is (a checkpoint a library loaded with its own device map)."""
    if not (is_dispatched(base) and is_dispatched(model)):
        return model
    read_back(model, model, "", device)
    if hasattr(model, "hf_device_map"):
        del model.hf_device_map
    return model


def execution_device(module: torch.nn.Module) -> torch.device:
    """The device accelerate computes ``module`` on (its hook's), CPU without one."""
    import torch

    device = getattr(getattr(module, "_hf_hook", None), "execution_device", None)
    return torch.device(device) if device is not None else torch.device("cpu")
