"""The gate cannot be fooled: partial quantization, NaN logits, crashes, missing libraries,
a string "false", an unloadable base and an unwritable cache each end in a clear outcome
with a row in the report, never a silent pass."""

import json
import textwrap

import pytest
import torch

from helpers import make_llama

RUN = ["-p", "no:randomly", "--qrel-no-cache"]
KL_ONLY = ["-k", "test_kl_to_base"]  # these are about the gate's mechanics, shown on one suite


def _results(path):
    return json.loads((path / "qrel-report" / "results.json").read_text())


def test_partially_quantized_variant_fails_with_the_coverage_reason(pytester):
    # zoo-xs has hidden size 16: bitsandbytes' CPU nf4 kernel cannot run its rows (only its MLP's
    # down projection, whose rows are 64 wide: a quarter of the weights)
    result = pytester.runpytest("--qrel-models=zoo-xs", "--qrel-methods=bnb", "--qrel-bits=4", *RUN, *KL_ONLY)
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*zoo-xs-bnb-4b-g64: quantized 2*% of the weights asked for, below the minimum coverage 100%; "
                                 "left at full precision: 6 layers (model.layers.0.self_attn.q_proj, *64-weight blocks*"
                                 "lower --qrel-min-coverage to accept it*"])
    record = _results(pytester.path)["results"][0]
    assert record["status"] == "fail" and record["coverage"] < 0.3 and record["value"] < record["threshold"]
    # the user can accept it explicitly
    result = pytester.runpytest("--qrel-models=zoo-xs", "--qrel-methods=bnb", "--qrel-bits=4",
                                           "--qrel-min-coverage=0.2", *RUN, *KL_ONLY)
    result.assert_outcomes(passed=1)


def test_nan_logits_are_a_fail_naming_the_variant_and_tokens(pytester):
    path = make_llama(pytester.path / "spiky")
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(path)
    with torch.no_grad():  # one huge weight: rtn's float16 scale overflows at 2 bits, not at 8
        model.model.layers[0].mlp.down_proj.weight[0, 0] = 1e6
    model.save_pretrained(path)
    result = pytester.runpytest("--qrel-models=./spiky", "--qrel-methods=rtn", "--qrel-bits=2,8",
                                           "--qrel-kl-threshold=2:9,8:9", "--qrel-kl-p99-threshold=9",
                                           "--qrel-top1-threshold=0.01", *RUN, *KL_ONLY)
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(["*spiky-rtn-2b-g64: NaN or inf logits at * of * tokens*"])
    assert "Traceback" not in result.stdout.str()
    bad = {r["metric"]: r for r in _results(pytester.path)["results"] if r["bits"] == 2}
    assert set(bad) == {"kl_to_base", "kl_p99", "top1_agreement"}  # every gate asked for fails, none goes missing
    for r in bad.values():
        assert r["status"] == "fail" and r["value"] == "nan" and r["nonfinite_tokens"] == r["tokens"] > 100
        assert "NaN or inf logits" in r["reason"]
    assert {r["status"] for r in _results(pytester.path)["results"] if r["bits"] == 8} == {"pass"}


def test_unloadable_base_is_one_error_per_variant_and_loaded_once(pytester):
    path = make_llama(pytester.path / "broken")
    (path / "model.safetensors").write_bytes(b"\x08\x00\x00\x00\x00\x00\x00\x00{garbage")  # not OSError/ValueError
    result = pytester.runpytest("--qrel-models=./broken,zoo-xs", "--qrel-methods=hqq", "--qrel-bits=4,8", *RUN, *KL_ONLY)
    result.assert_outcomes(passed=2, failed=2)
    out = result.stdout.str()
    assert "Traceback" not in out and "SafetensorError" in out
    result.stdout.fnmatch_lines(["broken-hqq-4b-g64 * ERROR: --qrel-models: cannot load * SafetensorError*",
                                 "broken-hqq-8b-g64 * ERROR: --qrel-models: cannot load * SafetensorError*"])
    doc = _results(pytester.path)
    errors = [r for r in doc["results"] if r["status"] == "error"]
    assert len(errors) == 2 and errors[0]["reason"] == errors[1]["reason"]
    outcomes = {v["id"]: v["status"] for v in doc["variants"]}
    assert outcomes == {"broken-hqq-4b-g64": "error", "broken-hqq-8b-g64": "error",
                        "zoo-xs-hqq-4b-g64": "pass", "zoo-xs-hqq-8b-g64": "pass"}


