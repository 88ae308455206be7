"""Helpers shared by the bench scripts: environment, threads, tables, JSON output, the study's data split.

The bench scripts print figures; they are not tests. Each writes what it printed to bench/out/<name>.json.
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

# Offline before anything imports transformers: the embedded model and data are local.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

BENCH_DIR = Path(__file__).resolve().parent
OUT_DIR = BENCH_DIR / "out"
REPO = BENCH_DIR.parent
if str(REPO / "src") not in sys.path:  # runnable from a checkout even when peftbench is not installed
    sys.path.insert(0, str(REPO / "src"))

from peftbench.store.db import json_default  # after the path set-up above


def cores() -> int:
    """CPU cores this process may run on (what peftbench's LocalExecutor gives one trial)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def default_threads() -> int:
    """OMP_NUM_THREADS when set (so a shared machine can be spared), else every core."""
    env = os.environ.get("OMP_NUM_THREADS")
    return int(env) if env and env.isdigit() and int(env) > 0 else cores()


def machine() -> dict[str, Any]:
    import torch

    info: dict[str, Any] = {"python": platform.python_version(), "torch": torch.__version__,
                            "cpu": platform.processor() or platform.machine(), "cores": cores(),
                            "load_avg_1m": os.getloadavg()[0] if hasattr(os, "getloadavg") else None}
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
    try:
        import transformers

        info["transformers"] = transformers.__version__
        import peft

        info["peft"] = peft.__version__
    except ImportError:
        pass
    return info


def warn_if_busy(threads: int) -> None:
    """Timings on a loaded machine are not the machine's: say so rather than print them silently."""
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else 0.0
    if load > max(0.5, cores() - threads + 0.5):
        print(f"note: 1-minute load average is {load:.1f} on {cores()} cores; other work shares the CPU, "
              f"so times are pessimistic. Run on a quiet machine for figures to report.", file=sys.stderr)


def median(xs: Iterable[float]) -> float | None:
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


def fmt(x: Any, spec: str = ".2f", none: str = "-") -> str:
    if x is None:
        return none
    if isinstance(x, str):
        return x
    return format(x, spec)


def print_table(title: str, columns: Sequence[str], rows: Sequence[Sequence[Any]],
                notes: Sequence[str] = ()) -> None:
    """A rich table when rich is installed (it is a peftbench dependency), plain text otherwise."""
    cells = [[str(c) for c in r] for r in rows]
    try:
        from rich.console import Console
        from rich.table import Table

        table = Table(title=title, title_justify="left")
        for i, c in enumerate(columns):
            table.add_column(c, justify="left" if i == 0 else "right", no_wrap=i < len(columns) - 1)
        for r in cells:
            table.add_row(*r)
        console = Console(width=None if sys.stdout.isatty() else 240)  # a file or pipe gets the whole table
        console.print(table)
        for n in notes:
            print(n)
        return
    except ImportError:
        pass
    widths = [max(len(c), *(len(r[i]) for r in cells)) if cells else len(c) for i, c in enumerate(columns)]
    print(title)
    print("  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(columns, widths))))
    print("  ".join("-" * w for w in widths))
    for r in cells:
        print("  ".join(v.ljust(w) if i == 0 else v.rjust(w) for i, (v, w) in enumerate(zip(r, widths))))
    for n in notes:
        print(n)


def write_json(name: str, payload: dict[str, Any], path: str | None = None) -> Path:
    out = Path(path) if path else OUT_DIR / f"{name}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    payload = {"script": f"bench/{name}.py", "written_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
               "argv": sys.argv[1:], "machine": machine(), **payload}
    out.write_text(json.dumps(payload, indent=2, default=json_default) + "\n", encoding="utf-8")
    print(f"figures written to {out.relative_to(REPO) if out.is_relative_to(REPO) else out}")
    return out


def split_methods(text: str) -> list[str]:
    return [m.strip() for m in text.split(",") if m.strip()]


def small_data_spec(validation_size: int, test_size: int, ood_size: int, perturbation_size: int):
    """A DataSpec on the embedded data with the held-out sizes given (DataSpec defaults otherwise)."""
    from peftbench.config.spec import DataSpec

    return DataSpec(validation_size=validation_size, test_size=test_size, ood_size=ood_size,
                    perturbation_size=perturbation_size)


def embedded_texts(data_spec, train_size: int, eval_size: int | None):
    """The texts and labels peftbench trains and tests on for this DataSpec (embedded data only):
    train = the first `train_size` rows of the training pool (what `train_pool.take(n)` tokenizes),
    test = the first `eval_size` test rows (what a TrialSpec with eval_size evaluates)."""
    from peftbench.data.sources import embedded_dataset
    from peftbench.data.split import make_split

    data = embedded_dataset()
    split = make_split(data, data_spec.split_seed, data_spec.validation_size, data_spec.test_size)
    train_idx = split.train_pool[:train_size]
    test_idx = split.test if eval_size is None else split.test[:eval_size]
    return ([data.texts[i] for i in train_idx], data.labels[train_idx].tolist(),
            [data.texts[i] for i in test_idx], data.labels[test_idx].tolist())


def parse_args(parser, argv, smoke: dict[str, Any]):
    """Parse with a --smoke flag whose tiny sizes replace the defaults (sizes given explicitly still win):
    every script's code paths in seconds, for tests/test_bench_smoke.py. Its figures mean nothing."""
    parser.add_argument("--smoke", action="store_true",
                        help="tiny sizes on a tiny random model (unless --model is given): checks the script "
                             "runs; the figures mean nothing")
    first, _ = parser.parse_known_args(argv)
    if first.smoke:
        parser.set_defaults(**smoke)
    return parser.parse_args(argv)


def add_common_args(parser) -> None:
    parser.add_argument("--threads", type=int, default=None,
                        help="torch threads (default: OMP_NUM_THREADS if set, else every core)")
    parser.add_argument("--json", default=None, help="where to write the figures (default bench/out/<script>.json)")


def bench_args(parser, argv, smoke: dict[str, Any], smoke_model_kind: str | None = None):
    """The set-up every script shares: the common options, --smoke's sizes, the thread count filled in
    (args.threads), and under --smoke a tiny random model of `smoke_model_kind` unless --model is given."""
    add_common_args(parser)
    args = parse_args(parser, argv, smoke)
    args.threads = args.threads or default_threads()
    if smoke_model_kind and args.smoke:
        from _tiny_models import smoke_model

        args.model = smoke_model(args.model, smoke_model_kind)
    return args
