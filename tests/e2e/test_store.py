"""The model store: one model held at a time, released when the run moves on; cache keys
that change with everything the quantized weights depend on."""

import gc
import shutil
import weakref

from helpers import make_llama, session_for
from pytest_qrel.measures.kl import KLState


def test_moving_to_another_model_releases_the_last_one(tmp_path):
    session = session_for("zoo-xs,zoo-s", tmp_path, no_cache=True, methods="rtn", bits="8")
    xs, s = session.variants
    session.kl_to_base(xs)
    held = [weakref.ref(session.base_model(xs).model), weakref.ref(session.quantized_model(xs))]
    outputs = weakref.ref(session.store.state(xs, KLState).text)  # the KL text's token batches
    session.kl_to_base(s)
    gc.collect()
    assert [r() for r in held] == [None, None] and outputs() is None
    assert session.base_model(s).name == "zoo-s"


def test_cache_key_changes_with_the_tokenizer(tmp_path):
    from transformers import AutoTokenizer

    first = make_llama(tmp_path / "a" / "tiny")
    second = tmp_path / "b" / "tiny"
    shutil.copytree(first, second)
    tok = AutoTokenizer.from_pretrained(second)
    tok.add_tokens(["<extra>"])
    tok.save_pretrained(second)
    keys = [session_for(p, tmp_path / "cache").store.cache_key(session_for(p, tmp_path / "cache").variants[0])
            for p in (first, second)]
    assert keys[0] != keys[1]
    again = session_for(first, tmp_path / "cache")
    assert again.store.cache_key(again.variants[0]) == keys[0]


def test_tests_of_one_variant_run_together(pytester):
    for name in ("test_one", "test_two"):
        pytester.makepyfile(**{name: "def test_p(qrel_variant):\n    pass\n"})
    result = pytester.runpytest("test_one.py", "test_two.py", "--qrel-models=zoo-xs,zoo-s", "--qrel-methods=rtn", "--qrel-bits=4,8",
                                "--collect-only", "-q", "--qrel-no-cache")
    ids = [line for line in result.stdout.lines if "::test_p[" in line]
    assert ids == [f"{f}.py::test_p[{v}]" for v in ("zoo-xs-rtn-4b-g64", "zoo-xs-rtn-8b-g64", "zoo-s-rtn-4b-g64",
                                                     "zoo-s-rtn-8b-g64") for f in ("test_one", "test_two")]
