"""Decoder inference speed: time to first token, decode tokens/s at batch 1 and batch N, and the check that
merging an adapter leaves greedy outputs as they were.

Every timed call is transformers' own generate, greedy, after warm-up calls; CUDA is synchronised around
each. Decode speed runs a fixed number of new tokens (min_new_tokens == max_new_tokens, so eos cannot end a
row early): tokens/s then measures the model, not how soon it happens to stop. It includes the prompt's
prefill, as a user waiting for N tokens sees it.
"""

from __future__ import annotations

import time
import warnings

import numpy as np
import torch

from peftbench.measure.inference import _sync
from peftbench.tasks.generate.data import GenerationSet
from peftbench.tasks.generate.evaluate import generate_ids


def _prompts(data: GenerationSet, rows: list[int], pad_id: int, device: torch.device) -> dict:
    return {k: v.to(device) for k, v in data.prompt_batch(rows, pad_id).items()}


def _timed_generate(model, batch: dict, device: torch.device, new_tokens: int, pad_id: int) -> float:
    """Seconds for one greedy generate of exactly `new_tokens` tokens per row."""
    _sync(device)
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        out = model.generate(**batch, do_sample=False, num_beams=1, max_new_tokens=new_tokens,
                             min_new_tokens=new_tokens, pad_token_id=pad_id)
    _sync(device)
    seconds = time.perf_counter() - t0
    made = out.shape[1] - batch["input_ids"].shape[1]
    if made != new_tokens:  # a stopping rule beyond eos (a stop string in the generation config)
        raise RuntimeError(f"generate made {made} new tokens, {new_tokens} were asked for")
    return seconds


def _percentiles(ms: list[float], prefix: str) -> dict[str, float]:
    arr = np.asarray(ms)
    p25, p50, p75, p95 = np.percentile(arr, [25, 50, 75, 95])
    figures = {"p50": p50, "p95": p95, "mean": arr.mean(), "p25": p25, "p75": p75}
    return {f"{prefix}_{k}_ms": float(v) for k, v in figures.items()}


@torch.inference_mode()
def time_to_first_token_ms(model, data: GenerationSet, runs: int, device: torch.device, pad_id: int,
                           warmup: int = 3) -> dict[str, float]:
    """Prefill + first token at batch 1 over `runs` real prompts (their own lengths), after `warmup`."""
    model.eval()
    n = len(data)
    times = []
    for i in range(runs + warmup):
        seconds = _timed_generate(model, _prompts(data, [i % n], pad_id, device), device, 1, pad_id)
        if i >= warmup:
            times.append(seconds * 1000)
    return _percentiles(times, "ttft")


@torch.inference_mode()
def decode_tokens_per_s(model, data: GenerationSet, device: torch.device, pad_id: int, batch_size: int = 1,
                        new_tokens: int = 32, repeats: int = 3, warmup: int = 1) -> dict[str, float]:
    """New tokens per second for `batch_size` consecutive prompts generating exactly `new_tokens` each.

    Returns tokens_per_s (batch_size x new_tokens over the median call) and that call's milliseconds."""
    model.eval()
    rows = [j % len(data) for j in range(batch_size)]
    batch = _prompts(data, rows, pad_id, device)
    times = [_timed_generate(model, batch, device, new_tokens, pad_id) for _ in range(warmup + repeats)]
    median = float(np.median(times[warmup:]))
    return {"tokens_per_s": batch_size * new_tokens / median, "ms": median * 1000}


def generation_speed(model, data: GenerationSet, device: torch.device, pad_id: int, runs: int = 20,
                     batch_size: int = 16, new_tokens: int = 32, repeats: int = 3) -> dict[str, float]:
    """The record's decoder inference figures: TTFT percentiles, decode tokens/s at batch 1 and batch N
    (the median of `repeats` timed calls after a warm-up call)."""
    one = decode_tokens_per_s(model, data, device, pad_id, 1, new_tokens, repeats)
    many = decode_tokens_per_s(model, data, device, pad_id, batch_size, new_tokens, repeats)
    return {**time_to_first_token_ms(model, data, runs, device, pad_id),
            "decode_tokens_per_s_batch1": one["tokens_per_s"], "decode_ms_batch1": one["ms"],
            "decode_tokens_per_s_batched": many["tokens_per_s"], "decode_batch_size": batch_size,
            "decode_new_tokens": new_tokens}


def compare_greedy(before: list[np.ndarray], after: list[np.ndarray]) -> dict:
    """How many rows' greedy token ids differ between two runs over the same prompts."""
    differ = sum(not np.array_equal(a, b) for a, b in zip(before, after, strict=True))
    return {"identical": differ == 0, "rows_differing": int(differ), "rows": len(before)}


def same_greedy_outputs(model_a, model_b, prompts: GenerationSet, device: torch.device, pad_id: int,
                        eos_id: int, max_new_tokens: int, batch_size: int = 16) -> dict:
    """Greedy outputs of two models on the same prompts (e.g. an adapter unmerged and merged).

    merge_and_unload changes the model in place, so around a merge call generate_ids before, merge, call it
    on the merged model, and compare_greedy the two; this is that for two live models."""
    a = generate_ids(model_a, prompts, device, pad_id, eos_id, max_new_tokens, batch_size)
    b = generate_ids(model_b, prompts, device, pad_id, eos_id, max_new_tokens, batch_size)
    return compare_greedy(a, b)
