"""Prompt/response data for `--task generate`: what a causal LM is trained on and scored with.

Rows come either from prompt and response columns, or from a template over the text and label columns
(the response is " " + the label's name: "verbalised labels"). The split is the classification split's
own (data/split.py) over the same texts and labels, so a generate trial and a classify trial on one dataset
and seed train and test on the same rows.

Truncation (to `max_length` tokens for prompt + response): the response is never cut, since it is what is
trained and scored, and a cut reference would reward a cut answer. Only the prompt's *text* is cut:
- template rows: the text's end, so the template's fixed words (the cue right before the answer, e.g.
  "Sentiment:") survive and the kept text is the same start a classifier sees;
- prompt-column rows: the prompt's start, so what the response follows directly (the question) survives.
A row whose response and fixed words alone leave no room for text is dropped and counted.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from peftbench.config.spec import EMBEDDED, DataSpec
from peftbench.data.perturb import PERTURBATIONS
from peftbench.data.prepared import PreparedData
from peftbench.data.sources import (
    FILE_READERS,
    LabelledText,
    load_source,
    match_ood_labels,
    read_hf_dataset,
    read_table,
)
from peftbench.data.split import Split, split_data, stratified_order
from peftbench.data.truncation import cut_counts, truncation_note
from peftbench.errors import PeftbenchError
from peftbench.models.loading import load_tokenizer
from peftbench.tasks.generate.templates import (  # noqa: F401 (DEFAULT_TEMPLATE, TEMPLATES: re-exported)
    DEFAULT_TEMPLATE,
    TEMPLATES,
    default_template,
)

IGNORE = -100  # the label that keeps a position out of the loss (transformers' convention)

PROMPT_ONLY = "{text}"  # prompt-column rows: the whole prompt is the (cuttable) text


@dataclass
class GenerationSet:
    """Tokenized prompt/response rows; plain numpy, picklable like TokenizedSet."""

    prompt_ids: list[np.ndarray]
    response_ids: list[np.ndarray]  # the response's tokens + eos, so a trained model learns to stop
    references: list[str]  # the response text, for exact match
    labels: np.ndarray | None = None  # class index per row when responses are verbalised labels
    label_names: list[str] | None = None
    truncation: dict[str, int] | None = None  # what max_length cut making the set (data/truncation.py)

    def __len__(self) -> int:
        return len(self.prompt_ids)

    @property
    def verbalised(self) -> bool:
        return self.labels is not None

    def take(self, n: int) -> GenerationSet:
        return GenerationSet(self.prompt_ids[:n], self.response_ids[:n], self.references[:n],
                             None if self.labels is None else self.labels[:n], self.label_names)

    def subset(self, idx) -> GenerationSet:
        return GenerationSet([self.prompt_ids[i] for i in idx], [self.response_ids[i] for i in idx],
                             [self.references[i] for i in idx],
                             None if self.labels is None else self.labels[np.asarray(idx, dtype=np.int64)],
                             self.label_names)

    @property
    def lengths(self) -> np.ndarray:
        """Prompt + response tokens: what a training row costs (train_batches buckets by it)."""
        return self.prompt_lengths + np.fromiter((len(x) for x in self.response_ids), np.int64, len(self))

    @property
    def prompt_lengths(self) -> np.ndarray:
        return np.fromiter((len(x) for x in self.prompt_ids), dtype=np.int64, count=len(self))

    def batch(self, idx, pad_id: int) -> dict[str, torch.Tensor]:
        """A right-padded training batch; labels are -100 on prompt and padding: the loss is on the response
        (and its eos) only."""
        rows = [np.concatenate([self.prompt_ids[i], self.response_ids[i]]) for i in idx]
        width = max(len(r) for r in rows)
        input_ids = np.full((len(rows), width), pad_id, dtype=np.int64)
        mask = np.zeros((len(rows), width), dtype=np.int64)
        labels = np.full((len(rows), width), IGNORE, dtype=np.int64)
        for r, (i, row) in enumerate(zip(idx, rows, strict=True)):
            p = len(self.prompt_ids[i])
            input_ids[r, : len(row)] = row
            mask[r, : len(row)] = 1
            labels[r, p: len(row)] = row[p:]
        return {"input_ids": torch.from_numpy(input_ids), "attention_mask": torch.from_numpy(mask),
                "labels": torch.from_numpy(labels)}

    def prompt_batch(self, idx, pad_id: int) -> dict[str, torch.Tensor]:
        """The prompts alone, left-padded, for generate: every row's next token sits in the last column."""
        width = max(len(self.prompt_ids[i]) for i in idx)
        input_ids = np.full((len(idx), width), pad_id, dtype=np.int64)
        mask = np.zeros((len(idx), width), dtype=np.int64)
        for r, i in enumerate(idx):
            x = self.prompt_ids[i]
            input_ids[r, width - len(x):] = x
            mask[r, width - len(x):] = 1
        return {"input_ids": torch.from_numpy(input_ids), "attention_mask": torch.from_numpy(mask)}


