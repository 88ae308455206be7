"""--race: run a study's configurations round by round, spending seeds only where the ranking is still open.

Round 1 runs every configuration under seed 0. After each round the race's decision (analysis/race.py)
reads the finished trials on validation: who leaves, who stays, whether to stop. The contenders of the next
round run one more seed each, the most uncertain first, through the same runner and executor as any study
(local or Ray: a round's trials run in parallel as the executor allows). Every trial is an ordinary trial:
stored, resumable, exported; the decisions go to the store's race tables (store/races.py), written once a
round's trials are done. A race is known by its settings and configurations (`race_id`), so the same
command run again reads the rounds it already decided and continues; finished trials are skipped as in any
study. A round's trials are the fixed study's trials of the same seed, so a race and a `--seeds K` study in
one store share every trial they have in common.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from peftbench.analysis.confidence import SEED
from peftbench.analysis.seed_noise import PRIOR_DOF, PRIOR_SD
from peftbench.analysis.race import (
    BACK,
    COLLAPSED,
    DEFAULT_CONFIDENCE,
    DEFAULT_MAX_SEEDS,
    IN,
    NO_RESULT,
    OUT,
    RACE_RESAMPLES,
    STOP_TEXT,
    Decision,
    RaceRule,
    Standing,
    decide,
)
from peftbench.config.spec import TrialSpec
from peftbench.errors import PeftbenchError
from peftbench.store.db import Store
from peftbench.store.races import load_rounds, save_round
from peftbench.studies.runner import run_trials
from peftbench.studies.settings import pick

RACEABLE = ("tradeoff", "rank-sweep")  # one study whose configurations compete; a sweep over sizes does not
WITH_RACE = ("scenario", "weights", "confidence", "max_seeds")  # options that need --race


@dataclass(frozen=True)
class RaceSettings:
    weights: dict[str, float]
    weights_label: str  # "scenario balanced (default)", "your weights"
    rule: RaceRule


def race_settings(values: Mapping[str, Any], cfg: Mapping | None = None, *, studies: Sequence[str] = (),
                  tune: bool = False) -> RaceSettings | None:
    """The race asked for by the options (`race`, `scenario`, `weights`, `confidence`, `max_seeds`, and
    `seeds` / `force`, which a race refuses), or None; every bad value is one line, before anything runs."""
    from peftbench.analysis.scenarios import DEFAULT_SCENARIO, parse_weights, scenario_weights

    cfg = cfg or {}
    race = bool(pick(values.get("race") or None, cfg, "race", False))
    given = [k for k in WITH_RACE if pick(values.get(k), cfg, k, None) is not None]
    if not race:
        if given:
            raise PeftbenchError(f"--{given[0].replace('_', '-')} needs --race")
        return None
    if pick(values.get("seeds"), cfg, "seeds", None) is not None:
        raise PeftbenchError("--race chooses the seeds itself (seed 0 for every configuration, then one more per "
                             "round for the contenders, up to --max-seeds): leave out --seeds")
    if tune:
        raise PeftbenchError("--race cannot be combined with --tune (race the tuned choices in a second run)")
    if values.get("force"):
        raise PeftbenchError("--race cannot be combined with --force: a race continues from its stored rounds "
                             "(use another --db for a fresh race)")
    other = [s for s in studies if s not in RACEABLE]
    if other:
        raise PeftbenchError(f"--race races the configurations of one study ({' or '.join(RACEABLE)}), not "
                             f"{other[0]}")
    scenario, weights = pick(values.get("scenario"), cfg, "scenario", None), pick(values.get("weights"), cfg,
                                                                                   "weights", None)
    if scenario is not None and weights is not None:
        raise PeftbenchError("give only one of --scenario and --weights")
    chosen = parse_weights(str(weights)) if weights is not None else scenario_weights(
        str(scenario or DEFAULT_SCENARIO))
    label = "your weights" if weights is not None else f"scenario {scenario or DEFAULT_SCENARIO}" + (
        "" if scenario else " (default)")
    rule = RaceRule(pick(values.get("confidence"), cfg, "confidence", DEFAULT_CONFIDENCE),
                    pick(values.get("max_seeds"), cfg, "max_seeds", DEFAULT_MAX_SEEDS))
    rule.validate()
    return RaceSettings(chosen, label, rule)


def configurations(specs: list[TrialSpec]) -> dict[str, list[TrialSpec]]:
    """The study's trials by configuration (the trial id with the seed set to 0), seeds in order."""
    out: dict[str, list[TrialSpec]] = {}
    for spec in specs:
        out.setdefault(dataclasses.replace(spec, seed=0).trial_id, []).append(spec)
    for key, group in out.items():
        out[key] = sorted(group, key=lambda s: s.seed)
    return out