def test_results_of_finished_tests_survive_a_killed_worker(pytester, monkeypatch):
    pytest.importorskip("xdist")
    pytester.makepyfile(test_crash=textwrap.dedent("""
        import os, signal

        def test_a_kl(qrel, qrel_variant):
            qrel.gate("kl", qrel_variant)

        def test_b_killed_by_the_os(qrel, qrel_variant):
            if os.environ.get("QREL_KILL"):
                os.kill(os.getpid(), signal.SIGKILL)
            qrel.gate("kl", qrel_variant)
    """))
    monkeypatch.setenv("QREL_KILL", "1")
    result = pytester.runpytest("test_crash.py", "--qrel-models=zoo-xs", "--qrel-methods=hqq",
                                           "--qrel-bits=8", "-n", "1", "--max-worker-restart=0", *RUN)
    assert "crashed" in result.stdout.str()
    doc = _results(pytester.path)
    finished, lost = doc["results"]
    assert finished["test"] == "test_a_kl[zoo-xs-hqq-8b-g64]" and finished["status"] == "pass" and finished["value"] > 0
    # the test whose worker died is an ERROR, and so is its variant: never a pass
    assert lost["test"] == "test_b_killed_by_the_os[zoo-xs-hqq-8b-g64]" and lost["status"] == "error"
    assert lost["reason"].startswith("worker crashed during test_b_killed_by_the_os[zoo-xs-hqq-8b-g64]")
    (variant,) = doc["variants"]
    assert variant["status"] == "error" and variant["reason"] == lost["reason"]
    result.stdout.fnmatch_lines(["zoo-xs-hqq-8b-g64 * ERROR: worker crashed during test_b_killed_by_the_os*",
                                 "qrel: 1 passed, 0 failed thresholds, 1 errors*"])
    # --qrel-resume runs the test whose worker died again, and not the one that finished
    monkeypatch.delenv("QREL_KILL")
    resumed = pytester.runpytest("test_crash.py", "--qrel-models=zoo-xs", "--qrel-methods=hqq", "--qrel-bits=8",
                                 "--qrel-resume", *RUN)
    resumed.assert_outcomes(passed=1, deselected=1)
    doc = _results(pytester.path)
    assert [(r["test"], r["status"]) for r in doc["results"]] == [
        ("test_a_kl[zoo-xs-hqq-8b-g64]", "pass"), ("test_b_killed_by_the_os[zoo-xs-hqq-8b-g64]", "pass")]
    assert doc["variants"][0]["status"] == "pass"


def test_toml_string_false_keeps_pickle_off(pytester):
    ckpt = pytester.mkdir("pickled")
    (ckpt / "config.json").write_text('{"model_type": "llama"}')
    (ckpt / "pytorch_model.bin").write_bytes(b"not loaded")
    pytester.makepyprojecttoml('[tool.qrel]\nallow-pickle = "false"\n')
    result = pytester.runpytest("--qrel-models=./pickled", "--qrel-methods=hqq", "--qrel-bits=8", *RUN, *KL_ONLY)
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*has only pickle weights, which can run code when loaded*"])


def test_named_method_without_its_library_stops_the_run(pytester):
    pytester.makeconftest("import sys\nsys.modules['gptqmodel'] = None  # as if not installed\n")
    result = pytester.runpytest("--qrel-models=zoo-xs", "--qrel-methods=gptq", "--qrel-bits=4", *RUN)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--qrel-methods: gptq needs gptqmodel, which is not installed: pip install 'pytest-qrel[[]gptq]'*"])


def test_cache_that_cannot_be_written_warns_and_still_measures(tmp_path):
    from helpers import session_for

    session = session_for(make_llama(tmp_path / "tiny"), tmp_path / "cache", methods="rtn", bits="4")
    (variant,) = session.variants
    entry = session.store.cache_key(variant)
    blocked = tmp_path / "cache" / entry[:2] / entry
    blocked.parent.mkdir(parents=True)
    blocked.write_text("a file where the entry's directory goes")
    with pytest.warns(UserWarning, match=r"could not store tiny-rtn-4b-g64 in the cache .* measured without being cached"):
        kl = session.kl_to_base(variant)
    assert 0 < kl < 1 and session.variant_info[variant.id]["cache"] == "miss"


def test_cache_that_cannot_be_locked_warns_and_still_measures(tmp_path):
    from helpers import session_for

    session = session_for(make_llama(tmp_path / "tiny"), tmp_path / "cache", methods="rtn", bits="4")
    (variant,) = session.variants
    (tmp_path / "cache" / session.store.cache_key(variant)[:2]).write_text("a file where a directory goes")
    with pytest.warns(UserWarning, match=r"could not store tiny-rtn-4b-g64 in the cache"):
        kl = session.kl_to_base(variant)
    assert 0 < kl < 1 and session.variant_info[variant.id]["cache"] == "off"


def test_nan_logits_fail_the_robustness_gates_and_the_report_survives(pytester):
    """A variant whose logits are NaN fails every robustness metric with the reason, end to
    end, and the report is still written (it ended in KeyError: 'unperturbed', issue 15)."""
    path = make_llama(pytester.path / "spiky")
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(path)
    with torch.no_grad():  # one huge weight: rtn's float16 scale overflows at 2 bits
        model.model.layers[0].mlp.down_proj.weight[0, 0] = 1e6
    model.save_pretrained(path)
    qa = pytester.path / "qa.jsonl"
    qa.write_text("".join(f'{{"prompt": "question : what is {w} ? answer :", "answers": ["{w}"]}}\n'
                          for w in ("a", "b", "c", "d", "e", "f")))
    result = pytester.runpytest("--qrel-models=./spiky", "--qrel-methods=rtn", "--qrel-bits=2", f"--qrel-qa-file={qa}",
                                "--qrel-perturbations=word_swap", "--qrel-intensities=4", "--qrel-samples=1",
                                "--qrel-max-new-tokens=2", *RUN, "-k", "perturbation_robustness")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*spiky-rtn-2b-g64: NaN or inf logits on * prompts under word_swap-i4*"])
    records = _results(pytester.path)["results"]
    assert len(records) == 4 and all(r["status"] == "fail" and "NaN or inf logits" in r["reason"] for r in records)
    assert (pytester.path / "qrel-report" / "report.md").is_file()