@dataclass
class GenerationRows:
    """Untokenized rows: the text that goes into `template`'s {text}, and the response."""

    texts: list[str]
    responses: list[str]
    template: str
    labels: np.ndarray  # class index; all 0 for free-form responses (one stratum for the split)
    label_names: list[str] | None  # None: free-form responses
    origin: str
    cut: str  # "end" (template rows) or "start" (prompt-column rows): which end of the text truncation cuts
    splits: dict[str, np.ndarray] | None = None
    dropped: dict[str, int] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.texts)

    def as_labelled(self) -> LabelledText:
        """The view data/split.py splits: equal texts (prompts) stay on one side, strata by class."""
        return LabelledText(self.texts, self.labels, self.label_names or ["response"], self.origin,
                            splits=self.splits, dropped=self.dropped)


def rows_from_labelled(data: LabelledText, template: str) -> GenerationRows:
    """Template rows: the prompt is `template` around the text, the response " " + the label's name."""
    if "{text}" not in template:
        raise PeftbenchError(f"template must hold {{text}} where the text goes, got {template!r}")
    responses = [" " + data.label_names[c] for c in data.labels]
    return GenerationRows(list(data.texts), responses, template, data.labels, list(data.label_names),
                          data.origin, "end", data.splits, dict(data.dropped))


def _blank(col: pd.Series) -> np.ndarray:
    return (col.isna() | col.astype(str).str.strip().eq("")).to_numpy()


def rows_from_table(df: pd.DataFrame, prompt_column: str, response_column: str, origin: str,
                    split_of: np.ndarray | None = None,
                    split_names: list[str] | None = None) -> GenerationRows:
    """Prompt-column rows. Rows with an empty prompt or response are dropped and counted."""
    for col, what in ((prompt_column, "prompt"), (response_column, "response")):
        if col not in df.columns:
            raise PeftbenchError(f"{origin}: no {what} column {col!r} "
                                 f"(columns: {', '.join(map(str, df.columns))})")
    no_prompt, no_response = _blank(df[prompt_column]), _blank(df[response_column])
    keep = ~(no_prompt | no_response)
    if not keep.any():
        raise PeftbenchError(f"{origin} has no rows with both a prompt in {prompt_column!r} and a response "
                             f"in {response_column!r}")
    kept = df.loc[keep]
    splits = None
    if split_of is not None and split_names is not None:
        kept_split = split_of[keep]
        splits = {s: np.flatnonzero(kept_split == i) for i, s in enumerate(split_names)}
    dropped = {"missing_prompt": int(no_prompt.sum()),
               "missing_response": int((no_response & ~no_prompt).sum())}
    prompts, responses = kept[prompt_column].astype(str).tolist(), kept[response_column].astype(str).tolist()
    return GenerationRows(prompts, responses, PROMPT_ONLY, np.zeros(len(prompts), dtype=np.int64), None,
                          origin, "start", splits, dropped)


