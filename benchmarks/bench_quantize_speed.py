"""Quantizing and caching at real size (issue 38 item 4): quantize time over one bare forward pass, cache MB/s.

On a checkpoint of Llama-3.2-1B's shape (``fixtures/build_real_shape.py``; ``--layers`` for a
smaller body), in this one process:

- one bare forward pass of the base over the KL suite's windows of the shipped prose
  (``fixtures/data/alice_in_wonderland.txt``, 1024 scored tokens, context 256: the windows
  ``pytest_qrel.rows.windows`` cuts, full logits, no_grad), after a warm-up;
- each ``--variants`` (method:bits, group size 64 unless ``--group-size``): the backend's
  ``quantize`` (what a cache miss runs; target <= 2x the forward pass), then the variant's cache
  entry written (``QuantCache.write`` with the backend's ``save_quantized``: safetensors, then the
  manifest's SHA-256) and read back (``QuantCache.read``, which verifies every file, plus
  ``load_quantized``), in MB/s of the entry's bytes, against a plain ``safetensors.torch``
  ``save_file`` / ``load_file`` of the same tensors and a raw write (``os.write`` of one buffer,
  then fsync) and read of as many bytes: what the disk and the page cache allow. The reads all
  come from the page cache (the files were just written): the ratios compare the code, not the disk.

    python fixtures/build_real_shape.py --out /tmp/real-shape-2 --layers 2
    python benchmarks/bench_quantize_speed.py --checkpoint /tmp/real-shape-2
    python benchmarks/bench_quantize_speed.py --checkpoint /tmp/real-shape-2 --variants rtn:4 --repeat 2
"""

from __future__ import annotations

import argparse
import gc
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

KL_TEXT = ROOT / "fixtures" / "data" / "alice_in_wonderland.txt"


def forward_seconds(base, tokens: int, context: int) -> tuple[float, int]:
    """Seconds of one bare forward pass of ``base`` over the KL windows, and the windows."""
    import torch

    from pytest_qrel.data.text import read_kl_text
    from pytest_qrel.rows import windows

    batches = windows(base.tokenizer, read_kl_text(str(KL_TEXT)).read, context, tokens, base.model.config.vocab_size)
    with torch.no_grad():
        base.model(input_ids=batches[0].input_ids[:1, :8])  # warm-up
        start = time.perf_counter()
        for b in batches:
            base.model(input_ids=b.input_ids, attention_mask=b.attention_mask).logits
        seconds = time.perf_counter() - start
    return seconds, sum(len(b.input_ids) for b in batches)


def raw_disk(path: Path, size: int) -> tuple[float, float]:
    """(write, read) seconds of ``size`` bytes as one buffer: os.write then fsync, then a read."""
    buf = os.urandom(min(size, 1 << 26)) * (size // (1 << 26) + 1)
    data = memoryview(buf)[:size]
    start = time.perf_counter()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
    try:
        os.write(fd, data) if size < (1 << 31) else [os.write(fd, data[i:i + (1 << 30)]) for i in range(0, size, 1 << 30)]
        os.fsync(fd)
    finally:
        os.close(fd)
    written = time.perf_counter() - start
    del buf, data
    start = time.perf_counter()
    path.read_bytes()
    return written, time.perf_counter() - start


def measure_variant(base, method: str, bits: int, group: int, work: Path, forward: float) -> None:
    from safetensors.torch import load_file, save_file

    from pytest_qrel.cache import QuantCache
    from pytest_qrel.quant import get_backend

    backend = get_backend(method)
    gc.collect()
    start = time.perf_counter()
    model, info = backend.quantize(base, bits, group)
    quantize = time.perf_counter() - start
    cache = QuantCache(work / "cache")
    key = f"{method}{bits}" + "0" * 60
    start = time.perf_counter()
    # fsync as the raw write does: the entry is then on disk, not only in the page cache
    def save(directory: Path, quantized=model) -> None:
        backend.save_quantized(quantized, info.quantized_layers, directory)
        _sync(directory)

    entry = cache.write(key, save, {})
    write = time.perf_counter() - start
    size = sum(p.stat().st_size for p in entry.directory.iterdir())
    tensors = {f"{n}::{k}": v.detach().cpu().contiguous() for n in info.quantized_layers
               for k, v in model.get_submodule(n).state_dict().items()}
    del model
    gc.collect()
    start = time.perf_counter()
    read = cache.read(key)
    assert read is not None, "the entry just written did not verify"
    loaded = backend.load_quantized(base, bits, group, info.quantized_layers, read.directory)
    reload = time.perf_counter() - start
    del loaded
    gc.collect()
    plain = work / "plain.safetensors"
    start = time.perf_counter()
    save_file(tensors, str(plain))
    _sync_file(plain)
    plain_write = time.perf_counter() - start
    start = time.perf_counter()
    load_file(str(plain))
    plain_read = time.perf_counter() - start
    del tensors
    raw_write, raw_read = raw_disk(work / "raw.bin", size)
    for p in (plain, work / "raw.bin"):
        p.unlink()
    mb = size / 1e6
    print(f"{method}:{bits} g{group}: quantize {quantize:6.1f} s = {quantize / forward:5.2f}x the forward pass "
          f"(target <= 2)  entry {mb:7.1f} MB")
    print(f"   write: cache {mb / write:7.0f} MB/s  plain save_file {mb / plain_write:7.0f} MB/s  "
          f"raw {mb / raw_write:7.0f} MB/s   (cache / raw {raw_write / write:4.2f})")
    print(f"   read:  cache {mb / reload:7.0f} MB/s  plain load_file {mb / plain_read:7.0f} MB/s  "
          f"raw {mb / raw_read:7.0f} MB/s   (cache / raw {raw_read / reload:4.2f}; the cache's read "
          "verifies the digests and rebuilds the model)")


def _sync(directory: Path) -> None:
    for p in directory.iterdir():
        _sync_file(p)


def _sync_file(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--checkpoint", type=Path, required=True, help="a build_real_shape.py directory")
    parser.add_argument("--variants", default="rtn:4,rtn:8,hqq:4,hqq:8", help="method:bits,...")
    parser.add_argument("--group-size", type=int, default=64)
    parser.add_argument("--tokens", type=int, default=1024)
    parser.add_argument("--context", type=int, default=256)
    parser.add_argument("--work", type=Path, default=None, help="where the cache entries go (default: a temporary dir)")
    args = parser.parse_args()
    import torch

    from pytest_qrel.cache import model_digest
    from pytest_qrel.models import load_base

    start = time.perf_counter()
    base = load_base(args.checkpoint.name, str(args.checkpoint), torch.device("cpu"))
    print(f"{args.checkpoint}: {base.params / 1e6:.0f}M parameters, loaded in {time.perf_counter() - start:.1f} s; "
          f"torch threads {torch.get_num_threads()}, load average {os.getloadavg()[0]:.1f}")
    start = time.perf_counter()
    model_digest(base.model)
    digest = time.perf_counter() - start
    weights = sum(p.numel() * p.element_size() for p in base.model.state_dict().values())
    print(f"base digest (model_digest): {digest:.1f} s, {weights / 1e6 / digest:.0f} MB/s")
    forward, windows = forward_seconds(base, args.tokens, args.context)
    print(f"one bare forward pass over {windows} windows ({args.tokens} tokens, context {args.context}): {forward:.1f} s")
    with tempfile.TemporaryDirectory(prefix="qrel-qspeed-", dir=args.work) as tmp:
        for spec in args.variants.split(","):
            method, bits = spec.split(":")
            measure_variant(base, method, int(bits), args.group_size, Path(tmp), forward)
    print(f"load average at the end {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
