"""A checkpoint's own tokenizer against its base's (issue 34, item 8): each kind of difference
is named, and a tokenizer that cannot be loaded is a one-line error naming the directory."""

import json
import shutil
from pathlib import Path

import pytest

from pytest_qrel.errors import ModelLoadError
from pytest_qrel.models import checkpoint_tokenizer, tokenizer_difference, zoo_dir

ZOO_XS = zoo_dir() / "zoo-xs"


def saved(tmp_path: Path, name: str, edit=None) -> Path:
    """zoo-xs's tokenizer files in a directory of their own, tokenizer.json changed by ``edit``."""
    directory = tmp_path / name
    directory.mkdir()
    for file in ("tokenizer.json", "tokenizer_config.json"):
        shutil.copy(ZOO_XS / file, directory / file)
    if edit:
        data = json.loads((directory / "tokenizer.json").read_text())
        edit(data)
        (directory / "tokenizer.json").write_text(json.dumps(data))
    return directory


def test_each_difference_is_named(tmp_path):
    base = checkpoint_tokenizer(ZOO_XS)
    assert tokenizer_difference(checkpoint_tokenizer(saved(tmp_path, "same")), base) is None

    def drop_merge(data: dict) -> None:  # same vocabulary, another tokenization
        data["model"]["merges"] = data["model"]["merges"][1:]

    def add_token(data: dict) -> None:
        data["added_tokens"].append({**data["added_tokens"][-1], "id": 1024, "content": "<extra>"})

    def swap_two(data: dict) -> None:
        vocab = data["model"]["vocab"]
        vocab["a"], vocab["b"] = vocab["b"], vocab["a"]

    for edit, difference in [
        (drop_merge, "its tokenizer's model (merges) differs from the base's"),
        (add_token, "its tokenizer has 1025 tokens, the base's 1024"),
        (swap_two, f"its tokenizer gives 'a' the id {base.get_vocab()['b']}, the base's {base.get_vocab()['a']}"),
    ]:
        assert tokenizer_difference(checkpoint_tokenizer(saved(tmp_path, edit.__name__, edit)), base) == difference


def test_no_tokenizer_files_and_an_unreadable_one(tmp_path):
    assert checkpoint_tokenizer(tmp_path) is None  # used with its base's
    broken = saved(tmp_path, "broken")
    (broken / "tokenizer.json").write_text("{not json")
    with pytest.raises(ModelLoadError, match=f"^--qrel-models: cannot load the tokenizer of {broken}: "):
        checkpoint_tokenizer(broken)


def test_added_token_flags_and_settings_that_change_ids(tmp_path):
    """An added token's lstrip/rstrip changes the ids around it ("a </s> b" loses its spaces);
    a shorter model_max_length cuts text the base reads whole; a chat template changes every
    chat's ids. padding_side does not change what a causal LM computes, and is no difference."""
    base = checkpoint_tokenizer(ZOO_XS)

    def strip(data: dict) -> None:
        for token in data["added_tokens"]:
            token["lstrip"] = token["rstrip"] = True

    stripped = checkpoint_tokenizer(saved(tmp_path, "strip", strip))
    assert stripped("a </s> b").input_ids != base("a </s> b").input_ids  # the difference is real
    assert tokenizer_difference(stripped, base).startswith("its added token 0 is '<pad>' (lstrip=True, rstrip=True")

    def configured(name: str, **settings) -> object:
        directory = saved(tmp_path, name)
        config = json.loads((directory / "tokenizer_config.json").read_text())
        (directory / "tokenizer_config.json").write_text(json.dumps({**config, **settings}))
        return checkpoint_tokenizer(directory)

    assert tokenizer_difference(configured("short", model_max_length=16), base) == (
        f"its model_max_length is 16, the base's {base.model_max_length}")
    assert tokenizer_difference(configured("chat", chat_template="{{ messages }}"), base) == (
        "its chat_template differs from the base's")
    assert tokenizer_difference(configured("left", padding_side="left"), base) is None
