"""From option values to a study: one precedence for every option (the command line or the API's keyword,
then the config file, then the preset's or the study's default), shared by `run`, `study` and peftbench.api,
so the three cannot drift apart."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from peftbench.errors import PeftbenchError
from peftbench.studies.options import FLAG_KEYS

# The study options that land in TrainSpec, each defaulting to the preset's value.
TRAIN_KEYS = ("train_size", "epochs", "batch_size", "device", "bf16", "load_in_4bit", "gradient_checkpointing")


def split_list(text: str | None) -> list[str] | None:
    if text is None:
        return None
    return [t.strip() for t in text.split(",") if t.strip()]


def whole_numbers(text: str | None, what: str) -> list[int] | None:
    items = split_list(text)
    if items is None:
        return None
    try:
        return [int(x) for x in items]
    except ValueError:
        raise PeftbenchError(f"{what} must be whole numbers separated by commas, got {text!r}") from None


def pick(given: Any, cfg: Mapping, key: str, default: Any) -> Any:
    """One precedence for every option: the command line, then the config file, then the default."""
    if given is not None:
        return given
    value = cfg.get(key)
    return default if value is None else value


def load_config(config: Path | None) -> dict:
    from peftbench.config.file import load_config_file

    return load_config_file(config) if config else {}


def int_list(given: Any, cfg: Mapping, key: str) -> list[int] | None:
    """--sizes / --ranks: a comma-separated string on the command line, a list (or string) in YAML or Python."""
    value = given if given is not None else cfg.get(key)
    return whole_numbers(value, key) if isinstance(value, str) else value


def newlines(template: str | None) -> str | None:
    """A template typed in a shell holds a literal backslash-n where the prompt wants a line break."""
    return template.replace("\\n", "\n") if template else template


def study_options_from(values: Mapping[str, Any], cfg: Mapping | None = None, *, train=None, data=None,
                       train_overrides: Mapping | None = None):
    """StudyOptions from study option values keyed as in cli/options.py (a missing key, None, or False for a
    flag: not given), over a config file's values. The API may also give a whole TrainSpec (`train`, the base
    of the train options) or DataSpec (`data`, used as it is), and further TrainSpec fields."""
    from peftbench.config.spec import EMBEDDED, EMBEDDED_DECODER
    from peftbench.studies.definitions import StudyOptions, preset_sizes

    cfg = cfg or {}

    def given(key: str, default: Any = None) -> Any:
        value = values.get(key)
        return pick(None if value is False and key in FLAG_KEYS else value, cfg, key, default)

    preset = given("preset", "default")
    # decoder-quick is sized for the embedded decoder: it is the model unless one is named
    model = given("model", EMBEDDED_DECODER if preset == "decoder-quick" else EMBEDDED)
    base_train, base_data = preset_sizes(preset)
    base_train = train or base_train
    train = dataclasses.replace(base_train, **{k: given(k, getattr(base_train, k)) for k in TRAIN_KEYS},
                                **(train_overrides or {}))
    if data is None:
        data = _data_spec(given, base_data)
    methods = given("methods")
    if isinstance(methods, str):
        methods = split_list(methods)
    return StudyOptions(model=model, data=data, train=train, seeds=given("seeds", 1), methods=methods,
                        learning_rate=given("learning_rate"))


def _data_spec(given, base):
    """The DataSpec of the data options: the preset's evaluation sizes, the OOD set chosen from the data."""
    from peftbench.config.spec import EMBEDDED

    dataset = given("dataset", EMBEDDED)
    text_column = given("text_column", "text")
    label_column = given("label_column", "label")
    no_ood = bool(given("no_ood", False))
    ood_src = None if no_ood else given("ood_dataset", EMBEDDED if dataset == EMBEDDED else None)
    data = dataclasses.replace(
        base, source=dataset, text_column=text_column, label_column=label_column, ood_source=ood_src,
        test_size=given("test_size", base.test_size),
        validation_size=given("validation_size", base.validation_size),
        ood_text_column=given("ood_text_column", text_column),
        ood_label_column=given("ood_label_column", label_column),
        resplit=bool(given("resplit", False)),
        ood_label_map=given("ood_label_map"),
        ood_same_codes=bool(given("ood_same_codes", False)),
        unlabelled_value=given("unlabelled_value"),
        max_length=given("max_length", base.max_length),
        task=given("task", "classify"),
        prompt_column=given("prompt_column"),
        response_column=given("response_column"),
        template=newlines(given("template")),
        max_new_tokens=given("max_new_tokens"))
    if dataset == EMBEDDED and ood_src == EMBEDDED:
        data = dataclasses.replace(data, text_column="text", label_column="label")
    return data


def tune_options(cfg: Mapping, tune: bool | None, tune_lr_factors: str | None):
    """(tune?, factors): --tune and --tune-lr-factors, or the config file's tune / tune_lr_factors."""
    from peftbench.studies.tuning import parse_lr_factors

    on = bool(pick(tune, cfg, "tune", False))
    raw = split_list(tune_lr_factors) if tune_lr_factors is not None else cfg.get("tune_lr_factors")
    if isinstance(raw, str):
        raw = split_list(raw)
    factors = parse_lr_factors(raw)
    if tune_lr_factors is not None and not on:  # (a config file's factors wait for tune: true)
        raise PeftbenchError("--tune-lr-factors needs --tune")
    return on, factors if on else None


def study_specs(name: str, opts, values: Mapping[str, Any], cfg: Mapping | None = None) -> list:
    """The trials of one named study. The sweeps train the seed's 3 epochs (the rank sweep on 500 examples)
    unless the command line, the API or the config file says otherwise."""
    from peftbench.studies import definitions as st

    cfg = cfg or {}
    epochs = pick(values.get("epochs"), cfg, "epochs", 3)
    if name == "tradeoff":
        return st.tradeoff(opts)
    if name == "data-efficiency":
        return st.data_efficiency(opts, int_list(values.get("sizes"), cfg, "sizes"), epochs=epochs)
    return st.rank_sweep(opts, int_list(values.get("ranks"), cfg, "ranks"), pick(values.get("alpha_ratio"), cfg, "alpha_ratio", 2.0),
                         pick(values.get("targets"), cfg, "targets", "attention"),
                         train_size=pick(values.get("train_size"), cfg, "train_size", 500), epochs=epochs)
