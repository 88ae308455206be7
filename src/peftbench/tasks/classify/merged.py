"""A classifier merged into its base: the logits must agree with the unmerged model's, and inference is
measured again on the merged model."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from peftbench.config.spec import TrialSpec
from peftbench.data.prepared import PreparedData
from peftbench.measure import inference


def merged_measurements(model, data: PreparedData, spec: TrialSpec, device: torch.device) -> dict[str, Any]:
    """Merge the adapter into the base weights and measure inference again (and check it agrees)."""
    probe = {k: v.to(device) for k, v in data.test.batch(np.arange(min(16, len(data.test))),
                                                        data.pad_token_id).items() if k != "labels"}
    with torch.inference_mode():
        model.eval()
        before = model(**probe).logits.float()
    merged = model.merge_and_unload()
    with torch.inference_mode():
        after = merged(**probe).logits.float()

    def measure() -> dict[str, Any]:
        lat = inference.latency_ms(merged, data.test, spec.train.latency_runs, device, data.pad_token_id)
        return {
            "merged_latency_p50_ms": lat["latency_p50_ms"], "merged_latency_p95_ms": lat["latency_p95_ms"],
            "merged_latency_p25_ms": lat["latency_p25_ms"], "merged_latency_p75_ms": lat["latency_p75_ms"],
            "merged_throughput_per_s": inference.throughput_per_s(merged, data.test, spec.train.throughput_batches,
                                                                  device, data.pad_token_id),
        }

    # the scale the difference is judged against (analysis/timing_trust.py: within 1e-3 of it, at least 1)
    return {**inference.timed_cleanly(measure, device, "merged"),
            "merge_max_logit_diff": float((before - after).abs().max()),
            "merge_logit_scale": float(before.abs().max())}