def race_id(study: str, configs: Sequence[str], settings: RaceSettings) -> str:
    """The race's identity: the same command on the same store is the same race, and continues it. What
    decides its rounds is part of it (the seed-noise priors too): a race decided under other priors is another."""
    identity = {"study": study, "configs": list(configs), "confidence": settings.rule.confidence,
                "max_seeds": settings.rule.max_seeds, "out_share": settings.rule.out_share,
                "include_collapsed": settings.rule.include_collapsed,
                "weights": {k: round(v, 9) for k, v in settings.weights.items()}, "resamples": RACE_RESAMPLES,
                "bootstrap_seed": SEED, "seed_noise_prior": [PRIOR_SD, PRIOR_DOF]}
    return hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:12]


@dataclass
class RaceAnswer:
    """What a race found, and what it cost."""

    race_id: str
    study: str
    settings: RaceSettings
    decisions: list[Decision]
    round_trials: list[int]  # trials the race asked for in each round
    configurations: int
    run_now: int = 0  # trials this call ran (the others were in the store already)
    trial_ids: list[str] = dataclasses.field(default_factory=list)  # every trial the race asked for

    @property
    def final(self) -> Decision:
        return self.decisions[-1]

    @property
    def trials(self) -> int:
        return sum(self.round_trials)

    def fixed_trials(self, seeds: int) -> int:
        return self.configurations * seeds

    def lines(self) -> list[str]:
        d, rule = self.final, self.settings.rule
        tied = [d.label(c) for c in d.tied if c != d.leader]
        out = [f"race answer ({self.settings.weights_label}, chosen on validation): "
               f"{d.label(d.leader) if d.leader else 'none'}, P(best) {_p(d.p_best)}",
               f"  tied with it: {', '.join(tied) or 'none'}",
               f"  stopped after round {d.round}: {d.stop} ({STOP_TEXT.get(d.stop, d.stop)}"
               + (f", {rule.confidence:g}" if d.stop == "confident" else "") + ")"]
        raced = [f"{d.label(c)} (round {n}{', collapsed' if why == COLLAPSED else ''})"
                 for n, c, why in raced_out(self.decisions)]
        if raced:
            out.append(f"  raced out: {', '.join(raced)}")
        deepest = max((s.seeds for s in d.standings), default=1) or 1
        beyond = self.trials - self.round_trials[0]
        sums = " + ".join(map(str, self.round_trials)) + (f" = {self.trials}" if len(self.round_trials) > 1 else "")
        out.append(f"  trials: {sums} ({beyond} beyond the "
                   f"first round; {self.run_now} run now); a fixed study of these {self.configurations} "
                   f"configurations: {self.fixed_trials(rule.max_seeds)} at --seeds {rule.max_seeds} (the "
                   f"race's --max-seeds), {self.fixed_trials(deepest)} at --seeds {deepest} (its deepest)")
        out += [f"  {note}" for note in d.notes]
        return out


def raced_out(decisions: list[Decision]) -> list[tuple[int, str, str]]:
    """(round, config, status) for each configuration out of the race at its end: the round it left in and
    why (raced out, collapsed, no result)."""
    final = decisions[-1]
    running = {s.config for s in final.standings if s.status in (IN, BACK)}
    out = []
    for config in (s.config for s in final.standings if s.config not in running):
        left = [(d.round, s.status) for d in decisions for s in d.standings
                if s.config == config and s.status in (OUT, NO_RESULT, COLLAPSED)]
        when, why = max(left, default=(0, OUT))
        out.append((when, config, why))
    return sorted(out)


def _p(value: float) -> str:
    return f"{value:.2f}" if value == value else "-"  # NaN: no P(best) (nothing ranked, or no predictions)


def round_line(decision: Decision, trials: int) -> str:
    out = ", ".join(decision.label(c) for c in decision.out_now) or "none"
    tied = ", ".join(decision.label(c) for c in decision.tied) or "-"
    leader = decision.label(decision.leader) if decision.leader else "none"
    stop = f"; stop: {decision.stop}" if decision.stop else ""
    return (f"race round {decision.round} done ({trials} trial(s)): leader {leader}, P(best) "
            f"{_p(decision.p_best)}; tied: {tied}; out: {out}; {len(decision.contenders)} contender(s) left{stop}")


def _to_rows(decision: Decision, scheduled: Mapping[str, int], trials: int) -> tuple[dict, list[dict]]:
    row = {"round": decision.round, "leader": decision.leader, "p_best": decision.p_best,
           "tied": list(decision.tied), "stop": decision.stop, "trials": trials, "notes": list(decision.notes)}
    standings = [{**dataclasses.asdict(s), "scheduled": scheduled.get(s.config, 0)} for s in decision.standings]
    return row, standings


