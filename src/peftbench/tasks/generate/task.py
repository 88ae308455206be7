"""`--task generate`: a causal LM learns to write the response; measured on the six dimensions plus what
decoders need (zero-shot floor, exact match, response log-likelihood, forgetting, time to first token,
decode tokens/s, merged vs unmerged greedy outputs).

Validation is scored first and decides everything (the collapse mark); the test split is read once, for the
reported figures. Every figure is stored under its own name (exact match, TTFT, decode tokens/s); `roles`
says which of them the tables and decisions read as accuracy, latency and throughput.
"""

from __future__ import annotations

from typing import Any

from peftbench.config.spec import DataSpec, TrialSpec
from peftbench.errors import PeftbenchError
from peftbench.methods import DECODER_PREFIX
from peftbench.tasks.base import Task, subset_for_test

MERGE_PROBE_ROWS = 32  # test prompts whose greedy outputs must not change when the adapter is merged
DECODE_TOKENS = 16  # new tokens per timed decode call (eos ignored), at batch 1 and batch 16
DECODE_REPEATS = 2  # timed decode calls per batch size (their median), after one warm-up call


class GenerateTask(Task):
    name = "generate"
    summary = "a causal LM writes the response; loss on its tokens only, scored by exact match"
    peft_task_type = "CAUSAL_LM"
    needs_decoder = True
    can_tune = False  # the search scores accuracy at its rungs; this task's choices read exact match
    roles = {"accuracy": "exact_match", "latency_p50_ms": "ttft_p50_ms", "latency_p95_ms": "ttft_p95_ms",
             "latency_p25_ms": "ttft_p25_ms", "latency_p75_ms": "ttft_p75_ms",
             "throughput_per_s": "decode_tokens_per_s_batched"}
    headers = {"val_accuracy": "val EM", "accuracy": "test EM", "latency_p50_ms": "TTFT ms [IQR]",
               "merged_latency_p50_ms": "merged TTFT"}
    headline_label = "exact match"
    writes_answers = True
    data_efficiency_methods = (("Full", "LoRA-r8", "IA3", DECODER_PREFIX),) * 2

    def check_data(self, data: DataSpec) -> None:
        if data.template is not None and "{text}" not in data.template:
            raise PeftbenchError(f"template must hold {{text}} where the text goes, got {data.template!r}")
        if data.max_new_tokens is not None and data.max_new_tokens < 1:
            raise PeftbenchError(f"max_new_tokens must be positive, got {data.max_new_tokens}")

    def check_trial(self, spec: TrialSpec) -> None:
        if spec.tune is not None:
            raise PeftbenchError("--tune is not available for --task generate yet; set :lr= per method")

    def prepare_data(self, spec: DataSpec, model: str, max_train_size: int):
        from peftbench.tasks.generate.data import prepare_generation_data

        return prepare_generation_data(spec, model, max_train_size)

    def load_base(self, spec, data, device, load_in_4bit):
        from peftbench.models.loading import load_causal_lm

        return load_causal_lm(spec.model, load_in_4bit=load_in_4bit, device=device)

    def before_training(self, base, spec, data, device, record, say) -> dict[str, Any]:
        from peftbench.measure.forgetting import general_text_sample
        from peftbench.models.loading import load_tokenizer
        from peftbench.tasks.generate.zero_shot import zero_shot_floor

        record["num_labels"] = data.num_labels  # 0 for free-form responses
        tok = load_tokenizer(spec.model)
        say({"phase": "zero-shot"})
        sample = general_text_sample(tok)
        record.update(zero_shot_floor(base, data, spec, tok, device, sample, spec.train.bf16))
        record["forgetting_sample"] = sample.provenance
        return {"tokenizer": tok, "sample": sample}

    def _score(self, model, data, state, spec, rows, nll: bool = True):
        from peftbench.tasks.generate.evaluate import evaluate_generation

        return evaluate_generation(model, rows, state["tokenizer"], state["device"],
                                   data.pad_token_id, data.max_new_tokens, bf16=spec.train.bf16, with_nll=nll)

    def score_validation(self, model, spec, data, device, record, state) -> float:
        from peftbench.tasks.generate.scoring import score_validation

        model.config.use_cache = True  # gradient checkpointing turned the KV cache off for training
        state["device"] = device
        return score_validation(lambda rows, nll=True: self._score(model, data, state, spec, rows, nll),
                                data, record)

    def score_test(self, model, spec, data, device, record, state) -> None:
        from peftbench.measure.forgetting import next_token_ce
        from peftbench.tasks.generate.scoring import score_test

        score_test(lambda rows, nll=True: self._score(model, data, state, spec, rows, nll), data,
                   subset_for_test(spec, data.test), record)
        record["general_ce_after"] = next_token_ce(model, state["sample"], device)
        record["forgetting"] = record["general_ce_after"] - record["general_ce_before"]

    def measure_inference(self, model, spec, data, device, record) -> None:
        from peftbench.tasks.generate.speed import generation_speed

        from peftbench.measure.inference import timed_cleanly

        record.update(timed_cleanly(lambda: generation_speed(model, data.test, device, data.pad_token_id,
                                                             runs=spec.train.latency_runs, new_tokens=DECODE_TOKENS,
                                                             repeats=DECODE_REPEATS), device, "inference"))

    def merged(self, model, data, spec, device) -> dict[str, Any]:
        """Merge the adapter into the base weights; its greedy outputs must be the unmerged model's, token for
        token, and its generation speed is measured again."""
        from peftbench.tasks.generate.evaluate import generate_ids
        from peftbench.tasks.generate.speed import compare_greedy, generation_speed

        probe = data.test.take(min(MERGE_PROBE_ROWS, len(data.test)))
        args = (device, data.pad_token_id, data.eos_token_id, data.max_new_tokens)
        before = generate_ids(model, probe, *args)
        merged = model.merge_and_unload()
        after = generate_ids(merged, probe, *args)
        same = compare_greedy(before, after)
        from peftbench.measure.inference import timed_cleanly

        speed = timed_cleanly(lambda: generation_speed(merged, data.test, device, data.pad_token_id,
                                                       runs=spec.train.latency_runs, new_tokens=DECODE_TOKENS,
                                                       repeats=DECODE_REPEATS), device, "merged")
        flags = {k: speed.pop(k) for k in list(speed) if k.startswith("merged_")}
        return {"merge_same_greedy": same["identical"], "merge_rows_differing": same["rows_differing"],
                "merge_probe_rows": same["rows"], **{f"merged_{k}": v for k, v in speed.items()}, **flags}
