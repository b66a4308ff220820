"""Each suite as a user runs it on a checkpoint of Llama-3.2-1B's shape (issue 38): time and memory at real size.

Builds the checkpoint (``fixtures/build_real_shape.py``: hidden 2048, intermediate 8192, GQA
32/8, tied embeddings, 128,256 tokens, random weights; ``--layers`` layers, 16 by default) or
takes ``--checkpoint``, then runs each of ``--suites`` in a fresh pytest process with its own
empty cache and report directories, as a user would:

- kl: ``suites/test_kl.py --qrel-methods=rtn --qrel-bits=4,8 --qrel-kl-text=fixtures/data/alice_in_wonderland.txt
  --qrel-kl-tokens=1024 --qrel-kl-context=256``;
- calibration, confidence: their suite on the zoo tasks (``--qrel-tasks`` names them: a model
  that is not the zoo's gets none by default) at ``--qrel-task-limit=--task-limit``;
- robustness: its suite on the zoo's QA file (``--qrel-qa-file``) at ``--qrel-qa-limit=--qa-limit``.

Per suite it prints the wall time over the least model work the suite needs, and the peak
RSS (the pytest process's ``VmHWM``, ``fixtures/peak_memory.py``) over one model's weights
(the bytes of its safetensors). The least work is measured in a separate process that loads
the base and times, with the engine's own functions and no harness: one forward pass over the
KL windows (full logits); scoring each task's first ``--task-limit`` questions
(``engine.choice_loglikelihoods``); sampling and scoring the first ``--qa-limit`` QA prompts
(``generation.score_qa`` at the suite's default settings). A suite needs that once per model
(base and each variant; KL with two variants: 3 passes), robustness once per model and
condition (the clean prompts and the default 15 perturbations at intensity 4: 16). Loading
the models and quantizing are not in the least work: the ratio says what they and the rest
of the harness cost over it.

    python benchmarks/bench_real_size.py --layers 2                # 384M parameters: a quick look
    python benchmarks/bench_real_size.py --suites kl               # the 1B shape, KL only
    python benchmarks/bench_real_size.py --checkpoint /tmp/real-shape --suites calibration --task-limit 50
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "fixtures"))
sys.path.insert(0, str(ROOT))

from peak_memory import run_measured, run_pytest_measured  # noqa: E402 - from the path above

KL_TEXT = ROOT / "fixtures" / "data" / "alice_in_wonderland.txt"
QA_FILE = ROOT / "fixtures" / "data" / "zoo_qa.jsonl"
# the zoo tasks in another order than options.DEFAULT_TASKS: settings.py counts --qrel-tasks as
# given only when its text differs from the default's, and the default tasks are for zoo models only
TASKS = "zoo_utilization,zoo_recall,zoo_utilization_heldout"
CONDITIONS = 15  # the default robustness matrix: 15 perturbations at intensity 4 (options.DEFAULT_INTENSITIES)
SUITES = ("kl", "calibration", "confidence", "robustness")


def env() -> dict[str, str]:
    path = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p)
    return {"MALLOC_MMAP_THRESHOLD_": "1048576", **os.environ, "HF_HUB_OFFLINE": "1",
            "HF_DATASETS_OFFLINE": "1", "PYTHONPATH": path}


def suite_args(suite: str, checkpoint: Path, args: argparse.Namespace) -> list[str]:
    common = [f"--qrel-models={checkpoint}", f"--qrel-methods={args.methods}", f"--qrel-bits={args.bits}"]
    if suite == "kl":
        return [str(ROOT / "suites" / "test_kl.py"), *common, f"--qrel-kl-text={KL_TEXT}",
                f"--qrel-kl-tokens={args.kl_tokens}", f"--qrel-kl-context={args.kl_context}"]
    if suite in ("calibration", "confidence"):
        return [str(ROOT / "suites" / f"test_{suite}.py"), *common, f"--qrel-tasks={TASKS}",
                f"--qrel-task-limit={args.task_limit}"]
    return [str(ROOT / "suites" / "test_robustness.py"), *common, f"--qrel-qa-file={QA_FILE}",
            f"--qrel-qa-limit={args.qa_limit}"]


def bare_work(checkpoint: Path, suites: list[str], args: argparse.Namespace) -> dict[str, float]:
    """Seconds of the least work per model of each suite, measured in a fresh process."""
    code = f"""
