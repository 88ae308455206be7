"""Inside a tuning candidate's trial process: score validation at the rungs and ask Optuna whether to stop.

The driver (tuning.py) made the Optuna study; this side asks for the candidate's Optuna trial, reports
validation accuracy at the first rung (1/reduction_factor of the steps, on the first `rung_val_rows`
validation rows) and after the last step (the trial's own validation accuracy, so the last rung compares
the very figure the choice uses, at no extra cost), and stops when Optuna's SuccessiveHalvingPruner says
so. Only validation is read here: a pruned candidate never touches the test split.
"""

from __future__ import annotations

import time
from typing import Any, Callable

import numpy as np
import torch

from peftbench.config.spec import TrialSpec
from peftbench.data.prepared import PreparedData, TokenizedSet

# The task's (headline, loss) on validation rows (Task.rung_score).
Score = Callable[..., tuple[float, float]]


def rungs_for(spec: TrialSpec, data: PreparedData, model: torch.nn.Module, device: torch.device,
              total_steps: int, score: Score) -> Rungs | None:
    """The checkpoint for train.train: None unless the trial is a candidate of a search that prunes."""
    if spec.tune is None or spec.tune.storage is None:
        return None
    return Rungs(spec, data, model, device, total_steps, score)


class Rungs:
    """train.train's checkpoint: True (stop) when Optuna prunes the candidate at a rung."""

    def __init__(self, spec: TrialSpec, data: PreparedData, model: torch.nn.Module, device: torch.device,
                 total_steps: int, score: Score):
        import optuna
        from optuna.distributions import FloatDistribution
        from optuna.storages import JournalStorage
        from optuna.storages.journal import JournalFileBackend

        optuna.logging.set_verbosity(optuna.logging.WARNING)
        link = spec.tune
        assert link is not None and link.storage is not None
        self.model, self.device, self.data, self.score = model, device, data, score
        self.bf16 = spec.train.bf16
        self.total = total_steps
        self.first = max(1, total_steps // link.reduction_factor)  # rung 1 is then at the last step
        self.subset: TokenizedSet = data.validation.take(min(link.rung_val_rows, len(data.validation)))
        pruner = optuna.pruners.SuccessiveHalvingPruner(min_resource=self.first,
                                                        reduction_factor=link.reduction_factor)
        study = optuna.load_study(study_name=link.study_name, pruner=pruner,
                                  storage=JournalStorage(JournalFileBackend(link.storage)))
        lr = float(spec.method.learning_rate)
        self.trial = study.ask({"learning_rate": FloatDistribution(lr, lr, log=True)})  # one fixed value
        self.trial.set_user_attr("peftbench_trial_id", spec.trial_id)
        self.trial.set_user_attr("method", spec.method.name)
        self.scores: dict[int, float] = {}
        self.pruned_at: int | None = None
        self.seconds = 0.0

    @property
    def pruned(self) -> bool:
        return self.pruned_at is not None

    def __call__(self, step: int) -> bool:
        """The first rung, during training (the last one is `last_rung`, once validation is scored)."""
        if step != self.first or step >= self.total:
            return False
        t0 = time.perf_counter()
        accuracy, loss = self._accuracy(self.subset)
        # Early on, candidates often tie at the majority rate, and Optuna promotes ties: break them by
        # validation loss, by less than one row's worth of accuracy (1e-4 < 1/500), so no order changes.
        self._report(step, accuracy, accuracy + 1e-4 * (1 - min(loss, 10.0) / 10.0))
        self.seconds += time.perf_counter() - t0
        return self.pruned

    def last_rung(self, val_accuracy: float) -> bool:
        """After training: the whole validation split's accuracy (the trial's own figure). True: pruned."""
        if not self.pruned:
            self._report(self.total, float(val_accuracy), float(val_accuracy))
        return self.pruned

    def _report(self, step: int, accuracy: float, value: float) -> None:
        self.scores[step] = accuracy
        self.trial.report(value, step)
        if self.trial.should_prune():
            self.pruned_at = step

    def _accuracy(self, rows: TokenizedSet) -> tuple[float, float]:
        """Validation accuracy and loss mid-training, leaving training exactly as it was (mode and random
        state), so a candidate that runs to the end matches an untuned trial of the same method."""
        cpu_rng = torch.get_rng_state()
        cuda_rng = torch.cuda.get_rng_state(self.device) if self.device.type == "cuda" else None
        accuracy, loss = self.score(self.model, rows, self.data, self.device, self.bf16)
        self.model.train()
        torch.set_rng_state(cpu_rng)
        if cuda_rng is not None:
            torch.cuda.set_rng_state(cuda_rng, self.device)
        loss = float(loss) if np.isfinite(loss) else 10.0
        return accuracy, loss

    def fields(self) -> dict[str, Any]:
        """What the record keeps of the search: the rung scores (step -> validation accuracy)."""
        return {"tune_rung_scores": {str(k): v for k, v in sorted(self.scores.items())},
                "tune_rung_val_rows": len(self.subset), "tune_pruned_at_step": self.pruned_at,
                "tune_optuna_trial": self.trial.number, "tune_checkpoint_seconds": self.seconds}

    def pruned_record(self, record: dict[str, Any], entered: float) -> dict[str, Any]:
        """A pruned candidate's record: what was measured up to validation, and no test figure at all."""
        return {**record, **self.fields(), "status": "pruned", "trial_seconds": time.time() - entered,
                "finished_at": time.time()}
