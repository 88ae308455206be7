"""Studies turn a question into a list of TrialSpecs: tradeoff, data-efficiency, rank sweep.

Defaults are the seed notebook's: its method set, its data sizes, its ranks and epochs.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from .config import EMBEDDED, DataSpec, MethodSpec, TrainSpec, TrialSpec
from .errors import PeftbenchError
from .methods import SEED_PRESETS, parse_method, parse_methods

STUDIES = ("tradeoff", "data-efficiency", "rank-sweep")
DATA_EFFICIENCY_METHODS = ["Full", "LoRA-r8", "BitFit", "PrefixTuning-len32"]
DATA_EFFICIENCY_SIZES = [100, 250, 500, 1000]
DATA_EFFICIENCY_EVAL_SIZE = 200  # the seed's fixed evaluation set
RANK_SWEEP_RANKS = [1, 2, 4, 8, 16, 32, 64]

# Default study sizes, chosen so the whole seed method set runs in under 15 minutes on 2 CPU cores now that
# every trial also reads 1,000 validation rows and 3 x 400 perturbed rows.
TRADEOFF_TRAIN = TrainSpec(train_size=1000, epochs=2, batch_size=16, latency_runs=30, throughput_batches=3)
QUICK_TRAIN = TrainSpec(train_size=256, epochs=2, batch_size=8, latency_runs=20, throughput_batches=2)
# Quick: perturb the whole (small) test split, the minimum the robustness drop is read on.
QUICK_DATA = DataSpec(validation_size=300, test_size=300, ood_size=200, perturbation_size=300)


@dataclass
class StudyOptions:
    model: str = EMBEDDED
    data: DataSpec = dataclasses.field(default_factory=DataSpec)
    train: TrainSpec = dataclasses.field(default_factory=lambda: TRADEOFF_TRAIN)
    seeds: int = 1
    methods: list[str] | None = None
    learning_rate: float | None = None


def seed_list(n: int) -> list[int]:
    if n < 1:
        raise PeftbenchError(f"seeds must be at least 1, got {n}")
    return list(range(n))


def _specs(study: str, methods: list[MethodSpec], opts: StudyOptions, train: TrainSpec,
           eval_size: int | None = None) -> list[TrialSpec]:
    train.validate()
    opts.data.validate()
    return [TrialSpec(study=study, method=m, model=opts.model, data=opts.data, train=train, seed=s,
                      eval_size=eval_size)
            for m in methods for s in seed_list(opts.seeds)]


def tradeoff(opts: StudyOptions) -> list[TrialSpec]:
    methods = parse_methods(list(SEED_PRESETS) if opts.methods is None else opts.methods, opts.learning_rate)
    return _specs("tradeoff", methods, opts, opts.train)


def data_efficiency(opts: StudyOptions, sizes: list[int] | None = None, epochs: int = 3,
                    batch_size: int = 8) -> list[TrialSpec]:
    sizes = DATA_EFFICIENCY_SIZES if sizes is None else sizes
    if not sizes:
        raise PeftbenchError("the list of training-set sizes is empty")
    bad = [s for s in sizes if s <= 0]
    if bad:
        raise PeftbenchError(f"training-set sizes must be positive, got {bad[0]}")
    if len(set(sizes)) != len(sizes):
        raise PeftbenchError("a training-set size is listed twice")
    methods = parse_methods(DATA_EFFICIENCY_METHODS if opts.methods is None else opts.methods, opts.learning_rate)
    out: list[TrialSpec] = []
    for size in sorted(sizes):
        train = dataclasses.replace(opts.train, train_size=size, epochs=epochs, batch_size=min(batch_size, size))
        out += _specs("data-efficiency", methods, opts, train, eval_size=DATA_EFFICIENCY_EVAL_SIZE)
    return out


def rank_sweep(opts: StudyOptions, ranks: list[int] | None = None, alpha_ratio: float = 2.0,
               targets: str = "attention", train_size: int = 500, epochs: int = 3,
               batch_size: int = 8) -> list[TrialSpec]:
    ranks = RANK_SWEEP_RANKS if ranks is None else ranks
    if not ranks:
        raise PeftbenchError("the list of ranks is empty")
    if alpha_ratio <= 0:
        raise PeftbenchError(f"alpha ratio must be positive, got {alpha_ratio}")
    methods = [parse_method(f"lora:r={r}:alpha={alpha_ratio * r:g}:targets={targets}", opts.learning_rate)
               for r in ranks]
    # Short names for the sweep's table; a non-default learning rate stays in the name (see parse_method).
    methods = [dataclasses.replace(m, name=f"LoRA-r{m.options['r']}" + m.name[m.name.find(":lr="):]
                                   if ":lr=" in m.name else f"LoRA-r{m.options['r']}") for m in methods]
    train = dataclasses.replace(opts.train, train_size=train_size, epochs=epochs, batch_size=batch_size)
    return _specs("rank-sweep", methods, opts, train)
