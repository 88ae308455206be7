"""`--task classify`: label a text. A classifier head on an encoder or a decoder; accuracy, macro F1,
out-of-domain and perturbed-input figures, logits compared when merged."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn

from peftbench.config.spec import DataSpec, TrialSpec
from peftbench.errors import PeftbenchError
from peftbench.methods import DECODER_PREFIX
from peftbench.tasks.base import Task, subset_for_test


class ClassifyTask(Task):
    name = "classify"
    summary = "a classifier head, encoders and decoders (accuracy, macro F1)"
    peft_task_type = "SEQ_CLS"
    # a decoder has no biases for BitFit; its prefix tuning starts from zero prefixes (methods.DECODER_PREFIX)
    data_efficiency_methods = (("Full", "LoRA-r8", "BitFit", "PrefixTuning-len32"),
                               ("Full", "LoRA-r8", "IA3", DECODER_PREFIX))

    def check_data(self, data: DataSpec) -> None:
        if data.prompt_column or data.response_column or data.template or data.max_new_tokens:
            raise PeftbenchError("--prompt-column, --response-column, --template and --max-new-tokens need "
                                 "--task generate")

    def prepare_data(self, spec: DataSpec, model: str, max_train_size: int):
        from peftbench.data.prepared import prepare_data

        return prepare_data(spec, model, max_train_size)

    def load_base(self, spec: TrialSpec, data, device: torch.device, load_in_4bit: bool) -> nn.Module:
        from peftbench.models.loading import load_classifier

        return load_classifier(spec.model, data.num_labels, load_in_4bit=load_in_4bit, device=device)

    def before_training(self, base, spec, data, device, record, say):
        from peftbench.tasks.classify.forgetting import forgetting_view

        record["head_learning_rate"] = spec.method.head_learning_rate
        return forgetting_view(base, spec.model, device)  # a decoder classifier: general text, its LM head

    def score_validation(self, model, spec, data, device, record, state) -> float:
        from peftbench.stats.predictions import encode
        from peftbench.tasks.classify import evaluate as ev

        # Validation: every choice (collapse mark, tuning, rank, winners) reads this, never the test split.
        preds, loss = ev.predict(model, data.validation, device, data.pad_token_id, bf16=spec.train.bf16)
        val = ev.metrics(data.validation.labels, preds, loss)
        record.update({f"val_{k}": v for k, v in val.items()})
        record.update(val_predictions=encode(preds), val_labels=encode(data.validation.labels),
                      val_majority_rate=ev.majority_rate(data.validation.labels))
        record["collapsed"], record["collapse_reason"] = ev.detect_collapse(data.validation.labels, preds)
        return val["accuracy"]

    def rung_score(self, model, rows, data, device, bf16) -> tuple[float, float]:
        from peftbench.tasks.classify import evaluate as ev

        preds, loss = ev.predict(model, rows, device, data.pad_token_id, bf16=bf16)
        return float(np.mean(preds == rows.labels)), float(loss)

    def score_test(self, model, spec, data, device, record, state) -> None:
        from peftbench.stats.predictions import encode
        from peftbench.tasks.classify import evaluate as ev
        from peftbench.tasks.classify.generalization import generalization

        # The test split: read once, here, for the reported figures only.
        test_set = subset_for_test(spec, data.test)
        preds, loss = ev.predict(model, test_set, device, data.pad_token_id, bf16=spec.train.bf16)
        test = ev.metrics(test_set.labels, preds, loss)
        record.update({k: v for k, v in test.items() if k != "loss"}, eval_loss=test["loss"],
                      test_size=len(test_set), test_predictions=encode(preds),
                      test_labels=encode(test_set.labels), test_majority_rate=ev.majority_rate(test_set.labels))
        record.update(generalization(model, data, preds, device, spec.train.bf16))
        if state is not None:  # the decoder classifier's forgetting view
            record.update(state.measure(model, device))

    def measure_inference(self, model, spec, data, device, record) -> None:
        from peftbench.measure import inference

        def measure() -> dict[str, Any]:
            lat = inference.latency_ms(model, data.test, spec.train.latency_runs, device, data.pad_token_id)
            return {**lat, "throughput_per_s": inference.throughput_per_s(
                model, data.test, spec.train.throughput_batches, device, data.pad_token_id)}

        record.update(inference.timed_cleanly(measure, device, "inference"))

    def deployed_form(self, spec, data, device, merged: bool) -> nn.Module:
        """The trial's deployed model rebuilt from its spec, for the side-by-side pass (deployed.py says why
        untrained values time the same)."""
        from peftbench.tasks.classify.deployed import deployed_form

        return deployed_form(spec, data, device, merged)

    def merged(self, model, data, spec, device) -> dict[str, Any]:
        from peftbench.tasks.classify.merged import merged_measurements

        return merged_measurements(model, data, spec, device)
