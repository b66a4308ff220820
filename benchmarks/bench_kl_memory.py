"""Peak memory and time of one KL-to-base test on a Llama-3-sized vocabulary (issue 16).

Builds (or takes with ``--checkpoint``) a random-init Llama with 128,256 tokens, hidden 256,
2 layers, untied embeddings (67M parameters, 268 MB in float32: ``fixtures/build_big_vocab.py``)
and runs the shipped KL suite on it at 8-bit hqq in a subprocess, as a user would
(``pytest suites/test_kl.py --qrel-models=<dir> --qrel-methods=hqq --qrel-bits=8``, a fresh
temporary cache directory per run, so nothing is reused), once per ``--qrel-kl-topk`` value
of ``--topk``. Per run it prints the subprocess's own peak RSS (its ``VmHWM``: ``fixtures/peak_memory.py``
says why not ``wait4``'s ``ru_maxrss``) over the
peak RSS of the bare forward passes over the same tokens (a fresh process that loads the base
and runs it over the suite's batches, full logits, no harness; then the same with a second
copy of the model, as a KL test holds two models: target <= 1.5), that peak over 2 x the
model's bytes, the wall time, the KL test's own time (JUnit) over the bare forward passes'
time, and the stored base outputs per scored token on disk next to llama.cpp's
``--kl-divergence-base`` file (``2 * vocab + 8`` bytes per token: uint16 log-probs).
``--padded`` takes the trained zoo-l padded to 128,256 tokens instead of the random model.

Then the token scaling check: the zoo's held-out text repeated into a plain text file and run
through ``--qrel-kl-text`` with ``--qrel-kl-tokens`` at 2x and 4x the zoo's scored tokens
(first ``--topk`` value): peak RSS per token count should stay flat, the base outputs being
streamed to disk shard by shard.

    python benchmarks/bench_kl_memory.py                       # topk 1024 and all, then 2x and 4x tokens
    python benchmarks/bench_kl_memory.py --checkpoint /tmp/big-vocab --topk 64 --multiples ""
    python benchmarks/bench_kl_memory.py --small               # hidden 64, 1 layer: a quick check
    python benchmarks/bench_kl_memory.py --padded --topk 1024 --multiples ""  # trained zoo-l, 128k tokens
    python benchmarks/bench_kl_memory.py --scaling-tokens 1024  # scaling at 1024, 2048, 4096 tokens

Every subprocess runs with ``MALLOC_MMAP_THRESHOLD_=1048576`` (unless the environment sets it):
it fixes glibc's mmap threshold, whose dynamic rise to 32 MiB otherwise puts the engine's large
row blocks on the fragmenting heap and moves the peak by 0.2-0.3 GB from run to run.

Before the rewrite (every base log-prob held in memory) this checkpoint needed 14.4 GB peak
RSS and 12.5 minutes for one 8-bit test on the zoo's held-out text.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SUITE = ROOT / "suites" / "test_kl.py"
sys.path.insert(0, str(ROOT / "fixtures"))
sys.path.insert(0, str(ROOT))

from build_big_vocab import SMALL, build_big_vocab_checkpoint, build_padded_checkpoint  # noqa: E402 - from the path above
from peak_memory import run_measured, run_pytest_measured  # noqa: E402


@dataclass
class Run:
    label: str
    topk: str
    tokens: int
    peak_rss: int  # bytes
    wall: float  # seconds, the whole subprocess
    test_time: float  # seconds, the KL test (JUnit)
    stored_bytes: int  # the base outputs' shards in the cache
    detail: dict


def env() -> dict[str, str]:
    path = os.pathsep.join(
        p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p
    )
    return {
        # glibc's dynamic mmap threshold otherwise moves the peak by 0.2-0.3 GB from run to run
        # (measured 2026-12-06, the same code and text: 1.05-1.35 GB unset, 0.96-0.97 GB set)
        "MALLOC_MMAP_THRESHOLD_": "1048576",
        **os.environ,
        "HF_HUB_OFFLINE": "1",
        "HF_DATASETS_OFFLINE": "1",
        "PYTHONPATH": path,
    }


def run_kl_test(
    checkpoint: Path, topk: str, label: str, work: Path, extra: list[str]
) -> Run:
    """One 8-bit hqq KL test in a fresh pytest process with its own empty cache directory."""
    out = work / label.replace(" ", "_")
    out.mkdir(parents=True)
    args = [
        str(SUITE),
        "-q",
        "-p",
        "no:cacheprovider",
        "-k",
        "kl_to_base",
        f"--qrel-models={checkpoint}",
        "--qrel-methods=hqq",
        "--qrel-bits=8",
        f"--qrel-kl-topk={topk}",
        f"--qrel-cache-dir={out / 'cache'}",
        f"--qrel-report-dir={out / 'report'}",
        f"--junitxml={out / 'junit.xml'}",
        *extra,
    ]
    start = time.perf_counter()
    run = run_pytest_measured(args, cwd=out, env=env(), log=out / "log.txt")
    wall = time.perf_counter() - start
    if run.returncode not in (0, 1):  # 1: the gate failed, still measured
        sys.exit(f"{label}: pytest exited {run.returncode}:\n{run.output[-4000:]}")
    results = json.loads((out / "report" / "results.json").read_text())["results"]
    kl = [
        r
        for r in results
        if r.get("property") == "kl" and r.get("metric") == "kl_to_base"
    ]
    if not kl:
        sys.exit(
            f"{label}: no kl_to_base result:\n{(out / 'log.txt').read_text()[-4000:]}"
        )
    detail = kl[0]  # a measure's details are written beside the record's fields
    cases = ET.parse(out / "junit.xml").getroot().iter("testcase")
    test_time = sum(
        float(c.get("time", 0)) for c in cases if "test_kl_to_base" in c.get("name", "")
    )
    shards = list((out / "cache").rglob("shard-*.safetensors"))
    return Run(
        label,
        topk,
        int(detail.get("tokens", 0)),
        run.peak_rss,
        wall,
        test_time,
        sum(f.stat().st_size for f in shards),
        detail,
    )


@dataclass
class Bare:
    seconds: float  # the base's forward passes over the KL batches
    peak_one: int  # peak RSS (bytes) of a process holding the base and running them
    peak_two: int  # the same with a second copy of the model held and run too (a KL needs two models)


def bare_forward(checkpoint: Path, text: Path | None, tokens: int | None) -> Bare:
    """Plain forward passes of the base over the same batches as the suite (full logits,
    float32, no_grad, nothing kept), in a fresh process so its memory is not the benchmark's:
    its time, its peak RSS, and its peak RSS once a second copy of the model is loaded and run
    over the batches too (a KL test holds a base and a variant)."""
    code = f"""
