"""Every field of a trial record: name, unit, the split it reads, and what it means, grouped by dimension.

`<kind>` in a name stands for a perturbation (typo, word_dropout, word_swap, case). Splits: validation
(every choice reads it), test (read once per trial, for reporting), ood (the out-of-domain set), perturbed
(the first test rows, perturbed), train, general text (forgetting's sample), none (not a figure of a split).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Field:
    name: str
    unit: str
    split: str
    meaning: str


def _f(name: str, unit: str, split: str, meaning: str) -> Field:
    return Field(name, unit, split, meaning)


IDENTITY = [
    _f("record_version", "-", "none", "version of this declaration the record was written (or migrated) to"),
    _f("trial_id", "-", "none", "hash of the trial's spec: its identity in the store"),
    _f("study", "-", "none", "tradeoff, data-efficiency, rank-sweep"),
    _f("method", "-", "none", "the method's name (a non-default learning rate is part of it); read from a "
       "store, the configuration's label: the name plus what tells it apart from another configuration of "
       "that name in the study and setup (`LoRA-r8 · lr 0.001`), or `<name> (tuned)` for a tuned choice"),
    _f("method_name", "-", "none", "the method's own name, without the configuration's label (store)"),
    _f("config", "-", "none", "the configuration key (store): trials are seeds of one configuration only "
       "when it agrees (config/identity.py)"),
    _f("configuration", "-", "none", "what the configuration key hashes: setup, method, options, learning "
       "rates as run, train size, optimiser and data options, tuning (store)"),
    _f("family", "-", "none", "the method family (lora, prefix, ia3, bitfit, ...)"),
    _f("seed", "-", "none", "the trial's seed"),
    _f("train_size", "rows", "train", "training examples"),
    _f("epochs", "-", "train", "epochs"),
    _f("batch_size", "rows", "train", "training batch size"),
    _f("learning_rate", "-", "none", "the method's learning rate as run"),
    _f("head_learning_rate", "-", "none", "the classifier head's own rate (None: the method's, capped)"),
    _f("model", "-", "none", "--model as given"),
    _f("task", "-", "none", "the task the trial trained (tasks/)"),
    _f("device", "-", "none", "torch device the trial ran on"),
    _f("num_labels", "classes", "none", "the task's classes, when a generate task scores verbalised labels"),
    _f("setup", "-", "none", "the setup key (store): trials of one setup are comparable (model and revision, "
       "data split, max length, epochs, batch, device type, precision, train size outside data efficiency)"),
    _f("setup_label", "-", "none", "what differs between the store's setups, in words"),
    _f("lora_r", "-", "none", "LoRA rank from the spec (store)"),
    _f("lora_alpha", "-", "none", "LoRA alpha from the spec (store)"),
    _f("eval_size", "rows", "test", "test rows evaluated (data-efficiency's fixed set), None: all"),
]
STATUS = [
    _f("status", "-", "none", "ok, pruned (a tuning candidate stopped early), failed, cancelled, running"),
    _f("error", "-", "none", "a failed trial's reason"),
    _f("attempts", "count", "none", "times the trial was started"),
    _f("started_at", "unix s", "none", "when the trial started"),
    _f("finished_at", "unix s", "none", "when the trial finished"),
]
PROVENANCE = [
    _f("provenance", "-", "none", "package versions, git hash and dirty flag, CPU/GPU, threads, the data "
       "split's sizes and content hash"),
    _f("forgetting_sample", "-", "general text", "the general-text sample forgetting reads (source, hash)"),
    _f("truncation", "rows, tokens", "train, validation, test, ood", "what max_length cut, per split "
       "(train_pool, validation, test, ood): {rows, rows_cut, tokens_lost}; more than 1% of a split's rows "
       "cut is noted under the results table"),
]
PARAMETERS = [
    _f("total_params", "params", "none", "parameters of the model as trained (base + adapter + head)"),
    _f("trainable_params", "params", "none", "parameters the optimizer updates"),
    _f("adapter_params", "params", "none", "trainable parameters outside the head"),
    _f("head_params", "params", "none", "trainable parameters of the classifier head (and untrained pooler)"),
    _f("head_modules", "-", "none", "the modules counted as head"),
    _f("base_params", "params", "none", "parameters of the base model as loaded"),
    _f("trainable_pct", "%", "none", "trainable / base parameters"),
    _f("param_reduction", "x", "none", "base / trainable parameters"),
    _f("saved_params", "params", "none", "parameters a user ships (the adapter and head, or all for Full)"),
    _f("adapter_bytes", "bytes", "none", "size on disk of what is shipped (safetensors)"),
    _f("can_merge", "-", "none", "whether the method merges into the base weights"),
]
COMPUTE = [
    _f("flops_per_step", "FLOPs", "train", "one training step (forward+backward) of a representative batch"),
    _f("forward_flops_per_step", "FLOPs", "train", "its forward pass"),
    _f("flops_batch_tokens", "tokens", "train", "real tokens of that batch"),
    _f("flops_per_token", "FLOPs", "train", "flops_per_step / flops_batch_tokens"),
    _f("flops_batch_shape", "-", "train", "[batch, length] of that batch"),
    _f("train_flops", "FLOPs", "train", "flops_per_step x steps (an estimate: batches vary in length)"),
    _f("achieved_flops_per_s", "FLOP/s", "train", "train_flops / train_seconds"),
    _f("startup_seconds", "s", "none", "process spawn to first step"),
    _f("entered_to_first_step_seconds", "s", "none", "trial entry to first step"),
    _f("train_seconds", "s", "train", "wall time of the training loop"),
    _f("seconds_per_epoch", "s", "train", "train_seconds / epochs"),
    _f("train_steps", "count", "train", "optimizer steps"),
    _f("train_samples", "rows", "train", "rows seen (epochs x train_size)"),
    _f("train_samples_per_s", "rows/s", "train", "training throughput"),
    _f("final_train_loss", "nats", "train", "loss of the last step"),
    _f("train_tokens", "tokens", "train", "real tokens trained on"),
    _f("train_tokens_per_s", "tokens/s", "train", "training throughput in tokens"),
    _f("peak_rss_mb", "MB", "none", "the process's resident-set high-water mark after training"),
    _f("baseline_rss_mb", "MB", "none", "resident set at trial entry (preloaded libraries)"),
    _f("peak_rss_net_mb", "MB", "none", "peak_rss_mb - baseline_rss_mb: training memory"),
    _f("peak_cuda_allocated_mb", "MB", "none", "CUDA peak allocated (None on CPU)"),
    _f("peak_cuda_reserved_mb", "MB", "none", "CUDA peak reserved (None on CPU)"),
    _f("train_cpu_seconds", "s", "train", "CPU time of the training loop"),
    _f("threads", "count", "none", "torch threads"),
    _f("cpu_utilisation", "fraction", "train", "CPU time / (wall x threads)"),
    _f("load_avg_start", "-", "none", "1-min load average before training"),
    _f("load_avg_end", "-", "none", "after training"),
    _f("other_cores_busy", "cores", "train", "cores other processes kept busy while training"),
    _f("timing_contended", "-", "none", "train_seconds was taken while other work shared the machine: left "
       "out of every score"),
    _f("timing_note", "-", "none", "why it was flagged"),
    _f("eval_seconds", "s", "none", "evaluation wall time"),
    _f("inference_seconds", "s", "none", "inference measurements' wall time"),
    _f("trial_seconds", "s", "none", "the whole trial"),
]
PERFORMANCE = [
    _f("val_accuracy", "fraction", "validation", "accuracy (classify)"),
    _f("val_balanced_accuracy", "fraction", "validation", "balanced accuracy"),
    _f("val_f1", "fraction", "validation", "macro F1 over the task's classes"),
    _f("val_precision", "fraction", "validation", "macro precision"),
    _f("val_recall", "fraction", "validation", "macro recall"),
    _f("val_loss", "nats", "validation", "mean cross-entropy"),
    _f("val_predictions", "-", "validation", "per-row predicted classes (stats/predictions.py codec)"),
    _f("val_labels", "-", "validation", "per-row true classes"),
    _f("val_majority_rate", "fraction", "validation", "accuracy of always answering the commonest class"),
    _f("collapsed", "-", "validation", "the trial predicts (nearly) one class: a bug until diagnosed"),
    _f("collapse_reason", "-", "validation", "which class, how often"),
    _f("accuracy", "fraction", "test", "accuracy (classify)"),
    _f("balanced_accuracy", "fraction", "test", "balanced accuracy"),
    _f("f1", "fraction", "test", "macro F1 over the task's classes"),
    _f("precision", "fraction", "test", "macro precision"),
    _f("recall", "fraction", "test", "macro recall"),
    _f("eval_loss", "nats", "test", "mean cross-entropy (generate: the response NLL)"),
    _f("test_size", "rows", "test", "test rows scored"),
    _f("test_predictions", "-", "test", "per-row predicted classes"),
    _f("test_labels", "-", "test", "per-row true classes"),
    _f("test_majority_rate", "fraction", "test", "accuracy of always answering the commonest class"),
]
GENERALIZATION = [
    _f("ood_accuracy", "fraction", "ood", "accuracy (classify)"),
    _f("ood_balanced_accuracy", "fraction", "ood", "balanced accuracy (labels matched by name)"),
    _f("ood_f1", "fraction", "ood", "macro F1"),
    _f("ood_predictions", "-", "ood", "per-row predictions"),
    _f("ood_labels", "-", "ood", "per-row true classes"),
    _f("ood_exact_match", "fraction", "ood", "exact match (generate)"),
    _f("perturbation_rows", "rows", "perturbed", "first test rows perturbed per kind"),
    _f("perturbations_skipped", "-", "perturbed", "kinds that leave the token ids unchanged, and why"),
    _f("clean_subset_accuracy", "fraction", "perturbed", "accuracy on those rows unperturbed (classify)"),
    _f("clean_subset_exact_match", "fraction", "perturbed", "exact match on those rows (generate)"),
    _f("perturbed_<kind>_accuracy", "fraction", "perturbed", "accuracy under the perturbation (classify)"),
    _f("perturbed_<kind>_exact_match", "fraction", "perturbed", "exact match under it (generate)"),
    _f("perturbed_<kind>_predictions", "-", "perturbed", "per-row predictions under it"),
    _f("robustness_drop_<kind>", "fraction", "perturbed", "perturbed minus clean on the same rows"),
    _f("robustness_drop", "fraction", "perturbed", "mean drop over the kinds"),
]
INFERENCE = [
    _f("latency_p50_ms", "ms", "test", "batch-1 latency, median (classify)"),
    _f("latency_p95_ms", "ms", "test", "95th percentile"),
    _f("latency_p25_ms", "ms", "test", "25th percentile"),
    _f("latency_p75_ms", "ms", "test", "75th percentile"),
    _f("latency_mean_ms", "ms", "test", "mean"),
    _f("throughput_per_s", "rows/s", "test", "batch-32 throughput (classify)"),
    _f("inference_peak_rss_mb", "MB", "none", "resident-set high-water mark after inference"),
    _f("merged_latency_<p>_ms", "ms", "test", "the merged model's latency percentiles (classify)"),
    _f("merged_throughput_per_s", "rows/s", "test", "the merged model's throughput (classify)"),
    _f("merge_max_logit_diff", "logits", "test", "largest logit difference merged vs unmerged (16 rows)"),
    _f("merge_logit_scale", "logits", "test", "largest |logit| of the unmerged model on those rows: the merged "
       "figures count when merge_max_logit_diff <= 1e-3 x max(1, this)"),
    _f("inference_timing_contended", "-", "none", "latency/throughput (TTFT/decode) were timed while other work "
       "shared the machine (CPU only): left out of every score"),
    _f("inference_timing_note", "-", "none", "why they were flagged"),
    _f("inference_other_cores_busy", "cores", "test", "cores other processes kept busy while they were timed"),
    _f("merged_timing_contended", "-", "none", "the same for the merged model's timings"),
    _f("merged_timing_note", "-", "none", "why they were flagged"),
    _f("merged_other_cores_busy", "cores", "test", "cores other processes kept busy meanwhile"),
    _f("merge_error", "-", "none", "why the merged figures are missing"),
    # From the store's side_by_side table (studies/side_by_side.py), joined to the record when read: every
    # deployed model of a setup timed round robin in one process after the trials, so figures compared
    # between methods are taken at the same moments. The decision layer prefers them (analysis/timing_noise.py).
    _f("side_pass", "-", "none", "the side-by-side pass that timed the trial's deployed model (latest)"),
    _f("side_form", "-", "none", "the form it timed: merged (the trial's figures are merged) or as trained"),
    _f("side_rounds", "count", "none", "round-robin rounds of the pass"),
    _f("side_latency_p50_ms", "ms", "test", "batch-1 latency in the pass, median over every call"),
    _f("side_latency_p25_ms", "ms", "test", "25th percentile"),
    _f("side_latency_p75_ms", "ms", "test", "75th percentile"),
    _f("side_throughput_per_s", "rows/s", "test", "batch throughput in the pass (rows x rounds / seconds)"),
    _f("side_latency_rounds", "ms", "test", "JSON rounds x calls: every batch-1 latency, per round"),
    _f("side_batch_seconds", "s", "test", "JSON per round: one batch's seconds"),
    _f("side_batch_rows", "rows", "none", "rows of that batch (32, or the test split when smaller)"),
]
DECODER = [
    _f("exact_match", "fraction", "test", "normalised exact match of greedy answers (generate's headline)"),
    _f("val_exact_match", "fraction", "validation", "the same on validation"),
    _f("other_rate", "fraction", "test", "answers naming no class (verbalised labels)"),
    _f("val_other_rate", "fraction", "validation", "the same on validation"),
    _f("response_nll", "nats/token", "test", "mean NLL of the reference response"),
    _f("val_response_nll", "nats/token", "validation", "not scored (choices read exact match): absent"),
    _f("mean_generated_tokens", "tokens", "test", "mean greedy answer length"),
    _f("val_mean_generated_tokens", "tokens", "validation", "the same on validation"),
    _f("generations", "-", "test", "the first few greedy answers"),
    _f("references", "-", "test", "their references"),
    _f("zero_shot_exact_match", "fraction", "test", "the untrained model's exact match (the floor)"),
    _f("zero_shot_val_exact_match", "fraction", "validation", "the floor on validation"),
    _f("zero_shot_correct", "-", "test", "the floor's per-row correctness"),
    _f("zero_shot_val_correct", "-", "validation", "the floor's per-row correctness"),
    _f("zero_shot_generations", "-", "test", "the untrained model's first answers"),
    _f("gain_over_zero_shot", "fraction", "test", "exact match minus the floor"),
    _f("val_gain_over_zero_shot", "fraction", "validation", "the same on validation"),
    _f("general_ce_before", "nats", "general text", "next-token cross-entropy of the untrained model"),
    _f("general_ce_after", "nats", "general text", "after training"),
    _f("forgetting", "nats", "general text", "after minus before (positive = forgot)"),
    _f("ttft_<p>_ms", "ms", "test", "time to first token at batch 1 (p25, p50, p75, p95, mean)"),
    _f("decode_tokens_per_s_batch1", "tokens/s", "test", "decode speed at batch 1"),
    _f("decode_ms_batch1", "ms", "test", "one batch-1 decode call"),
    _f("decode_tokens_per_s_batched", "tokens/s", "test", "decode speed at batch N (generate's throughput)"),
    _f("decode_batch_size", "rows", "none", "N"),
    _f("decode_new_tokens", "tokens", "none", "new tokens per timed decode call"),
    _f("merged_ttft_<p>_ms", "ms", "test", "the merged model's time to first token"),
    _f("merged_decode_<what>", "-", "test", "the merged model's decode figures"),
    _f("merge_same_greedy", "-", "test", "merged greedy outputs identical to unmerged"),
    _f("merge_rows_differing", "rows", "test", "rows whose greedy tokens differ"),
    _f("merge_probe_rows", "rows", "test", "rows compared"),
]
# What `peftbench plan` predicted for the trial before it ran (studies/forecast.py), stored beside what the
# trial measured: the memory figure of the trial's device, its training time, its trainable parameters.
PLAN = [
    _f("predicted_peak_rss_net_mb", "MiB", "train", "the plan's prediction of peak_rss_net_mb (CPU trials)"),
    _f("predicted_peak_cuda_allocated_mb", "MiB", "train", "the plan's prediction of peak_cuda_allocated_mb "
       "(CUDA trials)"),
    _f("predicted_train_seconds", "s", "train", "the plan's prediction of train_seconds"),
    _f("predicted_trainable_params", "params", "none", "the plan's count of trainable_params (exact: a "
       "difference is a bug)"),
    _f("predicted_time_how", "-", "none", "how the time was predicted: calibrated (real steps on this "
       "machine), rate (a calibrated method's seconds per FLOP), roofline (peak figures)"),
    _f("prediction_note", "-", "none", "why the trial has no prediction (the plan of its method failed, "
       "with the reason), or what the prediction leaves out"),
]
TUNING = [
    _f("tune_group", "-", "none", "the method a --tune candidate tunes"),
    _f("tune_budget", "-", "none", "the search's printed budget"),
    _f("tune_search", "-", "none", "the Optuna study name"),
    _f("tune_rung_scores", "fraction", "validation", "validation accuracy at each rung (step -> figure)"),
    _f("tune_rung_val_rows", "rows", "validation", "validation rows scored at the first rung"),
    _f("tune_pruned_at_step", "step", "none", "where the search stopped the candidate"),
    _f("tune_optuna_trial", "-", "none", "Optuna trial number"),
    _f("tune_checkpoint_seconds", "s", "validation", "time spent scoring rungs (left out of train time)"),
]

GROUPS: dict[str, list[Field]] = {
    "identity": IDENTITY, "status": STATUS, "provenance": PROVENANCE, "parameters": PARAMETERS,
    "compute": COMPUTE, "performance": PERFORMANCE, "generalization": GENERALIZATION,
    "inference": INFERENCE, "decoder": DECODER, "tuning": TUNING, "plan": PLAN,
}
