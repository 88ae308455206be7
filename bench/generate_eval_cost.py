"""Where a `--task generate` trial's scoring time goes on the embedded decoder: seconds per part, at the
decoder-quick preset's sizes, on the untrained SmolLM2-135M-Instruct (a trained adapter costs the same
compute per row; it may stop generating sooner).

The preset is sized so its six methods finish in 20 minutes on 2 CPU cores; this prints the parts a cut
would come from (greedy generation, the teacher-forced response NLL, the perturbed copies, OOD, forgetting,
the speed measures).

    .venv/bin/python bench/generate_eval_cost.py
"""

from __future__ import annotations

import argparse
import dataclasses
import time

import _common as C


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    C.add_common_args(parser)
    args = parser.parse_args()
    threads = args.threads or C.default_threads()

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
    data = prepare_generation_data(spec, EMBEDDED_DECODER, DECODER_QUICK_TRAIN.train_size)
    tok = load_tokenizer(EMBEDDED_DECODER)
    model = load_causal_lm(EMBEDDED_DECODER).eval()
    cpu, pad, eos = torch.device("cpu"), data.pad_token_id, data.eos_token_id

    parts: list[dict] = []

    def timed(label: str, rows: int, fn) -> float:
        t0 = time.perf_counter()
        fn()
        seconds = time.perf_counter() - t0
        print(f"{label:<34} {rows:>5} rows {seconds:>7.1f} s {seconds / max(rows, 1) * 1000:>7.0f} ms/row")
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
    C.write_json("generate_eval_cost", {"threads": threads, "max_new_tokens": data.max_new_tokens,
                                        "parts": parts, "total_seconds": total}, args.json)


if __name__ == "__main__":
    main()