import time, torch
from transformers import AutoModelForCausalLM, AutoTokenizer
from pathlib import Path
from pytest_qrel.data import heldout_texts
from pytest_qrel.data.text import KLText
from pytest_qrel.engine import encode
from pytest_qrel.rows import sequences_per_batch, windows
from pytest_qrel.options import DEFAULT_KL_CONTEXT
torch.manual_seed(0)
tok = AutoTokenizer.from_pretrained({str(checkpoint)!r})
tok.pad_token = tok.pad_token or tok.eos_token
load = lambda: AutoModelForCausalLM.from_pretrained({str(checkpoint)!r}, dtype=torch.float32).eval()
model = load()
text = {str(text) if text else None!r}
vocab = model.config.vocab_size
if text is None:
    texts = heldout_texts()
    longest = min(256, max(len(tok(t)["input_ids"]) for t in texts))
    batches = encode(tok, texts, batch_size=sequences_per_batch(longest, vocab))
else:
    batches = windows(tok, KLText('file', Path(text)).read, int(DEFAULT_KL_CONTEXT), {tokens}, vocab)
def run(m):
    with torch.no_grad():
        for b in batches:
            m(input_ids=b.input_ids, attention_mask=b.attention_mask).logits
with torch.no_grad():
    model(input_ids=batches[0].input_ids[:1, :8])  # warm-up