def _from_rows(row: dict, standings: list[dict]) -> tuple[Decision, dict[str, int]]:
    parts = [Standing(**{k: v for k, v in s.items() if k != "scheduled"}) for s in standings]
    decision = Decision(row["round"], row["leader"], row["p_best"], tuple(row["tied"]), tuple(parts),
                        row["stop"], tuple(row["notes"]))
    return decision, {s["config"]: s["scheduled"] for s in standings}


def _race_records(db: Path, study: str, config_of: Mapping[str, str]) -> pd.DataFrame:
    """The race's finished trials (only those it ran or asked for), each with its configuration's key."""
    with Store(db, create=False) as store:
        records = store.records(study)
    if records.empty:
        return records
    records = records[records["trial_id"].isin(config_of)].copy()
    records["race_config"] = records["trial_id"].map(config_of)
    return records.reset_index(drop=True)


def refuse_limits(budget, max_memory) -> None:
    """--budget and --max-memory limit a study planned in full; a race decides its trials as it goes."""
    if budget is not None or max_memory is not None:
        raise PeftbenchError("--budget and --max-memory limit a study planned in full; a race decides its trials "
                             "as it goes (bound it with --max-seeds, and pick its --methods with `peftbench plan`)")


def run_race(specs: list[TrialSpec], db: str | Path, executor, settings: RaceSettings, *,
             say: Callable[[str], None] = print, display=None, trackers=None, side_by_side: bool = True,
             retry_failed: bool = False, retries: int = 0, planner=None) -> RaceAnswer:
    """Race the configurations of `specs` (one study, built with seeds 0..max_seeds-1) into the store `db`;
    `planner` (studies/forecast.Planner, without limits) plans each round before it runs."""
    db = Path(db)
    studies = {s.study for s in specs}
    if len(studies) != 1:
        raise PeftbenchError("--race races the configurations of one study at a time")
    study = next(iter(studies))
    configs = configurations(specs)
    names = {c: group[0].method.name for c, group in configs.items()}
    rid = race_id(study, list(configs), settings)
    stored_settings = {"weights": settings.weights, "weights_label": settings.weights_label,
                       "confidence": settings.rule.confidence, "max_seeds": settings.rule.max_seeds,
                       "out_share": settings.rule.out_share, "configurations": len(configs)}
    decisions, round_trials, scheduled = [], [], {c: 0 for c in configs}
    contenders, previous_tied = list(configs), None
    if db.exists() and db.stat().st_size > 0:
        with Store(db, create=False) as store:
            stored = load_rounds(store.conn, rid)
        for row, standings in stored:  # the rounds this race already decided: read, never re-decided
            decision, scheduled = _from_rows(row, standings)
            decisions.append(decision)
            round_trials.append(row["trials"])
            contenders, previous_tied = decision.contenders, decision.tied
        if stored:
            done = decisions[-1].stop is not None
            say(f"race {rid}: {'finished' if done else 'continuing'} after round {len(stored)} (its decisions "
                "read from the store)")
    answer = RaceAnswer(rid, study, settings, decisions, round_trials, len(configs))
    cache: dict = {}
    while not decisions or decisions[-1].stop is None:
        number = len(decisions) + 1
        todo = [c for c in contenders if scheduled[c] < settings.rule.max_seeds]
        batch = [configs[c][scheduled[c]] for c in todo]
        seeds = sorted({s.seed for s in batch})
        say(f"race round {number}: {len(batch)} contender(s), seed {'/'.join(map(str, seeds))}"
            + (", most uncertain first" if number > 1 else "") + ": " + ", ".join(names[c] for c in todo))
        summary = run_trials(batch, db, executor, retry_failed=retry_failed, retries=retries, display=display,
                             trackers=trackers, side_by_side=side_by_side, data_cache=cache,
                             planner=planner)
        answer.run_now += summary.planned - summary.skipped
        for c in todo:
            scheduled[c] += 1
        config_of = {spec.trial_id: c for c, group in configs.items() for spec in group[:scheduled[c]]}
        records = _race_records(db, study, config_of)
        decision = decide(records, settings.weights, study, number, contenders, names, scheduled, previous_tied,
                          settings.rule)
        with Store(db, create=False) as store:
            save_round(store.conn, rid, study, stored_settings, *_to_rows(decision, scheduled, len(batch)))
        decisions.append(decision)
        round_trials.append(len(batch))
        say(round_line(decision, len(batch)))
        contenders, previous_tied = decision.contenders, decision.tied
    answer.trial_ids = [spec.trial_id for c, group in configs.items() for spec in group[:scheduled[c]]]
    return answer
