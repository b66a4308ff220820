"""GGUF files of zoo models, written by the gguf package's own writer (gguf.GGUFWriter) and
quantized by its own Python quantizers (gguf.quants), as llama.cpp's convert_hf_to_gguf.py
lays a Llama out: its metadata, its byte-level BPE tokenizer, q and k rows permuted.

    python tests/gguf_files.py zoo-l Q4_0 zoo-l-Q4_0.gguf [--types ffn_down=Q8_0] [--embd F16]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any, Callable

import numpy as np

# the types gguf.quants quantizes in Python (gguf 0.19): those of 32-weight blocks fit the zoo's
# rows of 64; TQ1_0 and TQ2_0 (blocks of 256) quantize only zoo-l's ffn_down, so no file of them
PYTHON_TYPES = ("Q4_0", "Q4_1", "Q5_0", "Q5_1", "Q8_0", "MXFP4")


def _permute(weights: np.ndarray, n_head: int) -> np.ndarray:
    """q and k rows in llama.cpp's rotary order (convert_hf_to_gguf.py's LlamaModel.permute);
    transformers' GGUF loader undoes it."""
    return weights.reshape(n_head, 2, weights.shape[0] // n_head // 2, *weights.shape[1:]).swapaxes(1, 2).reshape(
        weights.shape)


def write_gguf(model_dir: Path | str, qtype: str, out: Path | str, types: dict[str, str] | None = None,
               embd: str | None = None, base_name: str | None = None, architecture: str = "llama",
               change: Callable[[str, np.ndarray], np.ndarray] | None = None,
               tokens: Callable[[list[str]], list[str]] | None = None,
               metadata: Callable[[Any], None] | None = None) -> Path:
    """``model_dir`` (a zoo Llama) as a GGUF file at ``out``: every linear weight of its blocks
    in ``qtype`` (or the type ``types`` gives its GGUF name's end, e.g. ``ffn_down``), the
    token embeddings in ``embd`` (default: ``qtype``), the norms in F32; ``base_name`` written
    as its general.base_model.0.name. For files that must be refused: ``change`` gives each
    tensor's stored value from its GGUF name and value, ``tokens`` the token list written,
    ``metadata`` adds keys with the writer's own methods."""
    import gguf
    from safetensors.numpy import load_file

    model_dir, out = Path(model_dir), Path(out)
    config = json.loads((model_dir / "config.json").read_text())
    tokenizer = json.loads((model_dir / "tokenizer.json").read_text())
    tensors = load_file(str(model_dir / "model.safetensors"))
    layers = config["num_hidden_layers"]
    names = gguf.get_tensor_name_map(gguf.MODEL_ARCH.LLAMA, layers)

    writer = gguf.GGUFWriter(str(out), architecture)
    writer.add_name(model_dir.name)
    if base_name:
        writer.add_base_model_count(1)
        writer.add_base_model_name(0, base_name)
    writer.add_block_count(layers)
    writer.add_context_length(config["max_position_embeddings"])
    writer.add_embedding_length(config["hidden_size"])
    writer.add_feed_forward_length(config["intermediate_size"])
    writer.add_head_count(config["num_attention_heads"])
    writer.add_head_count_kv(config["num_key_value_heads"])
    writer.add_rope_dimension_count(config.get("head_dim") or config["hidden_size"] // config["num_attention_heads"])
    writer.add_rope_freq_base(float(config["rope_parameters"]["rope_theta"]))
    writer.add_layer_norm_rms_eps(config["rms_norm_eps"])
    writer.add_vocab_size(config["vocab_size"])
    if metadata:
        metadata(writer)
    writer.add_file_type(int(getattr(gguf.LlamaFileType, f"MOSTLY_{qtype}", gguf.LlamaFileType.ALL_F32)))

    vocab = tokenizer["model"]["vocab"]
    vocab_list = sorted(vocab, key=vocab.get)
    added = {t["id"]: t for t in tokenizer["added_tokens"]}
    merges = [m if isinstance(m, str) else " ".join(m) for m in tokenizer["model"]["merges"]]
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre("default")
    writer.add_token_list(tokens(list(vocab_list)) if tokens else vocab_list)
    writer.add_token_types([gguf.TokenType.CONTROL if i in added else gguf.TokenType.NORMAL for i in range(len(vocab_list))])
    writer.add_token_merges(merges)
    special = {t["content"]: t["id"] for t in tokenizer["added_tokens"]}
    writer.add_bos_token_id(special["<s>"])
    writer.add_eos_token_id(special["</s>"])
    writer.add_unk_token_id(special["<unk>"])
    writer.add_pad_token_id(special["<pad>"])
    writer.add_add_bos_token(True)  # the zoo's post-processor puts <s> first
    writer.add_add_eos_token(False)

    for hf_name, value in tensors.items():
        module, _, leaf = hf_name.rpartition(".")
        name = f"{names.get_name(module)}.{leaf}"
        data = np.ascontiguousarray(value.astype(np.float32))
        if name.endswith(("attn_q.weight", "attn_k.weight")):
            heads = config["num_attention_heads" if "attn_q" in name else "num_key_value_heads"]
            data = _permute(data, heads)
        data = change(name, data) if change else data
        if data.ndim == 1:
            kind = "F32"
        elif name.startswith("token_embd"):
            kind = embd or qtype
        else:
            kind = next((t for end, t in (types or {}).items() if name.endswith(f"{end}.weight")), qtype)
        qt = gguf.GGMLQuantizationType[kind]
        raw = qt == gguf.GGMLQuantizationType.F32 or data.dtype == np.uint8  # uint8: blocks given by `change`
        stored = data if raw else gguf.quants.quantize(data, qt)
        writer.add_tensor(name, stored, raw_dtype=qt)

    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return out


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model", help="a zoo name or a Llama directory")
    parser.add_argument("type", help=f"the linear weights' type: {', '.join(PYTHON_TYPES)}")
    parser.add_argument("out")
    parser.add_argument("--types", default="", help="per-tensor types, e.g. ffn_down=Q8_0,attn_v=Q8_0")
    parser.add_argument("--embd", default=None, help="the token embeddings' type (default: the type)")
    parser.add_argument("--base", default=None, help="the base model the file names (general.base_model.0.name)")
    args = parser.parse_args()
    from pytest_qrel.models import ZOO_MODELS, zoo_dir

    source = zoo_dir() / args.model if args.model in ZOO_MODELS else Path(args.model)
    per = dict(item.split("=", 1) for item in args.types.split(",") if item)
    print(write_gguf(source, args.type, args.out, per, args.embd, args.base))
