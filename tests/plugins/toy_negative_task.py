"""A toy third task, defined outside peftbench: is the review negative? (the label column read backwards)

It proves a new task is one module plus one registry call: it reuses the classifier's head and scoring,
and differs only in its data (each label flipped, the class names swapped)."""

from __future__ import annotations

import dataclasses

from peftbench.tasks import register
from peftbench.tasks.classify.task import ClassifyTask


class NegativeTask(ClassifyTask):
    name = "toy-negative"
    summary = "is the text negative? (a toy task from tests/)"

    def prepare_data(self, spec, model, max_train_size):
        data = super().prepare_data(spec, model, max_train_size)
        if data.num_labels != 2:
            raise ValueError("toy-negative reads a two-class label column")

        def flip(rows):
            return dataclasses.replace(rows, labels=1 - rows.labels)

        return dataclasses.replace(
            data, train_pool=flip(data.train_pool), validation=flip(data.validation), test=flip(data.test),
            ood=flip(data.ood) if data.ood is not None else None,
            perturbed={k: flip(v) for k, v in data.perturbed.items()}, label_names=data.label_names[::-1])


TASK = register(NegativeTask())
