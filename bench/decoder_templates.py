"""Which prompt template the embedded decoder's generation task uses: each candidate's zero-shot exact match
on the validation split (never test), the untrained SmolLM2-135M-Instruct answering greedily.

The default is the template that gives the untrained model its best floor, so "what training bought" is
never inflated by a prompt the base model could not read. Prints one row per template; the figures are the
evidence quoted in data/generation.py (TEMPLATE_EVIDENCE).

    .venv/bin/python bench/decoder_templates.py            # the decoder-quick preset's validation split
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--validation-size", type=int, default=None, help="default: the decoder-quick preset's")
    args = parser.parse_args()

    import torch

    from peftbench.config.spec import EMBEDDED_DECODER
    from peftbench.models.loading import load_causal_lm, load_tokenizer
    from peftbench.studies.definitions import DECODER_QUICK_DATA
    from peftbench.tasks.generate.data import TEMPLATES, prepare_generation_data
    from peftbench.tasks.generate.evaluate import evaluate_generation

    spec = dataclasses.replace(DECODER_QUICK_DATA, task="generate", ood_source=None)
    if args.validation_size:
        spec = dataclasses.replace(spec, validation_size=args.validation_size)
    tok = load_tokenizer(EMBEDDED_DECODER)
    model = load_causal_lm(EMBEDDED_DECODER).eval()
    device = torch.device("cpu")
    print(f"{'template':<12} {'zero-shot val EM':>16} {'95% CI':>16} {'other':>6} {'rows':>5} {'s':>6}  text")
    for name, template in TEMPLATES.items():
        t0 = time.perf_counter()
        data = prepare_generation_data(dataclasses.replace(spec, template=template), EMBEDDED_DECODER, 16,
                                       tokenizer=tok)
        scored = evaluate_generation(model, data.validation, tok, device, data.pad_token_id,
                                     data.max_new_tokens, with_nll=False)
        n, em = len(data.validation), scored["exact_match"]
        half = 1.96 * (em * (1 - em) / n) ** 0.5
        print(f"{name:<12} {em:>16.3f} {f'[{em - half:.3f}, {em + half:.3f}]':>16} "
              f"{scored['other_rate']:>6.2f} {n:>5} {time.perf_counter() - t0:>6.1f}  {template!r}")


if __name__ == "__main__":
    main()
