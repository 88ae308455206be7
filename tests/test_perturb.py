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
