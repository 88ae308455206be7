"""The method registry holds no test-split figure: every default learning rate is the validation argmax of
its family's grid, and `peftbench methods` prints that evidence with the command that measures it again."""

import re
import subprocess
import sys

from peftbench.methods import FAMILIES, parse_method
from peftbench.methods.evidence import EVIDENCE, SETTING


def test_every_seed_family_has_validation_evidence():
    seed_families = {"full", "lora", "lora_all", "adalora", "prefix", "ptuning", "bitfit"}
    assert seed_families <= set(EVIDENCE)


def test_defaults_are_the_validation_argmax_of_their_grid():
    for family, ev in EVIDENCE.items():
        fam = FAMILIES[family]
        assert fam.default_lr == ev.best_lr, family
        assert set(ev.val_accuracy) <= set(fam.lr_candidates()), family  # --tune tries the same rates
        assert parse_method(ev.preset).family == family
        assert all(0.0 <= acc <= 1.0 for acc in ev.val_accuracy.values())


def test_no_note_quotes_an_accuracy():
    """Test figures once lived in these notes; a percentage or accuracy figure here must come back as evidence."""
    for fam in FAMILIES.values():
        assert not re.search(r"\d+(\.\d+)?\s*%", fam.lr_note), fam.name
    assert "validation" in SETTING and "test" not in SETTING


def test_methods_command_shows_the_evidence_and_the_command():
    out = subprocess.run([sys.executable, "-m", "peftbench.cli", "methods"], capture_output=True, text=True,
                         check=True, env={"COLUMNS": "400", "PATH": ""}).stdout
    flat = " ".join(out.split())
    assert "validation, never test" in flat
    ev = EVIDENCE["lora"]
    assert f"{ev.val_accuracy[ev.best_lr]:.3f}" in flat
    assert "peftbench run --no-ood --methods" in flat


def test_decoder_defaults_are_the_validation_argmax_of_their_grid():
    """The same rule for the decoder rates: measured on the embedded decoder's validation split."""
    from peftbench.methods.evidence import DECODER_EVIDENCE, DECODER_SETTING

    assert "validation" in DECODER_SETTING and "test" not in DECODER_SETTING
    from peftbench.methods import DECODER_PRESETS

    # every family of the decoder default set has its rate from a validation grid
    assert {parse_method(m).family for m in DECODER_PRESETS} <= set(DECODER_EVIDENCE)
    for family, ev in DECODER_EVIDENCE.items():
        fam = FAMILIES[family]
        assert fam.default_lr_for(decoder=True) == ev.best_lr, family
        assert set(ev.val_accuracy) <= set(fam.lr_candidates(decoder=True)), family
        assert "--task generate" in ev.command(family)