def load_generation_rows(spec: DataSpec) -> GenerationRows:
    """The rows `spec` names: prompt/response columns when given, else the template over text and label."""
    if spec.prompt_column is None:
        data = load_source(spec.source, spec.text_column, spec.label_column,
                           unlabelled_value=spec.unlabelled_value)
        return rows_from_labelled(data, spec.template or default_template(spec.source))
    if spec.source == EMBEDDED:
        raise PeftbenchError("the embedded dataset has no prompt/response columns; drop --prompt-column and "
                             "--response-column to use a template over its text and labels")
    p = Path(spec.source).expanduser()
    if p.is_file():
        return rows_from_table(read_table(p), spec.prompt_column, spec.response_column, str(p))
    if spec.source.startswith((".", "/", "~")) or p.suffix.lower() in FILE_READERS:
        raise PeftbenchError(f"data file {spec.source} does not exist")
    df, split_names, split_of, _ = read_hf_dataset(spec.source)
    return rows_from_table(df, spec.prompt_column, spec.response_column, f"dataset {spec.source}",
                           split_of, split_names)


def _ids(tok, texts: list[str], special: bool) -> list[np.ndarray]:
    """Token ids; with `special`, the tokenizer's own start tokens (a BOS) but never a closing eos, which
    some tokenizers append and which would tell the model the text ended before the answer."""
    if not texts:
        return []
    enc = tok(texts, add_special_tokens=special, padding=False, truncation=False, verbose=False)["input_ids"]
    out = [np.asarray(x, dtype=np.int64) for x in enc]
    eos = tok.eos_token_id
    if special and eos is not None:
        out = [x[:-1] if len(x) and x[-1] == eos else x for x in out]
    return out


def _fill(template: str, text: str) -> str:
    return template.replace("{text}", text)  # not str.format: a template may hold other braces


def _cut_text(tok, template: str, text: str, budget: int, cut: str) -> np.ndarray | None:
    """The prompt's ids in at most `budget` tokens, cutting only the text (None: no room for any text).

    Tokens merge across the cut, so the kept length is found by shrinking until the whole prompt fits."""
    text_ids = _ids(tok, [text], special=False)[0]
    prompt = _ids(tok, [_fill(template, text)], special=True)[0]
    keep = len(text_ids) - (len(prompt) - budget)
    while keep > 0:
        part = text_ids[:keep] if cut == "end" else text_ids[len(text_ids) - keep:]
        kept = tok.decode(part.tolist())
        prompt = _ids(tok, [_fill(template, kept if cut == "end" else kept.lstrip())], special=True)[0]
        if len(prompt) <= budget:
            return prompt
        keep -= max(1, len(prompt) - budget)
    return None


def tokenize_rows(tok, rows: GenerationRows, idx: np.ndarray, max_length: int
                  ) -> tuple[GenerationSet, dict[str, int]]:
    """Rows `idx` tokenized within `max_length` (see the module's truncation rule).

    Returns the set and counts: prompts truncated, rows dropped (no room for their text)."""
    eos = tok.eos_token_id
    if eos is None:
        raise PeftbenchError("the tokenizer has no end-of-sequence token; a generation task needs one to "
                             "stop")
    texts = [rows.texts[i] for i in idx]
    responses = [rows.responses[i] for i in idx]
    unique = sorted(set(responses))  # verbalised labels: a handful of distinct responses
    by_text = dict(zip(unique, _ids(tok, unique, special=False), strict=True))
    resp = [np.append(by_text[r], eos) for r in responses]
    prompts = _ids(tok, [_fill(rows.template, t) for t in texts], special=True)
    keep = np.ones(len(idx), dtype=bool)
    truncated, whole = 0, [len(p) + len(a) for p, a in zip(prompts, resp, strict=True)]
    for r, (p, a) in enumerate(zip(prompts, resp, strict=True)):
        budget = max_length - len(a)
        if len(p) > budget:
            fitted = _cut_text(tok, rows.template, texts[r], budget, rows.cut) if budget > 0 else None
            if fitted is None:
                keep[r] = False
            else:
                prompts[r] = fitted
                truncated += 1
    kept = np.flatnonzero(keep)
    labels = None if rows.label_names is None else rows.labels[idx][kept]
    gset = GenerationSet([prompts[i] for i in kept], [resp[i] for i in kept], [responses[i] for i in kept],
                         labels, rows.label_names)
    gset.truncation = cut_counts(whole, [len(p) + len(a) if k else 0 for p, a, k in zip(prompts, resp, keep)])
    return gset, {"prompts_truncated": truncated, "rows_dropped_too_long": int((~keep).sum())}


