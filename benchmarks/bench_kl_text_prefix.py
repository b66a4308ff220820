"""What reading --qrel-kl-text a prefix at a time saves (issue 34): the time and peak memory
of cutting the KL windows from a one-line file of megabytes, the whole file read and
tokenized (as before) against only the prefix the windows need (``rows.windows`` over
``KLText.prefix``), each in a fresh process; and the same for a 20 KB file.

    python benchmarks/bench_kl_text_prefix.py [--mb 8.7] [--tokens 64] [--context 512]

Prints each way's seconds and peak RSS, and the ratios whole / prefix."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

CHILD = """
import json, resource, sys, time
from pathlib import Path
from transformers import AutoTokenizer
from pytest_qrel.data.text import read_kl_text
from pytest_qrel.models import fixtures_dir
from pytest_qrel.rows import windows

path, way, context, tokens = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
tok = AutoTokenizer.from_pretrained(fixtures_dir() / "zoo" / "zoo-xs")
tok("warm up")
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
start = time.perf_counter()
if way == "whole":  # before issue 34: the file read whole, tokenized whole, then cut
    whole = Path(path).read_text(encoding="utf-8")
    ids = tok(whole)["input_ids"]
    count = min(len(ids) // context, max(1, tokens // (context - context // 2)))
    rows = [ids[i * context:(i + 1) * context] for i in range(count)]
else:
    rows = windows(tok, read_kl_text(path).prefix, context, tokens, 1024)
seconds = time.perf_counter() - start
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"seconds": seconds, "peak_mb": peak / 1024, "added_mb": (peak - before) / 1024}))
"""


def measure(path: Path, way: str, context: int, tokens: int) -> dict:
    env = {"PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    out = subprocess.run([sys.executable, "-c", CHILD, str(path), way, str(context), str(tokens)],
                         capture_output=True, text=True, check=True, env={**__import__("os").environ, **env})
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", type=float, default=8.7, help="size of the big one-line file (default 8.7)")
    parser.add_argument("--tokens", type=int, default=64, help="--qrel-kl-tokens (default 64)")
    parser.add_argument("--context", type=int, default=512, help="--qrel-kl-context (default 512)")
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT))
    from pytest_qrel.data import heldout_texts

    sentences = " ".join(heldout_texts())
    with tempfile.TemporaryDirectory() as tmp:
        for label, size in (("big", int(args.mb * 1e6)), ("20 KB", 20_000)):
            path = Path(tmp) / f"{label.replace(' ', '')}.txt"
            path.write_text((sentences + " ") * (size // (len(sentences) + 1)) + sentences[: size % (len(sentences) + 1)])
            whole, prefix = (measure(path, way, args.context, args.tokens) for way in ("whole", "prefix"))
            print(f"{label} file ({path.stat().st_size / 1e6:.2f} MB, one line), {args.tokens} tokens in windows "
                  f"of {args.context}:")
            for name, r in (("whole", whole), ("prefix", prefix)):
                print(f"  {name:6s}  {r['seconds']:8.3f} s  peak RSS {r['peak_mb']:8.1f} MB  "
                      f"(+{r['added_mb']:.1f} MB over the loaded tokenizer)")
            print(f"  ratios whole / prefix: time {whole['seconds'] / max(prefix['seconds'], 1e-9):.1f}x, "
                  f"added memory {max(whole['added_mb'], 0.1) / max(prefix['added_mb'], 0.1):.1f}x")


if __name__ == "__main__":
    main()
