"""Where a `--task generate` trial's scoring time goes on the embedded decoder: seconds per part, at the
decoder-quick preset's sizes, on the untrained SmolLM2-135M-Instruct (a trained adapter costs the same
compute per row; it may stop generating sooner).

The preset is sized so its six methods finish in 20 minutes on 2 CPU cores; this prints the parts a cut
would come from (greedy generation, the teacher-forced response NLL, the perturbed copies, OOD, forgetting,
the speed measures).

    .venv/bin/python bench/generate_eval_cost.py
    .venv/bin/python bench/generate_eval_cost.py --smoke    # seconds, on a tiny random Llama: checks it runs
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time

import _common as C

# --smoke: a few rows of every part, one thread
SMOKE = {"threads": 1}
SMOKE_SIZES = {"validation_size": 8, "test_size": 8, "ood_size": 4, "perturbation_size": 4}
SMOKE_TRAIN_SIZE = 16


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=None,
                        help="decoder (default: the embedded SmolLM2; --smoke: a tiny random Llama)")
    args = C.bench_args(parser, argv, SMOKE)
    threads = args.threads

    import torch

    torch.set_num_threads(threads)
    C.warn_if_busy(threads)

    from peftbench.config.spec import EMBEDDED, EMBEDDED_DECODER
    from peftbench.measure.forgetting import general_text_sample, next_token_ce
    from peftbench.models.loading import load_causal_lm, load_tokenizer
    from peftbench.studies.definitions import DECODER_QUICK_DATA, DECODER_QUICK_TRAIN
    from peftbench.tasks.generate.data import prepare_generation_data
    from peftbench.tasks.generate.evaluate import generate_ids, response_nll
    from peftbench.tasks.generate.speed import generation_speed

    spec = dataclasses.replace(DECODER_QUICK_DATA, task="generate", ood_source=EMBEDDED)
    train_size = DECODER_QUICK_TRAIN.train_size
    if args.smoke:
        from _tiny_models import smoke_model

        args.model = smoke_model(args.model, "llama")
        spec = dataclasses.replace(spec, **SMOKE_SIZES)
        train_size = SMOKE_TRAIN_SIZE
    model_name = args.model or EMBEDDED_DECODER
    data = prepare_generation_data(spec, model_name, train_size)
    tok = load_tokenizer(model_name)
    model = load_causal_lm(model_name).eval()
    cpu, pad, eos = torch.device("cpu"), data.pad_token_id, data.eos_token_id

    parts: list[dict] = []

    def timed(label: str, rows: int, fn) -> float:
        t0 = time.perf_counter()
        fn()
        seconds = time.perf_counter() - t0
        per_row = f"{seconds / rows * 1000:>7.0f} ms/row" if rows else ""  # the last two parts have no rows
        print(f"{label:<34} {rows:>5} rows {seconds:>7.1f} s {per_row}".rstrip())
        parts.append({"part": label, "rows": rows, "seconds": seconds})
        return seconds

    print(f"max_new_tokens {data.max_new_tokens}, threads {torch.get_num_threads()}")
    total = 0.0
    for name, rows in (("validation", data.validation), ("test", data.test)):
        total += timed(f"{name}: greedy generation", len(rows),
                       lambda r=rows: generate_ids(model, r, cpu, pad, eos, data.max_new_tokens))
        total += timed(f"{name}: response NLL", len(rows), lambda r=rows: response_nll(model, r, cpu, pad))
    for kind, rows in data.perturbed.items():
        total += timed(f"perturbed {kind}: generation", len(rows),
                       lambda r=rows: generate_ids(model, r, cpu, pad, eos, data.max_new_tokens))
    if data.ood is not None:
        total += timed("OOD: generation", len(data.ood),
                       lambda: generate_ids(model, data.ood, cpu, pad, eos, data.max_new_tokens))
    sample = general_text_sample(tok)
    total += timed("forgetting: general-text CE", 0, lambda: next_token_ce(model, sample, cpu))
    total += timed("speed: TTFT + decode tok/s", 0,
                   lambda: generation_speed(model, data.test, cpu, pad, runs=DECODER_QUICK_TRAIN.latency_runs,
                                            new_tokens=16, repeats=2))
    print(f"{'scoring in all (one model, unmerged)':<34} {'':>10} {total:>7.1f} s")
    C.write_json("generate_eval_cost", {"model": model_name, "smoke": args.smoke, "threads": threads,
                                        "max_new_tokens": data.max_new_tokens, "parts": parts,
                                        "total_seconds": total}, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