def default_max_new_tokens(tok, rows: GenerationRows, idx: np.ndarray) -> int:
    """The longest reference response among rows `idx` in tokens, + 1 for the eos that ends it."""
    unique = sorted({rows.responses[i] for i in idx})
    return max(len(x) for x in _ids(tok, unique, special=False)) + 1


def generation_hash(rows: GenerationRows, split: Split) -> str:
    """Hash of each split's prompts and responses (and the template): equal hashes, equal data."""
    h = hashlib.sha256(rows.template.encode())
    for name, idx in (("train", split.train_pool), ("validation", split.validation), ("test", split.test)):
        h.update(name.encode())
        for i in idx:
            h.update(rows.texts[i].encode("utf-8", "replace") + b"\x1f")
            h.update(rows.responses[i].encode("utf-8", "replace") + b"\x1e")
    return h.hexdigest()[:16]


@dataclass
class PreparedGeneration(PreparedData):
    """PreparedData's fields (the sets are GenerationSets; num_labels 0 and label_names [] when free-form)
    plus what generation needs."""

    max_new_tokens: int = 1
    eos_token_id: int = 2
    template: str = PROMPT_ONLY


def _perturbed(tok, spec: DataSpec, rows: GenerationRows, test_idx: np.ndarray
               ) -> tuple[dict[str, GenerationSet], dict[str, str]]:
    """Each perturbation of the first test rows' text (never the template or the response)."""
    idx = test_idx[: min(spec.perturbation_size, len(test_idx))]
    clean, _ = tokenize_rows(tok, rows, idx, spec.max_length)
    out, skipped = {}, {}
    for kind, fn in PERTURBATIONS.items():
        texts = list(rows.texts)
        for i in idx:
            texts[i] = fn(rows.texts[i], spec.perturbation_rate, spec.split_seed)
        pset, _ = tokenize_rows(tok, replace(rows, texts=texts), idx, spec.max_length)
        same = len(pset) == len(clean) and all(np.array_equal(a, b) for a, b in
                                               zip(pset.prompt_ids, clean.prompt_ids, strict=True))
        if same:
            skipped[kind] = "leaves the token ids unchanged"
        else:
            out[kind] = pset
    return out, skipped


def _ood(tok, spec: DataSpec, rows: GenerationRows) -> tuple[GenerationSet | None, dict[str, Any], list[str]]:
    """Template rows only: the OOD source's texts in the same template, its labels matched by name."""
    if spec.ood_source is None:
        return None, {"ood_dataset": None, "ood_size": 0}, []
    if rows.label_names is None:
        return None, {"ood_dataset": None, "ood_size": 0}, [
            "out-of-domain data: none for prompt/response columns (it needs text and label columns)"]
    raw = load_source(spec.ood_source, spec.ood_text_column, spec.ood_label_column, ood=True,
                      unlabelled_value=spec.unlabelled_value)
    data, used = match_ood_labels(raw, rows.label_names, spec.ood_label_map, spec.ood_same_codes)
    idx = stratified_order(data.labels, np.random.default_rng(spec.split_seed))[: spec.ood_size]
    ood_rows = rows_from_labelled(data, rows.template)
    ood, _ = tokenize_rows(tok, ood_rows, idx, spec.max_length)
    return ood, {"ood_dataset": raw.origin, "ood_size": len(ood), "ood_label_map": used,
                 "ood_rows_dropped": data.dropped}, []


