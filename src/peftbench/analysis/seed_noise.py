"""Seed noise for a configuration run under one seed: how far another seed could move its validation and
OOD figures, so that a one-seed figure in a ranking's bootstrap is never treated as free of training
randomness.

The bootstrap (confidence.py) resamples seeds, then rows. A configuration with two or more seeds carries
its own spread over seeds. One with a single seed has none to resample, so it gets one draw of seed noise
per resample: a normal deviate times the between-seed standard deviation below, one draw per method and
kind of figure (validation accuracy and F1 move together with a seed, OOD figures by a draw of their own).

The standard deviation is the pooled within-configuration SD over the configurations of the ranked trials
that have two or more seeds, combined with a stated prior counted as the measurement it came from
(PRIOR_DOF degrees of freedom): var = (PRIOR_DOF * PRIOR_SD^2 + SS) / (PRIOR_DOF + dof). Before any
configuration has two seeds, it is the prior alone; it is never zero.

The prior is a validation-side measurement: bench/seed_widening.py on the default study's setup (embedded
MiniLM-L6, 1,000 training rows, 2 epochs, batch 16, 1,000 validation rows; 2026-12-05), Full, LoRA-r8 and
BitFit under seeds 0-2. Their validation accuracies were 0.805/0.749/0.785, 0.773/0.759/0.766 and
0.761/0.749/0.746: a pooled SD of 0.0175 over 6 degrees of freedom. No split but validation was read.
It was measured on validation accuracy; F1 and the OOD figures borrow it until the store measures their own.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from peftbench.stats.summary import numeric_column

PRIOR_SD = 0.0175
PRIOR_DOF = 6
PRIOR_SOURCE = ("prior 0.0175 (pooled SD of validation accuracy over seeds 0-2 of Full, LoRA-r8 and BitFit, "
                "default study's setup, bench/seed_widening.py, 2026-12-05; 6 degrees of freedom)")
# Figures that move together with a seed share one draw: the kind's name -> its figures.
SEED_KINDS: dict[str, tuple[str, ...]] = {"validation": ("val_accuracy", "val_f1"),
                                          "ood": ("ood_accuracy", "ood_balanced_accuracy")}


@dataclass(frozen=True)
class SeedNoise:
    """Per figure, the between-seed SD given to one-seed configurations, and where it came from."""

    sd: dict[str, float]
    dof: dict[str, int]  # degrees of freedom measured in the ranked trials (the prior's not counted)
    configurations: dict[str, int]  # configurations with two or more seeds behind each figure

    def text(self) -> str:
        groups: dict[str, list[str]] = {}  # what was said -> the figures it holds for
        for metric, sd in self.sd.items():
            measured = "prior"
            if self.dof[metric]:
                measured = (f"pooled over {self.configurations[metric]} configuration(s) with 2+ seeds, "
                            f"{self.dof[metric]} dof, and the prior's {PRIOR_DOF}")
            groups.setdefault(f"±{sd:.4f} ({measured})", []).append(metric)
        parts = [f"{', '.join(metrics)} {said}" for said, metrics in groups.items()]
        return "seed noise given to one-seed configurations: " + "; ".join(parts) + f". {PRIOR_SOURCE}"


def seed_noise(records: pd.DataFrame) -> SeedNoise:
    """The between-seed SD of each resampled figure (see the module docstring); `method` names the
    configuration, one row per trial."""
    sd, dof, configurations = {}, {}, {}
    for metrics in SEED_KINDS.values():
        for metric in metrics:
            frame = pd.DataFrame({"v": numeric_column(records, metric),
                                  "k": records["method"].astype(str)}).dropna()
            ss, n_dof, n_conf = 0.0, 0, 0
            for _, grp in frame.groupby("k", sort=False):
                if len(grp) >= 2:
                    ss += float(((grp["v"] - grp["v"].mean()) ** 2).sum())
                    n_dof += len(grp) - 1
                    n_conf += 1
            sd[metric] = float(np.sqrt((PRIOR_DOF * PRIOR_SD ** 2 + ss) / (PRIOR_DOF + n_dof)))
            dof[metric], configurations[metric] = n_dof, n_conf
    return SeedNoise(sd, dof, configurations)


def seed_draws(sd: dict[str, float], one_seed: list[bool], resamples: int,
               rng: np.random.Generator) -> dict[str, np.ndarray]:
    """metric -> (resamples, methods) additive seed noise: zero for methods with several seeds (their own
    seeds are resampled), one shared normal draw per kind for the others."""
    mask = np.asarray(one_seed, dtype=float)
    out = {}
    for metrics in SEED_KINDS.values():
        z = rng.standard_normal((resamples, len(one_seed))) * mask
        for metric in metrics:
            if metric in sd:
                out[metric] = z * float(sd[metric])
    return out
