"""Perturbations are deterministic for a seed and really change the text."""

import pytest

from peftbench.data.perturb import PERTURBATIONS

TEXT = "An absorbing and often very funny portrait of a family that refuses to fall apart quietly"


@pytest.mark.parametrize("kind", list(PERTURBATIONS))
def test_deterministic_and_changing(kind):
    fn = PERTURBATIONS[kind]
    a, b = fn(TEXT, 0.2, 1), fn(TEXT, 0.2, 1)
    assert a == b
    assert a != TEXT
    assert fn(TEXT, 0.2, 2) != a or kind == "case"  # another seed, (usually) another perturbation


def test_rate_controls_amount():
    few = PERTURBATIONS["word_dropout"](TEXT, 0.1, 0)
    many = PERTURBATIONS["word_dropout"](TEXT, 0.5, 0)
    assert len(many.split()) < len(few.split()) < len(TEXT.split())


def test_swap_keeps_words_and_short_texts_survive():
    swapped = PERTURBATIONS["word_swap"](TEXT, 0.2, 0)
    assert sorted(swapped.split()) == sorted(TEXT.split())
    assert PERTURBATIONS["word_dropout"]("single", 0.5, 0) == "single"


class _CharTokenizer:
    """One id per character, case-sensitive unless `lower`: tells whether a perturbation did anything."""

    def __init__(self, lower: bool):
        self.lower = lower

    def __call__(self, texts, truncation=True, max_length=512, padding=False, add_special_tokens=True):
        one = isinstance(texts, str)
        rows = [[ord(c) for c in (t.lower() if self.lower else t)][:max_length]
                for t in ([texts] if one else texts)]
        return {"input_ids": rows[0] if one else rows}


@pytest.mark.parametrize("lower", [True, False])
def test_case_is_skipped_only_when_it_leaves_token_ids_unchanged(lower):
    import numpy as np

    from peftbench.config.spec import DataSpec
    from peftbench.data.prepared import TokenizedSet, _tokenize, perturb_test

    tok, spec = _CharTokenizer(lower), DataSpec(max_length=200)
    texts = [TEXT, "a quiet film about nothing much", "Great fun"]
    clean = TokenizedSet(_tokenize(tok, texts, 200), np.array([1, 0, 1]))
    perturbed, skipped = perturb_test(tok, spec, clean, texts)
    assert set(perturbed) | set(skipped) == set(PERTURBATIONS)
    if lower:
        assert skipped == {"case": "leaves the token ids unchanged (uncased tokenizer)"}
    else:
        assert skipped == {} and len(perturbed["case"]) == 3
    assert np.array_equal(perturbed["typo"].labels, clean.labels)


def test_uncased_model_skips_case_with_a_note(tiny_model, tiny_data_spec):
    import dataclasses

    from peftbench.config.spec import DataSpec
    from peftbench.data.prepared import prepare_data

    assert DataSpec().perturbation_size == 400
    spec = dataclasses.replace(tiny_data_spec, perturbation_size=400)  # more than the 80 test rows
    data = prepare_data(spec, tiny_model, 100)
    assert "case" not in data.perturbed and data.perturbations_skipped["case"].endswith("(uncased tokenizer)")
    assert data.provenance["perturbations_skipped"] == data.perturbations_skipped
    assert {len(p) for p in data.perturbed.values()} == {80} == {data.provenance["perturbation_size"]}
    # not a start-up line (bad input must stay one line): `results` says it under the table
    assert not any("case" in note for note in data.notes)