def prepare_generation_data(spec: DataSpec, model: str, max_train_size: int, tokenizer=None
                            ) -> PreparedGeneration:
    """Load, split, tokenize (and perturb, and the OOD set for template rows) the study's data once."""
    spec.validate()
    rows = load_generation_rows(spec)
    split = split_data(rows.as_labelled(), spec.split_seed, spec.validation_size, spec.test_size,
                       spec.resplit)
    if max_train_size > len(split.train_pool):
        raise PeftbenchError(f"train size {max_train_size} is larger than the training pool "
                             f"({len(split.train_pool)} examples after holding out validation and test)")
    tok = tokenizer if tokenizer is not None else load_tokenizer(model)
    parts, counts = {}, {}
    for name, idx in (("train_pool", split.train_pool[:max_train_size]), ("validation", split.validation),
                      ("test", split.test)):
        parts[name], counts[name] = tokenize_rows(tok, rows, idx, spec.max_length)
    perturbed, skipped = _perturbed(tok, spec, rows, split.test)
    ood, ood_provenance, notes = _ood(tok, spec, rows)
    # The limit is read off train and validation only: the test split is never looked at to set it.
    seen = np.concatenate([split.train_pool, split.validation])
    max_new = spec.max_new_tokens or default_max_new_tokens(tok, rows, seen)
    dropped = sum(c["rows_dropped_too_long"] for c in counts.values())
    if dropped:
        notes.append(f"dropped {dropped} rows whose response leaves no room for their text in "
                     f"max_length {spec.max_length}")
    for why, n in rows.dropped.items():
        if n:
            notes.append(f"dropped {n} rows: {why.replace('_', ' ')}")
    cut = {k: {**v, **parts[k].truncation} for k, v in counts.items()}
    cut |= {"ood": ood.truncation} if ood is not None else {}
    notes += [n for n in [truncation_note(cut, spec.max_length)] if n]
    pad = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id
    provenance = {
        "task": "generate", "dataset": rows.origin, "dataset_rows": len(rows),
        "responses": "verbalised labels" if rows.label_names else "response column",
        "template": rows.template, "label_names": rows.label_names or [],
        "rows_dropped": dict(rows.dropped),
        "official_splits": ({s: len(i) for s, i in rows.splits.items()} if rows.splits else None),
        "split_origin": split.origin, "split_seed": spec.split_seed,
        "split_sizes": {"train_pool": len(split.train_pool), "validation": len(split.validation),
                        "test": len(split.test)},
        "split_hash": generation_hash(rows, split),
        "duplicate_texts_dropped": split.duplicates.get("duplicate_rows_dropped", 0),
        "duplicate_texts_grouped": split.duplicates.get("repeated_texts", 0),
        "conflicting_label_texts": split.duplicates.get("conflicting_label_texts", 0),
        "truncation": cut, "max_length": spec.max_length,
        "max_new_tokens": max_new,
        "max_new_tokens_from": "--max-new-tokens" if spec.max_new_tokens else
                               "longest train/validation response + 1",
        **ood_provenance, "perturbation_rate": spec.perturbation_rate,
        "perturbation_size": len(next(iter(perturbed.values()))) if perturbed else 0,
        "perturbations_skipped": dict(skipped),
    }
    return PreparedGeneration(
        train_pool=parts["train_pool"], validation=parts["validation"], test=parts["test"], ood=ood,
        perturbed=perturbed, num_labels=len(rows.label_names or []), label_names=list(rows.label_names or []),
        pad_token_id=int(pad), provenance=provenance, perturbations_skipped=skipped, notes=notes,
        max_new_tokens=int(max_new), eos_token_id=int(tok.eos_token_id), template=rows.template)