start = time.perf_counter()
run(model)
seconds = time.perf_counter() - start
one = next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith("VmHWM:"))
second = load()
run(second)
print(seconds, one * 1024)
"""
    run = run_measured(code, env=env())
    if run.returncode:
        sys.exit(f"bare forward failed:\n{run.output[-4000:]}")
    seconds, one = next(line for line in reversed(run.output.splitlines()) if line.strip()).split()
    return Bare(float(seconds), int(one), run.peak_rss)


def scaling_text(path: Path, tokens: int) -> Path:
    """The zoo's held-out sentences repeated into one plain text file, long enough for
    ``tokens`` scored tokens in windows of the default context (half of each window scored)."""
    from pytest_qrel.data import heldout_texts

    texts = heldout_texts()
    words = sum(len(t.split()) for t in texts)
    repeats = math.ceil(2 * tokens * 1.05 / words) + 1
    path.write_text("\n".join(texts * repeats) + "\n", encoding="utf-8")
    return path


def print_run(run: Run, model_bytes: int, bare: Bare, vocab: int) -> None:
    per_token = run.stored_bytes / run.tokens if run.tokens else math.nan
    print(
        f"{run.label:<26} topk {run.topk:>4}  tokens {run.tokens:>6}  peak RSS {run.peak_rss / 1e9:6.2f} GB  "
        f"/ bare forward {run.peak_rss / bare.peak_one:5.2f}x (one model, {bare.peak_one / 1e9:.2f} GB), "
        f"{run.peak_rss / bare.peak_two:5.2f}x (two, {bare.peak_two / 1e9:.2f} GB) (target <= 1.5)  "
        f"peak / (2 x model) {run.peak_rss / (2 * model_bytes):5.2f}  wall {run.wall:6.1f} s  "
        f"KL test {run.test_time:6.1f} s  bare forward {bare.seconds:5.2f} s  test / bare {run.test_time / bare.seconds:6.1f}x  "
        f"stored {per_token:8.0f} B/token "
        f"({per_token / (2 * vocab + 8):.4f} of llama.cpp's {2 * vocab + 8})  "
        f"KL {run.detail.get('kl_lower', math.nan):.3g}..{run.detail.get('kl_upper', math.nan):.3g} "
        f"({run.detail.get('kl_decided', '?')}; stored width {run.detail.get('kl_stored_bound_width', math.nan):.3g})",
        flush=True,
    )


def main() -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument(
        "--checkpoint",
        type=Path,
        help="a checkpoint directory (default: build the 67M one in a temp dir)",
    )
    p.add_argument(
        "--small",
        action="store_true",
        help="build the test-sized checkpoint (hidden 64, 1 layer)",
    )
    p.add_argument(
        "--padded",
        action="store_true",
        help="build zoo-l (trained) padded to 128,256 tokens (fixtures/build_big_vocab.py --padded)",
    )
    p.add_argument(
        "--topk",
        default="1024,all",
        help="--qrel-kl-topk values, one run each (default: 64,all)",
    )
    p.add_argument(
        "--multiples",
        default="2,4",
        help="token counts of the scaling check, as multiples of the zoo text's scored tokens, "
        "run on a --qrel-kl-text file at the first --topk value ('' for none; default: 2,4)",
    )
    p.add_argument(
        "--scaling-tokens",
        type=int,
        default=0,
        help="the unit of --multiples, in scored tokens; the scaling check then runs 1x too, all on the "
        "text file (default: the zoo text's scored tokens, its run being the 1x point)",
    )
    p.add_argument(
        "pytest_args",
        nargs="*",
        help="more pytest / --qrel-* options for every run (after --)",
    )
    args = p.parse_args()
    with tempfile.TemporaryDirectory(prefix="qrel-bench-kl-") as tmp:
        work = Path(tmp)
        checkpoint = args.checkpoint
        if checkpoint is None and args.padded:
            checkpoint = build_padded_checkpoint(work / "padded")
        elif checkpoint is None:
            sizes = SMALL if args.small else {}
            checkpoint = build_big_vocab_checkpoint(
                work / ("big-vocab-small" if args.small else "big-vocab"), **sizes
            )
        config = json.loads((checkpoint / "config.json").read_text())
        vocab = int(config["vocab_size"])
        model_bytes = sum(f.stat().st_size for f in checkpoint.glob("*.safetensors"))
        print(
            f"checkpoint {checkpoint}: vocabulary {vocab}, hidden {config['hidden_size']}, "
            f"{config['num_hidden_layers']} layers, {model_bytes / 1e6:.1f} MB of weights; "
            f"8-bit hqq, one test per run, {os.cpu_count()} CPUs",
            flush=True,
        )
        raw = bare_forward(checkpoint, None, None)
        runs = []
        for topk in [t.strip() for t in args.topk.split(",") if t.strip()]:
            run = run_kl_test(
                checkpoint, topk, f"zoo text, topk {topk}", work, args.pytest_args
            )
            print_run(run, model_bytes, raw, vocab)
            runs.append(run)
        multiples = [int(m) for m in args.multiples.split(",") if m.strip()]
        if multiples and runs:
            zoo = runs[0]
            # the zoo run is the 1x point, unless --scaling-tokens sets the unit (then 1x runs on the file too)
            unit = args.scaling_tokens or zoo.tokens
            counts = [
                m * unit for m in ([1] if args.scaling_tokens else []) + multiples
            ]
            text = scaling_text(work / "kl_text.txt", max(counts))
            scaling = [] if args.scaling_tokens else [zoo]
            for tokens in counts:
                raw_m = bare_forward(checkpoint, text, tokens)
                run = run_kl_test(
                    checkpoint,
                    zoo.topk,
                    f"text, {tokens} tokens",
                    work,
                    [
                        f"--qrel-kl-text={text}",
                        f"--qrel-kl-tokens={tokens}",
                        *args.pytest_args,
                    ],
                )
                print_run(run, model_bytes, raw_m, vocab)
                scaling.append(run)
            print(
                f"peak RSS per scored tokens (topk {zoo.topk}): "
                + ", ".join(
                    f"{r.tokens} tokens: {r.peak_rss / 1e9:.2f} GB" for r in scaling
                ),
                flush=True,
            )


if __name__ == "__main__":
    main()
