"""A checkpoint's own tokenizer against its base's (issue 34, item 8): each kind of difference
is named, and a tokenizer that cannot be loaded is a one-line error naming the directory."""

import json
import shutil
from pathlib import Path

import pytest

from pytest_qrel.models import ModelLoadError, checkpoint_tokenizer, tokenizer_difference, zoo_dir

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
