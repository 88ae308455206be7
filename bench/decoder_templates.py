"""Which prompt template the embedded decoder's generation task uses: each candidate's zero-shot exact match
on the validation split (never test), the untrained SmolLM2-135M-Instruct answering greedily.

The default is the template that gives the untrained model its best floor, so "what training bought" is
never inflated by a prompt the base model could not read. Prints one row per template, then the setup they
were measured on (split hash, sizes, model package) and how it differs from the recorded evidence's: the
figures and that setup are what tasks/generate/templates.py records (TEMPLATE_EVIDENCE, TEMPLATE_SETUP).

    .venv/bin/python bench/decoder_templates.py            # the decoder-quick preset's validation split
    .venv/bin/python bench/decoder_templates.py --smoke    # seconds, on a tiny random Llama: checks it runs
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time

import _common as C

# --smoke: a few validation rows, one thread
SMOKE = {"threads": 1, "validation_size": 8}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--validation-size", type=int, default=None, help="default: the decoder-quick preset's")
    parser.add_argument("--model", default=None,
                        help="decoder (default: the embedded SmolLM2; --smoke: a tiny random Llama)")
    args = C.bench_args(parser, argv, SMOKE)
    threads = args.threads

    import torch

    from peftbench.config.spec import EMBEDDED_DECODER
    from peftbench.models.loading import load_causal_lm, load_tokenizer
    from peftbench.studies.definitions import DECODER_QUICK_DATA
    from peftbench.studies.evidence import code_setup, model_version
    from peftbench.tasks.generate.data import prepare_generation_data
    from peftbench.tasks.generate.templates import TEMPLATE_EVIDENCE, TEMPLATES
    from peftbench.tasks.generate.evaluate import evaluate_generation

    torch.set_num_threads(threads)
    C.warn_if_busy(threads)
    if args.smoke:
        from _tiny_models import smoke_model

        args.model = smoke_model(args.model, "llama")
    model_name = args.model or EMBEDDED_DECODER
    spec = dataclasses.replace(DECODER_QUICK_DATA, task="generate", ood_source=None)
    if args.validation_size:
        spec = dataclasses.replace(spec, validation_size=args.validation_size)
    if args.smoke:  # only validation is scored: keep the test split and its perturbed copies small too
        spec = dataclasses.replace(spec, test_size=8, perturbation_size=4)
    tok = load_tokenizer(model_name)
    model = load_causal_lm(model_name).eval()
    device = torch.device("cpu")
    print(f"{'template':<12} {'zero-shot val EM':>16} {'95% CI':>16} {'other':>6} {'rows':>5} {'s':>6}  text")
    rows = []
    for name, template in TEMPLATES.items():
        t0 = time.perf_counter()
        data = prepare_generation_data(dataclasses.replace(spec, template=template), model_name, 16,
                                       tokenizer=tok)
        scored = evaluate_generation(model, data.validation, tok, device, data.pad_token_id,
                                     data.max_new_tokens, with_nll=False)
        n, em = len(data.validation), scored["exact_match"]
        half = 1.96 * (em * (1 - em) / n) ** 0.5
        seconds = time.perf_counter() - t0
        print(f"{name:<12} {em:>16.3f} {f'[{em - half:.3f}, {em + half:.3f}]':>16} "
              f"{scored['other_rate']:>6.2f} {n:>5} {seconds:>6.1f}  {template!r}")
        rows.append({"template": name, "text": template, "validation_exact_match": em,
                     "ci95": [em - half, em + half], "other_rate": scored["other_rate"], "rows": n,
                     "seconds": seconds})
    recorded = TEMPLATE_EVIDENCE.setup
    setup = dataclasses.replace(code_setup(recorded, data=spec), model=args.model or recorded.model,
                                model_version=model_version(args.model or recorded.model))
    print(f"setup: {setup.describe()}")
    diffs = recorded.differences(setup)
    print("recorded evidence's setup: " + ("the same" if not diffs else "differs (" + "; ".join(diffs) + ")"))
    C.write_json("decoder_templates", {"model": model_name, "smoke": args.smoke, "threads": threads,
                                       "validation_size": spec.validation_size, "templates": rows,
                                       "setup": dataclasses.asdict(setup), "setup_differences": diffs},
                 args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
