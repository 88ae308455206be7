"""The model a trial would train, built from its config on the meta device (no weights allocated), with the
method applied by the same builders a trial uses, and its parameters counted as a trial counts them.

A folder holding only a config.json is enough: that is how a 3B or 70B model is planned on a laptop.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from peftbench.config.spec import EMBEDDED, EMBEDDED_DECODER, MethodSpec
from peftbench.errors import PeftbenchError
from peftbench.measure.params import base_parameter_count, count_parameters
from peftbench.methods import BuildContext, build_model


@dataclass(frozen=True)
class ModelSource:
    """Where a model's config lives, and whether its weights are there too (they decide the pooler)."""

    name: str
    folder: str | None  # a local folder holding config.json; None: a hub id read from the local cache
    config: object


def model_source(model: str) -> ModelSource:
    """The model's config, offline: the embedded models, a local folder (config.json alone will do) or a hub
    id already in the local cache. Anything else is one line."""
    from transformers import AutoConfig

    if model == EMBEDDED:
        from peftbench.models.loading import embedded_model_path

        folder = embedded_model_path()
    elif model == EMBEDDED_DECODER:
        from peftbench.models.embedded_decoder import ensure_converted

        folder = ensure_converted()
    else:
        p = Path(model).expanduser()
        if p.exists():
            if not (p / "config.json").is_file():
                raise PeftbenchError(f"model folder {p} has no config.json")
            folder = str(p)
        elif model.startswith((".", "/", "~")):
            raise PeftbenchError(f"model path {model} does not exist")
        else:
            folder = None
    try:
        config = AutoConfig.from_pretrained(folder or model, local_files_only=True)
    except Exception as exc:  # noqa: BLE001 - unknown model_type, missing cache, bad JSON all land here
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        where = "its config.json" if folder else "offline (not in the local Hugging Face cache)"
        raise PeftbenchError(f"cannot read model {model!r} from {where}: {first[:200]}") from None
    return ModelSource(model, folder, config)


def base_on_meta(source: ModelSource, peft_task_type: str, num_labels: int) -> nn.Module:
    """The base with the trial's head (a classifier, or the LM head for a causal-LM task), on the meta device:
    no byte of a weight is allocated, whatever the model's size."""
    from accelerate import init_empty_weights
    from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification

    config = source.config
    if peft_task_type == "CAUSAL_LM":
        auto = AutoModelForCausalLM
    else:
        auto = AutoModelForSequenceClassification
        config.num_labels = num_labels
        if getattr(config, "pad_token_id", None) is None:  # a decoder classifier finds its last token by it
            eos = getattr(config, "eos_token_id", None)
            config.pad_token_id = (eos[0] if isinstance(eos, list) and eos else eos) or 0
    try:
        # everything on the meta device, buffers too: accelerate's default creates each parameter on the CPU
        # first, which under torch.use_deterministic_algorithms (it fills new memory) touched a 3B model's
        # 1.5 GB embedding; the trace gives buffers fake values anyway (trace.fake_copy)
        with init_empty_weights(include_buffers=True):
            model = auto.from_config(config)
    except (ValueError, KeyError) as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise PeftbenchError(f"cannot build {source.name!r} ({type(config).__name__}) as a "
                             f"{'causal LM' if auto is AutoModelForCausalLM else 'sequence classifier'}: "
                             f"{first[:200]}") from None
    _real_pooler_bias(model, source)
    return model


def _real_pooler_bias(model: nn.Module, source: ModelSource) -> None:
    """The one parameter whose value decides the accounting: an all-zero pooler bias means a never-trained
    pooler, which trains as part of the head (models.untrained_pooler). Read from the checkpoint when it is
    there; a config-only folder is taken to hold a trained pooler."""
    for name, module in model.named_modules():
        dense = getattr(module, "dense", None)
        if name.rsplit(".", 1)[-1] != "pooler" or getattr(dense, "bias", None) is None:
            continue
        value = _checkpoint_tensor(source.folder, f"{name}.dense.bias")
        untrained = value is not None and not bool(value.abs().sum())
        size = dense.bias.shape
        dense.bias = nn.Parameter(torch.zeros(size) if untrained else torch.ones(size))


def _checkpoint_tensor(folder: str | None, suffix: str) -> torch.Tensor | None:
    """One tensor from a folder's safetensors (read alone, not the whole file), matched by name suffix."""
    if folder is None:
        return None
    from safetensors import safe_open

    tail = ".".join(suffix.split(".")[-3:])  # pooler.dense.bias, with or without the base's prefix
    for path in sorted(Path(folder).glob("*.safetensors")):
        with safe_open(str(path), framework="pt") as fh:
            for key in fh.keys():
                if key == tail or key.endswith("." + tail):
                    return fh.get_tensor(key)
    return None


def has_weights(source: ModelSource) -> bool:
    return source.folder is not None and (any(Path(source.folder).glob("*.safetensors"))
                                          or any(Path(source.folder).glob("*.bin")))


@dataclass
class MetaBuild:
    """A method applied on the meta-device base: the model to trace and the exact accounting."""

    model: nn.Module
    counts: dict
    heads: list[str]


def build_on_meta(source: ModelSource, spec: MethodSpec, ctx: BuildContext, checkpointing: bool = False
                  ) -> MetaBuild:
    """Build as a trial does (trial/run.py): the base, its GPU options, the method, then the counts."""
    base = base_on_meta(source, ctx.task_type, ctx.num_labels)
    if checkpointing:
        from peftbench.config.spec import TrainSpec
        from peftbench.models.gpu_options import apply_gpu_options

        base = apply_gpu_options(base, TrainSpec(gradient_checkpointing=True))
    base_params, heads = base_parameter_count(base)
    model = build_model(base, spec, ctx)
    for name, p in model.named_parameters():
        # peft re-creates AdaLoRA's fixed rank counter when it moves the adapter to the meta device, and the
        # copy comes back trainable; on a real base it stays frozen (peft's own update_layer sets that)
        if ".ranknum." in name:
            p.requires_grad_(False)
    counts = count_parameters(model, base_params, heads)
    return MetaBuild(model, counts, heads)


def config_summary(source: ModelSource) -> dict:
    """The shape figures a plan prints and a calibration is keyed by."""
    c = source.config
    text = getattr(c, "text_config", None) or c
    return {"model_type": getattr(c, "model_type", None),
            "hidden_size": getattr(text, "hidden_size", None),
            "layers": getattr(text, "num_hidden_layers", None),
            "heads": getattr(text, "num_attention_heads", None),
            "intermediate_size": getattr(text, "intermediate_size", None),
            "vocab_size": getattr(text, "vocab_size", None)}


def shape_key(source: ModelSource) -> str:
    return json.dumps(config_summary(source), sort_keys=True)
