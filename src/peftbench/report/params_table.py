"""`peftbench params`: each method's parameter accounting on a model, without training."""

from __future__ import annotations

from rich.table import Table

from peftbench.measure.params import base_parameter_count, count_parameters, saved_parameter_count
from peftbench.methods import PRESETS, BuildContext, build_model, parse_methods
from peftbench.models.loading import load_classifier


def parameter_rows(model: str, methods: list[str] | None, num_labels: int) -> list[dict]:
    rows = []
    for spec in parse_methods(methods or list(PRESETS)):
        base = load_classifier(model, num_labels)
        base_params, heads = base_parameter_count(base)
        m = build_model(base, spec, BuildContext(total_steps=100, num_labels=num_labels))
        row = {"method": spec.name, **count_parameters(m, base_params, heads), "saved_params": saved_parameter_count(m)}
        if hasattr(m, "get_nb_trainable_parameters"):
            row["peft_trainable"] = m.get_nb_trainable_parameters()[0]
        rows.append(row)
    return rows


def params_table(model: str, methods: list[str] | None, num_labels: int) -> Table:
    t = Table(title=f"Parameter accounting on {model} ({num_labels} labels; % of base-model parameters)")
    for col in ("method", "trainable", "adapter", "head", "% of base", "saved/shipped", "peft's count"):
        t.add_column(col, justify="right" if col != "method" else "left")
    for r in parameter_rows(model, methods, num_labels):
        t.add_row(r["method"], f"{r['trainable_params']:,}", f"{r['adapter_params']:,}", f"{r['head_params']:,}",
                  f"{r['trainable_pct']:.4f}", f"{r['saved_params']:,}",
                  f"{r['peft_trainable']:,}" if "peft_trainable" in r else "-")
    return t
