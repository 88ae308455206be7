"""Study options from a YAML file (`--config study.yaml`): safe_load only, unknown keys and wrong types
rejected with one line each."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from peftbench.config.spec import parse_label_map
from peftbench.errors import PeftbenchError

CONFIG_KEYS = {
    "model", "dataset", "text_column", "label_column", "methods", "train_size", "epochs", "batch_size",
    "seeds", "max_length", "device", "db", "ood_dataset", "ood_text_column", "ood_label_column",
    "learning_rate", "sizes", "ranks", "targets", "workers", "trial_timeout", "retries", "preset", "test_size",
    "validation_size", "resplit", "ood_label_map", "tune", "tune_lr_factors", "task", "prompt_column",
    "response_column", "template", "max_new_tokens", "load_in_4bit", "gradient_checkpointing",
    "unlabelled_value", "ood_same_codes", "budget", "max_memory", "race", "scenario", "weights", "confidence",
    "max_seeds",
}


# What each config key holds; a wrong type is one clear line rather than a traceback later on.
_WHOLE = ("train_size", "epochs", "batch_size", "seeds", "max_length", "workers", "retries", "test_size",
          "validation_size", "max_new_tokens", "max_seeds")
_NUMBER = ("learning_rate", "trial_timeout", "confidence")
_LISTS = {"methods": str, "sizes": int, "ranks": int, "tune_lr_factors": float}  # a YAML list, or one string
_BOOLS = ("tune", "load_in_4bit", "gradient_checkpointing", "ood_same_codes", "race")
_MAY_BE_EMPTY = ("ood_dataset", "learning_rate", "trial_timeout", "workers", "methods", "sizes", "ranks",
                 "db", "ood_label_map", "tune_lr_factors", "prompt_column", "response_column", "template",
                 "max_new_tokens")
PRESETS = ("default", "quick", "decoder-quick")


def _check_config_types(p: Path, data: dict[str, Any]) -> None:
    for key, value in data.items():
        if value is None:
            if key in _MAY_BE_EMPTY:
                continue
            raise PeftbenchError(f"config file {p}: {key} has no value")
        is_int = isinstance(value, int) and not isinstance(value, bool)
        if key in _WHOLE and not is_int:
            raise PeftbenchError(f"config file {p}: {key} must be a whole number, got {value!r}")
        if key in _NUMBER and not (is_int or isinstance(value, float)):
            raise PeftbenchError(f"config file {p}: {key} must be a number, got {value!r}")
        if key in _LISTS:
            kind = _LISTS[key]
            kinds = (int, float) if kind is float else (kind,)
            ok = isinstance(value, str) or (isinstance(value, list) and all(
                isinstance(v, kinds) and not isinstance(v, bool) for v in value))
            if not ok:
                what = {str: "names", int: "whole numbers", float: "numbers"}[kind]
                raise PeftbenchError(f"config file {p}: {key} must be a list of {what} (or one comma-separated "
                                     f"string), got {value!r}")
        if key in _BOOLS and not isinstance(value, bool):
            raise PeftbenchError(f"config file {p}: {key} must be true or false, got {value!r}")
        if key == "resplit":
            if not isinstance(value, bool):
                raise PeftbenchError(f"config file {p}: resplit must be true or false, got {value!r}")
            continue
        if key == "unlabelled_value" and isinstance(value, (int, float)) and not isinstance(value, bool):
            continue  # -1 in YAML is a number; the spec keeps it as text
        number = isinstance(value, (int, float)) and not isinstance(value, bool)
        if key in ("budget", "max_memory") and number:
            continue  # budget: 600 (seconds) or "20m"; max_memory: 4 (GB) or "512MB"
        if key == "ood_label_map":
            if not isinstance(value, (str, dict)):
                raise PeftbenchError(f"config file {p}: ood_label_map must be a mapping (pos: positive) or "
                                     f"\"pos=positive,neg=negative\", got {value!r}")
            parse_label_map(value)
            continue
        if key not in (*_WHOLE, *_NUMBER, *_LISTS, *_BOOLS) and not isinstance(value, str):
            raise PeftbenchError(f"config file {p}: {key} must be text, got {value!r}")
    if data.get("preset") not in (None, *PRESETS):
        raise PeftbenchError(f"config file {p}: preset must be one of {', '.join(PRESETS)}, got {data['preset']!r}")


def load_config_file(path: str | Path) -> dict[str, Any]:
    """Read a YAML study config (safe_load only) and reject keys we do not know."""
    p = Path(path)
    if not p.is_file():
        raise PeftbenchError(f"config file {p} does not exist or is not a file")
    try:
        data = yaml.safe_load(p.read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise PeftbenchError(f"config file {p} is not valid YAML: {str(exc).splitlines()[0]}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise PeftbenchError(f"config file {p} must hold a mapping of option: value")
    unknown = sorted(set(data) - CONFIG_KEYS)
    if unknown:
        raise PeftbenchError(f"config file {p} has unknown keys: {', '.join(unknown)}"
                             f" (known: {', '.join(sorted(CONFIG_KEYS))})")
    _check_config_types(p, data)
    return data
