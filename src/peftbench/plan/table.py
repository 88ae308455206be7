"""The plan as tables: each figure's unit in its column header."""

from __future__ import annotations

from rich.table import Table


def _f(x, spec: str = ".1f") -> str:
    return "-" if x is None else format(x, spec)


def plan_table(plan: dict) -> list:
    b = plan["batches"]
    title = (f"Plan for {plan['model']} on {plan['device']} ({plan['task']}): {b['steps']} steps, peak batch "
             f"{b['peak_shape'][0]} x {b['peak_shape'][1]} tokens")
    t = Table(title=title, title_justify="left")
    cols = ["method", "trainable", "head", "total", "weights MiB", "grads MiB", "optim MiB", "activ. MiB",
            "4-bit state MiB", "alloc. MiB", "trial extra MiB", "peak MiB", "fits", "max batch", "step s",
            "trial s", "infer. MiB", "adapter MB", "merge"]
    for c in cols:
        t.add_column(c, justify="left" if c == "method" else "right")
    for r in plan["methods"]:
        m, p, tm = r["memory"], r["params"], r["time"]
        fits = "-" if m["fits"] is None else ("yes" if m["fits"] else "NO")
        t.add_row(r["method"], f"{p['trainable_params']:,}", f"{p['head_params']:,}", f"{p['total_params']:,}",
                  _f(m["weights_mb"]), _f(m["gradients_mb"]), _f(m["optimizer_mb"]), _f(m["activations_mb"]),
                  _f(m["quant_state_mb"]), _f(m["allocator_mb"]), _f(m["trial_extra_mb"]), _f(m["peak_mb"]),
                  fits,
                  "-" if m["largest_batch"] is None else str(m["largest_batch"]),
                  _f(tm["step_s"], ".3f"), _f(tm["trial_s"]), _f(r["inference_mb"]),
                  _f(r["adapter_bytes"] / 1e6, ".2f"), "yes" if r["can_merge"] else "no")
    first = plan["methods"][0] if plan["methods"] else None
    notes = [f"batches: {b['from']}",
             f"peak MiB: {first['memory']['measured_as']}" if first else "",
             "time: " + ("; ".join(sorted({f"{r['time']['how']}" + (f" ({r['time']['note']})" if r['time']['note']
                                                                    else "") for r in plan["methods"]})))]
    if plan["total_train_s"] is not None:
        notes.append(f"whole study: {plan['total_train_s']:.0f} s of training ({plan['total_train_s'] / 60:.1f} "
                     f"min), evaluation not counted")
    notes.append("see `peftbench dimensions` for what is counted and what is not")
    return [t, *[n for n in notes if n]]
