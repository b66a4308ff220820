"""Bytes of the stored base outputs per scored token over llama.cpp's, with the bound width (issue 16).

llama.cpp's ``--kl-divergence-base`` file keeps every log-prob of every scored token at 16 bits:
``2 * vocab + 8`` bytes per token. The KL suite keeps, per scored token, the base's top-k
log-probs and ids plus the three numbers its bounds need (``metrics/topk.py``). For each model
and each ``--qrel-kl-topk`` of ``--topk``, in one process: the base's outputs on the text are
computed into a fresh cache, the shards' bytes on disk are divided by the scored tokens and by
llama.cpp's ``2 * vocab + 8`` at the same vocabulary (target <= 1/100), and the mean KL's
certified bound width (upper - lower, nats) of the model's 8-bit hqq variant is printed beside
it, with the exact KL it brackets (``--qrel-kl-topk=all``'s value).

Models: zoo names, checkpoint directories, or ``padded`` (zoo-l, trained, with its vocabulary
padded to Llama 3's 128,256 tokens: ``fixtures/build_big_vocab.py --padded``, built in a
temporary directory). The text is the zoo's held-out sentences written to a file and read
through ``--qrel-kl-text`` (windows of ``--context`` tokens, the second half scored), capped at
``--tokens`` scored tokens.

    python benchmarks/bench_kl_storage.py                           # padded and zoo-l, k = 64, 256, 1024
    python benchmarks/bench_kl_storage.py --models padded --topk 256,1024 --tokens 4096
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "fixtures"))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")


def session(model: str, topk: str, text: Path, context: int, tokens: int, cache: Path):
    from pytest_qrel.session import QrelConfig, QrelSession

    values = {"qrel_models": model, "qrel_methods": "hqq", "qrel_bits": "8", "qrel_cache_dir": str(cache),
              "qrel_report_dir": str(cache / "report"), "qrel_kl_threshold": "8:9", "qrel_kl_topk": topk,
              "qrel_kl_text": str(text), "qrel_kl_context": str(context), "qrel_kl_tokens": str(tokens)}
    return QrelSession(QrelConfig.from_values(values, Path.cwd()), active=True, is_worker=False)


def measure(model: str, topk: str, text: Path, context: int, tokens: int) -> dict:
    """One fresh cache: the base's stored outputs (bytes, tokens) and the 8-bit variant's bounds."""
    with tempfile.TemporaryDirectory(prefix="qrel-bench-kl-storage-") as tmp:
        s = session(model, topk, text, context, tokens, Path(tmp))
        (variant,) = [v for v in s.variants if not v.skip_reason]
        kl = s.measures["kl"]
        start = time.perf_counter()
        stored = kl.base_outputs(variant)
        store_seconds = time.perf_counter() - start
        size = sum(f.stat().st_size for f in stored.entry.directory.glob("shard-*.safetensors"))
        vocab = int(s.base_model(variant).model.get_output_embeddings().weight.shape[0])
        values = kl.token_values(variant)
        return {"vocab": vocab, "tokens": stored.tokens, "bytes": size, "store_seconds": store_seconds,
                "lower": float(values.lower.mean()), "upper": float(values.upper.mean()),
                "tail_tokens": float((values.upper - values.lower > 0.1).mean())}


def main() -> None:
    from build_big_vocab import build_padded_checkpoint

    from pytest_qrel.data import heldout_texts

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--models", default="padded,zoo-l")
    p.add_argument("--topk", default="64,256,1024")
    p.add_argument("--tokens", type=int, default=2048, help="scored tokens (default: 2048)")
    p.add_argument("--context", type=int, default=128, help="tokens per window (default: 128)")
    args = p.parse_args()
    with tempfile.TemporaryDirectory(prefix="qrel-bench-kl-storage-models-") as work:
        work = Path(work)
        text = work / "heldout.txt"
        text.write_text("\n".join(heldout_texts()) + "\n")
        for name in args.models.split(","):
            model = str(build_padded_checkpoint(work / "padded")) if name == "padded" else name
            exact = measure(model, "all", text, args.context, args.tokens)
            llama = 2 * exact["vocab"] + 8
            print(f"{name}: vocabulary {exact['vocab']:,}, {exact['tokens']:,} scored tokens; llama.cpp stores "
                  f"{llama:,} B per token; exact KL of 8-bit hqq {exact['lower']:.3g} nats "
                  f"(all: {exact['bytes'] / exact['tokens']:,.0f} B per token, {exact['bytes'] / exact['tokens'] / llama:.3f} "
                  "of llama.cpp)", flush=True)
            for k in args.topk.split(","):
                r = measure(model, k, text, args.context, args.tokens)
                per_token = r["bytes"] / r["tokens"]
                width = r["upper"] - r["lower"]
                print(f"  top-{k:<5} {per_token:9,.0f} B per token = {per_token / llama:.4f} of llama.cpp (target <= 0.01)  "
                      f"bound {r['lower']:.4g}..{r['upper']:.4g}, width {width:.3g} nats (zoo target < 1e-3)  "
                      f"tokens with a width over 0.1 nats: {r['tail_tokens']:.1%}  stored in {r['store_seconds']:.1f} s",
                      flush=True)


if __name__ == "__main__":
    main()
