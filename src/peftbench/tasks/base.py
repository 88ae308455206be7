"""What a task is: everything that differs between what a trial can train a model to do, behind one seam.

The trial (trial/run.py) is one skeleton that calls its task at fixed steps; runner, studies, tuning, tables,
report and cli ask the task instead of testing its name (optimum-benchmark's scenario seam). A new task is
one folder holding a `Task` subclass and one line in tasks/registry.py, or a `register()` call.

Every step reads validation before test: `score_validation` decides (the collapse mark, tuning rungs), then
`score_test` reads the test split once, for the reported figures.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, Callable, ClassVar

import torch
from torch import nn

from peftbench.config.spec import DataSpec, TrialSpec
from peftbench.errors import PeftbenchError

Progress = Callable[[dict[str, Any]], None]


class Task(ABC):
    """One task: its data, its base model and head, its scoring and its own measures.

    Class attributes say what the rest of peftbench needs to know without running anything."""

    name: ClassVar[str]
    summary: ClassVar[str]
    peft_task_type: ClassVar[str] = "SEQ_CLS"  # peft's TaskType name for the adapters built on this task
    needs_decoder: ClassVar[bool] = False  # only a causal LM can do it
    can_tune: ClassVar[bool] = True  # --tune's rungs read `rung_score`
    # Which stored field plays each role the tables, the scores and the recommender read. A task stores
    # every figure under its own name; the roles are how decisions read them (see `reading_view`).
    roles: ClassVar[dict[str, str]] = {}
    # Column headers the results table shows for a role, when they differ from the classifier's.
    headers: ClassVar[dict[str, str]] = {}
    headline_label: ClassVar[str] = "accuracy"  # what the headline figure is called in plots and reports
    writes_answers: ClassVar[bool] = False  # the model generates its answers (reports show generations, TTFT)
    # The data-efficiency study's default methods, on an encoder and on a decoder.
    data_efficiency_methods: ClassVar[tuple[tuple[str, ...], tuple[str, ...]] | None] = None
    # Options of DataSpec that only this task takes: anyone else given them stops with one line.
    own_data_options: ClassVar[tuple[str, ...]] = ()

    # --- before anything runs ------------------------------------------------------------------------------
    def check_data(self, data: DataSpec) -> None:
        """Refuse data options this task cannot honour (one line)."""

    def check_model(self, model: str, decoder: bool) -> None:
        if self.needs_decoder and not decoder:
            raise PeftbenchError(f"--task {self.name} needs a causal LM; {model!r} is not one (e.g. --model "
                                 f"smollm2, or a local or hub causal-LM)")

    def check_trial(self, spec: TrialSpec) -> None:
        if spec.tune is not None and not self.can_tune:
            raise PeftbenchError(f"--tune is not available for --task {self.name} yet; set :lr= per method")

    @abstractmethod
    def prepare_data(self, spec: DataSpec, model: str, max_train_size: int) -> Any:
        """Load, split and tokenize the study's data once (the driver does it, before any trial)."""

    # --- inside the trial ------------------------------------------------------------------------------------
    @abstractmethod
    def load_base(self, spec: TrialSpec, data: Any, device: torch.device, load_in_4bit: bool) -> nn.Module:
        """A fresh base model with this task's head."""

    def before_training(self, base: nn.Module, spec: TrialSpec, data: Any, device: torch.device,
                        record: dict[str, Any], say: Progress) -> Any:
        """Measures of the untouched base (a zero-shot floor, forgetting's "before"); returns the task's state
        for the later steps."""
        return None

    @abstractmethod
    def score_validation(self, model: nn.Module, spec: TrialSpec, data: Any, device: torch.device,
                         record: dict[str, Any], state: Any) -> float:
        """Score validation into the record (and the collapse mark); returns the headline validation figure,
        on which every choice is made."""

    def rung_score(self, model: nn.Module, rows: Any, data: Any, device: torch.device,
                   bf16: bool) -> tuple[float, float]:
        """(headline, loss) on some validation rows mid-training, for a tuning rung."""
        raise PeftbenchError(f"--task {self.name} has no tuning rungs")

    @abstractmethod
    def score_test(self, model: nn.Module, spec: TrialSpec, data: Any, device: torch.device,
                   record: dict[str, Any], state: Any) -> None:
        """Read the test split once for the reported figures, and the generalization figures."""

    @abstractmethod
    def measure_inference(self, model: nn.Module, spec: TrialSpec, data: Any, device: torch.device,
                          record: dict[str, Any]) -> None:
        """The unmerged model's inference figures."""

    @abstractmethod
    def merged(self, model: nn.Module, data: Any, spec: TrialSpec, device: torch.device) -> dict[str, Any]:
        """Merge the adapter, check the merged model agrees with the unmerged one, and measure it again."""


def subset_for_test(spec: TrialSpec, test):
    """The test rows a trial reports on: the first `eval_size` (data-efficiency's fixed set), or all."""
    return test.take(spec.eval_size) if spec.eval_size else test
