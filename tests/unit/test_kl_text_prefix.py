"""--qrel-kl-text is read and tokenized only as far as the KL windows need (issue 34): a file
of megabytes scored on a few windows is not held or tokenized whole, and the windows are the
ones the whole text's tokens give."""

import json
from pathlib import Path

import pytest
import torch
from transformers import AutoTokenizer

from pytest_qrel.data import heldout_texts
from pytest_qrel.data.text import read_kl_text
from pytest_qrel.models import fixtures_dir
from pytest_qrel.rows import windows

CONTEXT, TOKENS = 64, 256  # 8 windows scoring 32 tokens each: 512 tokens of the text


class Recording:
    """The zoo's tokenizer, noting the length of every text it is given."""

    def __init__(self) -> None:
        self.tokenizer = AutoTokenizer.from_pretrained(fixtures_dir() / "zoo" / "zoo-xs")
        self.bos_token_id = self.tokenizer.bos_token_id
        self.lengths: list[int] = []

    def __call__(self, text: str):  # the tokenizer's own encoding
        self.lengths.append(len(text))
        return self.tokenizer(text)


@pytest.fixture(scope="module")
def big(tmp_path_factory) -> tuple[Path, str]:
    """A plain-text file of 4 MB on one line: the zoo's held-out sentences, repeated."""
    text = " ".join(heldout_texts())
    whole = " ".join([text] * (4_000_000 // len(text)))
    path = tmp_path_factory.mktemp("kl") / "big.txt"
    path.write_text(whole)
    return path, whole


def _expected(tokenizer, whole: str) -> torch.Tensor:
    """The windows from the text's tokens, as the KL suite cut them before (issue 16): from its
    first 200 KB, a hundred times what the windows take (the zoo's tokenizer splits words at
    white space, so their first 512 tokens are the whole text's)."""
    ids = tokenizer(whole[:200_000])["input_ids"][: CONTEXT * (TOKENS // (CONTEXT // 2))]
    rows = torch.tensor(ids).reshape(-1, CONTEXT)
    rows[:, 0] = tokenizer.bos_token_id
    return rows


def test_a_big_file_is_read_and_tokenized_only_as_far_as_the_windows_need(big):
    path, whole = big
    text = read_kl_text(str(path))
    tokenizer = Recording()
    batches = windows(tokenizer, text.read, CONTEXT, TOKENS, 128)
    # the 512 tokens are ~2 KB of this text; every text tokenized is a bounded prefix of the 4 MB
    assert tokenizer.lengths and max(tokenizer.lengths) <= 6 * (512 + 64) < len(whole) // 1000
    got = torch.cat([b.input_ids for b in batches])
    assert torch.equal(got, _expected(tokenizer.tokenizer, whole))
    assert all(b.score_from == CONTEXT // 2 - 1 for b in batches)


def test_the_prefix_grows_when_the_text_has_long_tokens(tmp_path):
    """Where tokens span more characters than the first guess allows (" carpenter" is one
    token of 10 characters), the prefix grows until it holds the windows."""
    tokenizer = Recording()
    whole = " carpenter montreal question" * 20_000
    path = tmp_path / "spaced.txt"
    path.write_text(whole)
    batches = windows(tokenizer, read_kl_text(str(path)).read, CONTEXT, TOKENS, 128)
    assert torch.equal(torch.cat([b.input_ids for b in batches]), _expected(tokenizer.tokenizer, whole))
    assert len(tokenizer.lengths) >= 2 and max(tokenizer.lengths) < len(whole)


def test_jsonl_rows_past_the_windows_are_not_read(tmp_path):
    """A JSONL file is read a row at a time, as far as the windows need: a malformed row far
    past them is never reached; one at the start stops the run at start-up, naming the line."""
    rows = [json.dumps({"text": t}) for t in heldout_texts()] * 40
    path = tmp_path / "rows.jsonl"
    path.write_text("\n".join(rows + ["{not json"]) + "\n")
    tokenizer = Recording()
    batches = windows(tokenizer, read_kl_text(str(path)).read, CONTEXT, TOKENS, 128)
    assert torch.equal(torch.cat([b.input_ids for b in batches]),
                       _expected(tokenizer.tokenizer, "\n\n".join(heldout_texts())))
    bad = tmp_path / "bad.jsonl"
    bad.write_text("{not json\n" + "\n".join(rows) + "\n")
    with pytest.raises(ValueError, match=r"^Expected JSON on line 1 of .*bad.jsonl, but got: "):
        read_kl_text(str(bad))


def _rows_ending_at(path: Path, row: str, chars: int, more: int) -> None:
    """JSONL rows of ``row`` whose texts and blank lines total exactly ``chars`` characters
    after one of them (the last one cut to fit), then ``more`` rows after it."""
    rows, size = [], 0
    while size + 2 * (len(row) + 2) <= chars:
        rows.append(row)
        size += len(row) + 2
    rows.append(f"{row} {row}"[: chars - size - 2])
    assert sum(len(r) + 2 for r in rows) == chars
    path.write_text("".join(json.dumps({"text": r}) + "\n" for r in rows + [row] * more))


def test_a_jsonl_text_whose_rows_end_on_the_prefix_is_read_on(tmp_path):
    """When the rows read so far end exactly on the characters asked (or one past), the reader
    still says the text goes on (issue 34, round two): the windows get every token asked, not
    the few the prefix held."""
    from pytest_qrel.rows import PREFIX_CHARS_PER_TOKEN, PREFIX_MARGIN_TOKENS

    want = CONTEXT * (TOKENS // (CONTEXT // 2))
    chars = PREFIX_CHARS_PER_TOKEN * (want + PREFIX_MARGIN_TOKENS)
    for extra in (0, 1):  # the running size landing on chars, or on chars + 1
        path = tmp_path / f"boundary{extra}.jsonl"
        _rows_ending_at(path, " ".join(["carpenter"] * 40), chars + extra, 100)  # ~10 characters a token
        text, tokenizer = read_kl_text(str(path)), Recording()
        assert len(tokenizer.tokenizer(text.prefix(chars))["input_ids"]) < want  # the first read is short of it
        batches = windows(tokenizer, text.read, CONTEXT, TOKENS, 128)
        assert sum(b.input_ids.shape[0] for b in batches) * (CONTEXT - CONTEXT // 2) == TOKENS


def test_leading_empty_rows_are_read_past(tmp_path):
    """Thousands of empty rows before the first text are blank space, not an empty file."""
    path = tmp_path / "blank_start.jsonl"
    path.write_text('{"text": ""}\n' * 3000 + json.dumps({"text": "The sky is blue."}) + "\n")
    text = read_kl_text(str(path))
    assert text.read(1 << 16) == ("\n\n" * 3000 + "The sky is blue.", True)
    assert text.read(6000) == ("\n\n" * 3000, False)  # the rows read end on the characters asked
