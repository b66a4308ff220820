"""Tiny models made in tests, and sessions over them."""

from pathlib import Path

import torch
from transformers import LlamaConfig, LlamaForCausalLM

from pytest_qrel.models import zoo_dir
from pytest_qrel.session import QrelConfig, QrelSession


def make_llama(path: Path, seed: int = 0) -> Path:
    """A randomly initialised 2-block Llama with the zoo's tokenizer, saved as safetensors."""
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(zoo_dir() / "zoo-xs")
    tok.save_pretrained(path)
    torch.manual_seed(seed)
    cfg = LlamaConfig(vocab_size=len(tok), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=4, tie_word_embeddings=True)
    LlamaForCausalLM(cfg).save_pretrained(path)
    return path


def session_for(model, cache_dir: Path, no_cache: bool = False, **opts) -> QrelSession:
    values = {
        "qrel_models": str(model), "qrel_methods": "rtn", "qrel_bits": "4", "qrel_group_size": "64",
        "qrel_report_dir": str(cache_dir / "report"), "qrel_kl_threshold": "2:9,3:9,4:9,8:9",
        "qrel_allow_pickle": False, "qrel_cache_dir": str(cache_dir), "qrel_no_cache": no_cache,
    }
    values.update({f"qrel_{k}": v for k, v in opts.items()})
    return QrelSession(QrelConfig.from_values(values, Path.cwd()), active=True, is_worker=False)


def run_session(session: QrelSession) -> dict:
    """{variant id: (KL to base, variant info)} for every runnable variant."""
    return {v.id: (session.kl_to_base(v), session.variant_info[v.id]) for v in session.variants if not v.skip_reason}
