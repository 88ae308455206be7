"""`peftbench plan`: each method's parameters, training memory (and whether it fits), time, inference memory
and adapter size, predicted before anything trains (peftbench.plan)."""

from __future__ import annotations

import json
from typing import Any

import typer

from peftbench.cli.console import console
from peftbench.cli.signature import with_options
from peftbench.errors import PeftbenchError
from peftbench.studies.options import STUDY_OPTIONS


@with_options(STUDY_OPTIONS)
def plan(gpu_memory: str | None = typer.Option(None, "--gpu-memory", help="device memory to fit in, e.g. 40 "
                                               "or 40GB (GiB; MB also taken)"),
         device_tflops: float | None = typer.Option(None, "--device-tflops", help="peak TFLOP/s of a device that "
                                                    "is not here: time as a roofline estimate"),
         device_bandwidth: float | None = typer.Option(None, "--device-bandwidth", help="its memory bandwidth, "
                                                       "GB/s"),
         format_: str = typer.Option("table", "--format", help="table | json"),
         no_calibrate: bool = typer.Option(False, "--no-calibrate", help="no real steps: roofline time only"),
         *, options: dict[str, Any]) -> None:
    """Predict each method's parameters, memory, time and size without training anything."""
    from peftbench.plan.assemble import make_plan
    from peftbench.cli.plan_request import request_from

    if format_ not in ("table", "json"):
        raise PeftbenchError(f"--format must be table or json, got {format_!r}")
    req = request_from(options, gpu_memory, device_tflops, device_bandwidth, not no_calibrate)
    result = make_plan(req)
    if format_ == "json":
        print(json.dumps(result, indent=2, default=str))
        return
    from peftbench.plan.table import plan_table

    for part in plan_table(result):
        console.print(part)


def register(app: typer.Typer) -> None:
    app.command()(plan)
