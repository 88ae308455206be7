"""The untrained model's figures in a generation task: its exact match on validation and test (the zero-shot
floor) and its cross-entropy on the general-text sample (forgetting's "before").

Every generate trial records them beside its own, so "what did training buy" and "what did it cost" are read
in one record. They are a property of the setup (model, data and split, template, generation limit, text
sample), the same for every method and seed, so the first trial of a setup measures them and keeps them in
a small cache file that later trials read back (a trial that finds no file measures them again: the result
is deterministic).
"""

from __future__ import annotations

import hashlib
import json
import os
from typing import Any

import torch

from peftbench.config.spec import TrialSpec
from peftbench.measure.forgetting import next_token_ce
from peftbench.models.embedded_decoder import cache_root
from peftbench.stats.predictions import encode
from peftbench.tasks.generate.evaluate import evaluate_generation


def _key(spec: TrialSpec, data, device: torch.device, bf16: bool, sample) -> str:
    parts = {"model": spec.model, "split_hash": data.provenance.get("split_hash"),
             "general_text": sample.provenance.get("token_hash"),
             "template": data.template, "max_new_tokens": data.max_new_tokens, "max_length": spec.data.max_length,
             "eval_size": spec.eval_size, "device": device.type, "bf16": bf16}
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:20]


def _measure(model, data, spec: TrialSpec, tokenizer, device: torch.device, bf16: bool,
             sample) -> dict[str, Any]:
    out: dict[str, Any] = {"general_ce_before": next_token_ce(model, sample, device)}
    test = data.test.take(spec.eval_size) if spec.eval_size else data.test
    for prefix, rows in (("zero_shot_val_", data.validation), ("zero_shot_", test)):
        # exact match only: the floor is what the untrained model answers (its log-likelihood is not a floor)
        scored = evaluate_generation(model, rows, tokenizer, device, data.pad_token_id, data.max_new_tokens,
                                     bf16=bf16, with_nll=False)
        out.update({f"{prefix}exact_match": scored["exact_match"],
                    f"{prefix}correct": encode(scored["correct"].astype(int))})
        if prefix == "zero_shot_":
            out["zero_shot_generations"] = scored["generations"]
    return out


def zero_shot_floor(model, data, spec: TrialSpec, tokenizer, device: torch.device, sample, bf16: bool = False
                    ) -> dict[str, Any]:
    """The untrained model's figures (`model` must be the base as loaded; `sample`: the general-text
    batches of measure/forgetting.py), from the cache when present."""
    path = cache_root() / "zero-shot" / f"{_key(spec, data, device, bf16, sample)}.json"
    if path.is_file():
        try:
            return json.loads(path.read_text())
        except (OSError, ValueError):
            pass  # a damaged file is measured again and replaced
    out = _measure(model, data, spec, tokenizer, device, bf16, sample)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".{os.getpid()}.tmp")
    tmp.write_text(json.dumps(out))
    os.replace(tmp, path)  # atomic: a concurrent trial reads the old or the new file, never half of one
    return out

