"""Parameter accounting against peft's own count, BitFit by hand, and method parsing."""

import pytest

from peftbench.errors import PeftbenchError
from peftbench.measure.params import base_parameter_count, count_parameters, saved_parameter_count
from peftbench.methods import (
    FAMILIES,
    PRESETS,
    SEED_PRESETS,
    BuildContext,
    build_model,
    parse_method,
    parse_methods,
)
from peftbench.models.loading import attention_targets, load_classifier

CTX = BuildContext(total_steps=100, num_labels=2)
HEAD = (32 * 2 + 2) + (32 * 32 + 32)  # classifier + pooler (random init: untrained, so part of the head)


def _in_head(name: str) -> bool:
    return name.startswith("classifier.") or name.startswith("bert.pooler.")


def _built(model_path, name):
    base = load_classifier(model_path, 2)
    base_params, heads = base_parameter_count(base)
    model = build_model(base, parse_method(name), CTX)
    return model, count_parameters(model, base_params, heads)


@pytest.mark.parametrize("name", [p for p, (fam, _) in PRESETS.items() if FAMILIES[fam].uses_peft])
def test_trainable_count_equals_peft(tiny_model, name):
    model, counts = _built(tiny_model, name)
    peft_trainable, peft_all = model.get_nb_trainable_parameters()
    assert counts["trainable_params"] == peft_trainable
    # the head trains with every method: the classifier, and the tiny model's untrained pooler with it
    assert counts["head_params"] == HEAD
    assert counts["adapter_params"] == peft_trainable - counts["head_params"]
    assert 0 < counts["trainable_pct"] < 100


def test_bitfit_is_biases_and_head_by_hand(tiny_model):
    model, counts = _built(tiny_model, "BitFit")
    base = load_classifier(tiny_model, 2)
    by_hand = sum(p.numel() for n, p in base.named_parameters()
                  if n.endswith(".bias") or _in_head(n))
    assert counts["trainable_params"] == by_hand
    trained = {n for n, p in model.named_parameters() if p.requires_grad}
    assert all(n.endswith(".bias") or _in_head(n) for n in trained)
    assert "classifier.weight" in trained
    assert saved_parameter_count(model) == by_hand  # ships what changed, not the whole model


def test_full_trains_everything(tiny_model):
    model, counts = _built(tiny_model, "Full")
    assert counts["trainable_params"] == counts["base_params"] == counts["total_params"]
    assert counts["trainable_pct"] == 100.0


def test_ptuning_trains_encoder_but_ships_embeddings(tiny_model):
    model, counts = _built(tiny_model, "PromptTuning-len16")
    shipped = saved_parameter_count(model)
    assert shipped < counts["trainable_params"]  # the prompt-encoder MLP is not saved
    assert shipped == 16 * 32 + counts["head_params"]


def test_lora_rank_scales_adapter(tiny_model):
    _, r4 = _built(tiny_model, "LoRA-r4")
    _, r8 = _built(tiny_model, "LoRA-r8")
    # q, k, v in 2 layers, each A (r x 32) + B (32 x r)
    assert r4["adapter_params"] == 2 * 3 * (4 * 32 + 32 * 4)
    assert r8["adapter_params"] == 2 * r4["adapter_params"]


def test_seed_presets_are_the_notebooks_twelve():
    assert list(SEED_PRESETS) == ["Full", "LoRA-r4", "LoRA-r8", "LoRA-r16", "LoRA-r32", "LoRA-AllLayers", "AdaLoRA",
                                  "PrefixTuning-len16", "PrefixTuning-len32", "PromptTuning-len16",
                                  "PromptTuning-len32", "BitFit"]
    assert [parse_method(f"LoRA-r{r}").options["alpha"] for r in (4, 8, 16, 32)] == [16, 16, 32, 64]
    assert parse_method("PromptTuning-len32").family == "ptuning"


def test_attention_targets_found_not_assumed(tiny_model):
    assert attention_targets(load_classifier(tiny_model, 2)) == ["query", "key", "value"]


def test_custom_spec_and_lr():
    spec = parse_method("lora:r=2:alpha=4:targets=query+value:lr=3e-4")
    assert spec.options == {"r": 2, "alpha": 4.0, "dropout": 0.1, "targets": "query+value"}
    assert spec.learning_rate == 3e-4
    assert parse_method("LoRA-r8").learning_rate == FAMILIES["lora"].default_lr


def test_a_non_default_learning_rate_is_in_the_name():
    """Results group by name: two learning rates must never look like two seeds of one method."""
    default = FAMILIES["full"].default_lr
    assert parse_method("full").name == "Full"  # the preset of that name
    assert parse_method(f"Full:lr={default:g}").name == "Full"
    assert parse_method("Full:lr=1e-2").name == "Full:lr=0.01"
    assert parse_method("Full", learning_rate=3e-5).name == "Full:lr=3e-05"
    assert parse_method("lora:r=2:lr=3e-4").name == "lora:r=2:lr=0.0003"
    # the name is itself a method string that gives back the same spec
    again = parse_method(parse_method("LoRA-r8:lr=1e-3").name)
    assert (again.options, again.learning_rate) == (parse_method("LoRA-r8:lr=1e-3").options, 1e-3)
    assert [m.name for m in parse_methods(["Full", "Full:lr=1e-2"])] == ["Full", "Full:lr=0.01"]


@pytest.mark.parametrize("text,phrase", [
    ("NoSuchMethod", "unknown method"),
    ("lora:r=0", "r must be >= 1"),
    ("lora:r=-3", "r must be >= 1"),
    ("lora:alpha=0", "alpha must be > 0"),
    ("lora:r=two", "r must be int"),
    ("lora:rank=4", "has no option 'rank'"),
    ("prefix:tokens=0", "tokens must be >= 1"),
    ("lora:lr=-1", "learning rate must be positive"),
    ("lora:r", "key=value"),
])
def test_bad_method_specs(text, phrase):
    with pytest.raises(PeftbenchError, match=phrase):
        parse_method(text)
