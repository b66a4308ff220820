from types import SimpleNamespace

import pytest
import torch

from pytest_qrel.data import heldout_texts, load_jsonl
from pytest_qrel.engine import TokenBatch, encode, next_token_logprobs


def test_missing_dataset(tmp_path):
    with pytest.raises(ValueError, match=r"Expected a JSONL dataset at .*nope.jsonl, but it does not exist"):
        load_jsonl(tmp_path / "nope.jsonl")


def test_corrupt_line_names_file_and_line(tmp_path):
    path = tmp_path / "d.jsonl"
    path.write_text('{"text": "a"}\n{"text": \n')
    with pytest.raises(ValueError, match=r"Expected JSON on .*d.jsonl:2"):
        load_jsonl(path)


def test_empty_dataset(tmp_path):
    path = tmp_path / "d.jsonl"
    path.write_text("\n")
    with pytest.raises(ValueError, match="but got an empty dataset"):
        load_jsonl(path)


def test_rows_without_text(tmp_path):
    path = tmp_path / "d.jsonl"
    path.write_text('{"text": "ok"}\n{"txt": "x"}\n')
    with pytest.raises(ValueError, match=r"rows \[2\] have none"):
        heldout_texts(path)


def test_shipped_heldout_text():
    texts = heldout_texts()
    assert len(texts) == 256 and all(t.endswith(".") for t in texts)


def test_encode_rejects_no_texts():
    with pytest.raises(ValueError, match="but got an empty dataset"):
        encode(None, [])


class _NaNModel(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.w = torch.nn.Parameter(torch.zeros(1))

    def forward(self, input_ids, attention_mask):
        logits = torch.zeros(*input_ids.shape, 5)
        logits[0, 0, 0] = float("nan")
        return SimpleNamespace(logits=logits)


def test_nan_logits_are_an_error():
    batch = TokenBatch(torch.ones(2, 4, dtype=torch.long), torch.ones(2, 4, dtype=torch.long))
    with pytest.raises(FloatingPointError, match=r"Expected finite logits from _NaNModel, but got NaN or inf at 1 of 6 tokens"):
        list(next_token_logprobs(_NaNModel(), [batch]))


def test_nan_logits_at_padding_are_not_scored():
    # the NaN sits at position 0 of row 0; with row 0 all padding, no scored token is NaN
    batch = TokenBatch(torch.ones(2, 4, dtype=torch.long), torch.tensor([[0, 0, 0, 0], [1, 1, 1, 1]]))
    (logprobs,) = next_token_logprobs(_NaNModel(), [batch])
    assert torch.isnan(logprobs[0, 0]).all() and torch.isfinite(logprobs[1]).all()
    (unchecked,) = next_token_logprobs(_NaNModel(), [TokenBatch(torch.ones(2, 4, dtype=torch.long), torch.ones(2, 4, dtype=torch.long))], check_finite=False)
    assert torch.isnan(unchecked[0, 0]).all()


def test_target_mask_scores_positions_that_predict_real_tokens():
    mask = torch.tensor([[1, 1, 1, 0], [1, 1, 1, 1]])
    batch = TokenBatch(torch.ones(2, 4, dtype=torch.long), mask)
    assert batch.target_mask.tolist() == [[1, 1, 0], [1, 1, 1]]