import json, time, torch
from pathlib import Path
from pytest_qrel.models import load_base
from pytest_qrel.data.text import read_kl_text
from pytest_qrel.data.tasks import zoo_task
from pytest_qrel.data.qa import read_qa_file
from pytest_qrel.engine import choice_loglikelihoods
from pytest_qrel.measures.generation import GenerationSettings, score_qa
from pytest_qrel.rows import windows
suites = {suites!r}
base = load_base("bare", {str(checkpoint)!r}, torch.device("cpu"))
m, tok, out = base.model, base.tokenizer, {{}}
with torch.no_grad():
    m(input_ids=torch.tensor([[1, 2, 3]]))  # warm-up
    if "kl" in suites:
        batches = windows(tok, read_kl_text({str(KL_TEXT)!r}).read, {args.kl_context}, {args.kl_tokens}, m.config.vocab_size)
        start = time.perf_counter()
        for b in batches:
            m(input_ids=b.input_ids, attention_mask=b.attention_mask).logits
        out["kl"] = time.perf_counter() - start
    if "calibration" in suites or "confidence" in suites:
        start = time.perf_counter()
        for name in {TASKS!r}.split(","):
            task = zoo_task(name)
            questions = list(zip(task.contexts, task.continuations))[:{args.task_limit}]
            choice_loglikelihoods(m, tok, questions)
        out["tasks"] = time.perf_counter() - start
    if "robustness" in suites:
        qa = read_qa_file({str(QA_FILE)!r})
        n = min({args.qa_limit}, len(qa.prompts))
        start = time.perf_counter()
        score_qa(m, tok, qa.prompts[:n], qa.answers[:n], list(range(n)), GenerationSettings())
        out["qa"] = time.perf_counter() - start
print("BARE " + json.dumps(out))
"""
    run = run_measured(code, env=env())
    line = next((x for x in run.output.splitlines() if x.startswith("BARE ")), None)
    if run.returncode or line is None:
        sys.exit(f"the bare passes failed (exit {run.returncode}):\n{run.output[-4000:]}")
    return json.loads(line[5:])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--checkpoint", type=Path, help="a build_real_shape.py directory (default: build one)")
    parser.add_argument("--layers", type=int, default=16, help="layers of the checkpoint built (Llama-3.2-1B: 16)")
    parser.add_argument("--suites", default=",".join(SUITES), help=f"comma-separated, of {', '.join(SUITES)}")
    parser.add_argument("--methods", default="rtn")
    parser.add_argument("--bits", default="4,8")
    parser.add_argument("--kl-tokens", type=int, default=1024)
    parser.add_argument("--kl-context", type=int, default=256)
    parser.add_argument("--task-limit", type=int, default=20)
    parser.add_argument("--qa-limit", type=int, default=5)
    parser.add_argument("--keep", action="store_true", help="keep the work directory (checkpoint, caches, logs)")
    args = parser.parse_args()
    suites = [s for s in args.suites.split(",") if s]
    unknown = [s for s in suites if s not in SUITES]
    if unknown:
        sys.exit(f"--suites: expected names among {', '.join(SUITES)}, but got {', '.join(unknown)}")
    work = Path(tempfile.mkdtemp(prefix="qrel-real-size-"))
    try:
        checkpoint = args.checkpoint
        if checkpoint is None:
            checkpoint = work / f"real-shape-{args.layers}"
            subprocess.run([sys.executable, str(ROOT / "fixtures" / "build_real_shape.py"), "--out", str(checkpoint),
                            "--layers", str(args.layers)], check=True, env=env())
        weights = sum(f.stat().st_size for f in checkpoint.glob("*.safetensors"))
        models = 1 + len(args.methods.split(",")) * len(args.bits.split(","))
        print(f"{checkpoint}: {weights / 1e9:.2f} GB of weights; {models} models per suite (base and variants); "
              f"load average {os.getloadavg()[0]:.1f}", flush=True)
        bare = bare_work(checkpoint, suites, args)
        print("least work per model: " + ", ".join(f"{k} {v:.1f} s" for k, v in bare.items()), flush=True)
        for suite in suites:
            unit = {"kl": bare.get("kl"), "robustness": bare.get("qa")}.get(suite, bare.get("tasks"))
            assert unit is not None
            passes = models * (1 + CONDITIONS) if suite == "robustness" else models
            out = work / suite
            out.mkdir()
            argv = [*suite_args(suite, checkpoint, args), "-q", "-p", "no:randomly", f"--qrel-cache-dir={out / 'cache'}",
                    f"--qrel-report-dir={out / 'report'}", f"--junitxml={out / 'junit.xml'}"]
            load = os.getloadavg()[0]
            start = time.perf_counter()
            run = run_pytest_measured(argv, cwd=out, env=env(), log=out / "log.txt")
            wall = time.perf_counter() - start
            tail = run.output.strip().splitlines()[-1] if run.output.strip() else ""
            print(f"{suite:12s} wall {wall:7.1f} s / least work {passes} x {unit:.1f} s = {wall / (passes * unit):5.2f}x   "
                  f"peak RSS {run.peak_rss / 1e9:5.2f} GB / weights = {run.peak_rss / weights:4.2f}x   "
                  f"(exit {run.returncode}: {tail}; load average {load:.1f} at start)", flush=True)
            if run.returncode not in (0, 1):
                print(run.output[-3000:])
    finally:
        if args.keep:
            print(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
