"""Racing the configurations of a study: after each round of seeds, which are still contenders for the
best weighted score, which leave the race, and whether the answer is settled. Pure: stored records in, a
decision out; the loop that runs the rounds is studies/race.py.

Every figure read here is validation-side, as in any ranking (recommend.py): the weighted score, P(best)
and the tied set come from the paired bootstrap of confidence.py, hierarchical here: seeds are resampled,
then rows, and a configuration with one seed gets seed noise (seed_noise.py), never none. The bootstrap's
seed is fixed, so a decision is a function of the stored trials.

After round r (every contender has r seeds):
- a contender whose share of resamples scoring at least as high as the leader falls below OUT_SHARE leaves
  the race (kept in the store with its figures; the race's own table says it was raced out, and when);
- one raced out earlier whose share has risen to the tied level again (TIE_SHARE) comes back in;
- the race stops when the leader's P(best) reaches the confidence asked for ("confident"), when the tied
  set is the same as after the round before ("tied set stable"), when one contender is left, or when the
  contenders have max_seeds seeds ("max seeds"). Otherwise each contender runs one more seed, the most
  uncertain first (the widest spread of its weighted score over the resamples).
The thresholds are choices made before any run; none reads the test split.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace

import numpy as np
import pandas as pd

from peftbench.analysis.confidence import TIE_SHARE
from peftbench.analysis.recommend import Prepared, Recommendation, prepare, rank
from peftbench.analysis.scores import DIMENSION_NAMES, counted_dimensions
from peftbench.errors import PeftbenchError

OUT_SHARE = 0.01  # scores at least as high as the leader in under 1% of the resamples: out of the race
# A race decides on shares near its thresholds (1%, 5%) round after round: with the recommender's 500 resamples
# a share's Monte Carlo error near 5% is +-1 point, enough to move a configuration in and out of the tied set
# between rounds. 2,000 halve it (+-0.5 point) for a few seconds more per round.
RACE_RESAMPLES = 2000
DEFAULT_CONFIDENCE = 0.9
DEFAULT_MAX_SEEDS = 5
CONFIDENT, STABLE, ALONE, MAX_SEEDS = "confident", "tied set stable", "one contender left", "max seeds"
NOTHING = "no result"
STOP_TEXT = {NOTHING: "nothing finished to rank",
             CONFIDENT: "the leader's P(best) reached the confidence asked for",
             STABLE: "the tied set was the same in two rounds running",
             ALONE: "every other configuration was raced out",
             MAX_SEEDS: "the contenders reached --max-seeds"}
# The rule in one paragraph, for `peftbench dimensions`.
RACE_RULE = ("round 1 runs seed 0 of every configuration; after each round the same paired bootstrap, "
             "hierarchical (seeds resampled, then rows; a one-seed configuration gets seed noise: the between-seed "
             "SD pooled over configurations with 2+ seeds and a stated prior, never zero), gives P(best) and the "
             f"share of resamples at least as high as the leader; under {OUT_SHARE:.0%} leaves the race, back at "
             f"{TIE_SHARE:.0%} comes back; the others run one more seed, most uncertain first; it stops when the "
             "leader's P(best) >= --confidence, the tied set holds two rounds running, one is left, or at "
             "--max-seeds. Validation-side figures only")
IN, OUT, OUT_EARLIER, BACK = "in", "raced out", "raced out earlier", "back in"
NO_RESULT, COLLAPSED = "no result", "collapsed"  # no finished trial; every finished trial collapsed (left out)


@dataclass(frozen=True)
class RaceRule:
    """What a race decides with: the confidence that stops it, the seeds it may spend per configuration,
    the share below which a contender leaves."""

    confidence: float = DEFAULT_CONFIDENCE
    max_seeds: int = DEFAULT_MAX_SEEDS
    out_share: float = OUT_SHARE
    include_collapsed: bool = False  # rank collapsed trials too (as recommend --include-collapsed)

    def validate(self) -> None:
        if not (isinstance(self.confidence, (int, float)) and 0.5 < self.confidence < 1):
            raise PeftbenchError(f"--confidence must be between 0.5 and 1 (both excluded), got {self.confidence}")
        if isinstance(self.max_seeds, bool) or not isinstance(self.max_seeds, int) or self.max_seeds < 2:
            raise PeftbenchError(f"--max-seeds must be a whole number of at least 2, got {self.max_seeds}")


@dataclass(frozen=True)
class Standing:
    """One configuration after a round."""

    config: str  # the race's key for it (studies/race.py: its trials' id without the seed)
    label: str
    seeds: int  # finished trials counted
    score: float
    p_best: float
    share_tied: float  # share of resamples scoring at least as high as the leader
    spread: float  # SD of its weighted score over the resamples
    status: str  # IN, OUT (this round), OUT_EARLIER, BACK, NO_RESULT


@dataclass(frozen=True)
class Decision:
    round: int
    leader: str | None  # config key
    p_best: float
    tied: tuple[str, ...]  # config keys, the leader first
    standings: tuple[Standing, ...]
    stop: str | None
    notes: tuple[str, ...] = field(default_factory=tuple)

    @property
    def contenders(self) -> list[str]:
        """Configurations that run the next round, the most uncertain first."""
        running = [s for s in self.standings if s.status in (IN, BACK)]
        return [s.config for s in sorted(running, key=lambda s: (-_finite(s.spread), s.label))]

    @property
    def out_now(self) -> list[str]:
        return [s.config for s in self.standings if s.status in (OUT, NO_RESULT, COLLAPSED)]

    def label(self, config: str) -> str:
        return next((s.label for s in self.standings if s.config == config), config)


def _finite(x: float) -> float:
    return float(x) if np.isfinite(x) else 0.0


@dataclass
class Assessment:
    """A hierarchical ranking of some trials: the recommendation and each candidate's score spread."""

    rec: Recommendation
    prep: Prepared
    spread: pd.Series  # per label


def assess(records: pd.DataFrame, weights: Mapping[str, float], study: str | None = None,
           include_collapsed: bool = False) -> Assessment:
    """Rank `records` (one setup) for `weights` with the hierarchical bootstrap; the fixed-seed study and
    every round of a race are read through this same function. The trials are put in a fixed order first
    (configuration, seed), so the answer does not depend on the order they ran in (parallel rounds)."""
    keys = [c for c in ("config", "method") if c in records][:1] + [c for c in ("seed",) if c in records]
    records = records.sort_values(keys, kind="stable") if keys else records
    prep = prepare(records, study, include_collapsed=include_collapsed, hierarchical=True,
                   resamples=RACE_RESAMPLES)
    rec = rank(prep, weights)
    spread = pd.Series(np.nan, index=rec.ranking.index)
    counted = counted_dimensions(prep.dims.scores.loc[list(rec.ranking.index)], weights)
    if prep.boot is not None and counted:
        methods = list(prep.dims.means.index)
        rows = [methods.index(m) for m in rec.ranking.index]
        cols = [DIMENSION_NAMES.index(d) for d in counted]
        w = np.array([float(weights[d]) for d in counted])
        scores = prep.boot[:, rows][:, :, cols] @ (w / w.sum())
        spread = pd.Series(scores.std(axis=0), index=rec.ranking.index)
    return Assessment(rec, prep, spread)


def decide(records: pd.DataFrame, weights: Mapping[str, float], study: str | None, round_no: int,
           contenders: Sequence[str], names: Mapping[str, str], scheduled: Mapping[str, int],
           previous_tied: Sequence[str] | None, rule: RaceRule) -> Decision:
    """The decision after round `round_no`. `records`: the race's finished trials so far, with the column
    `race_config` (the configuration's key); `contenders`: the keys still in before this decision;
    `names`: key -> a name for every configuration of the race (for one that has no finished trial);
    `scheduled`: key -> the seeds the race has run of it so far (finished or not)."""
    seeds = records.groupby("race_config").size() if len(records) else pd.Series(dtype=int)
    if records.empty:
        return _nothing(round_no, contenders, names, seeds, "no trial of the race finished")
    try:
        result = assess(records, weights, study, rule.include_collapsed)
    except PeftbenchError as exc:  # e.g. every finished trial collapsed: nothing left to rank
        return _nothing(round_no, contenders, names, seeds, str(exc))
    ranking = result.rec.ranking
    label_of = dict(zip(records["race_config"], records["method"].astype(str)))
    config_of = {label: config for config, label in label_of.items()}
    has_p = "p_best" in ranking
    standings, notes = [], []
    for config in names:
        label = label_of.get(config, names[config])
        if label not in ranking.index:  # no finished trial, or left out of every ranking as collapsed
            status = (COLLAPSED if seeds.get(config, 0) else NO_RESULT) if config in contenders else OUT_EARLIER
            standings.append(Standing(config, label, int(seeds.get(config, 0)), np.nan, np.nan, np.nan, np.nan,
                                      status))
            continue
        row = ranking.loc[label]
        share = float(row["share_tied"]) if has_p else 1.0
        if config in contenders:
            status = IN if share >= rule.out_share or label == result.rec.top else OUT
        else:
            status = BACK if share >= TIE_SHARE else OUT_EARLIER
        standings.append(Standing(config, label, int(seeds.get(config, 0)), float(row["score"]),
                                  float(row["p_best"]) if has_p else np.nan, share,
                                  float(result.spread.get(label, np.nan)), status))
    if result.prep.seed_noise is not None:
        notes.append(result.prep.seed_noise.text())
    if not has_p:
        notes.append("no per-row validation predictions: no P(best); every configuration stays in")
        standings = [replace(s, status=IN) if s.status == OUT else s for s in standings]
    leader = config_of.get(result.rec.top) if result.rec.top is not None else None
    tied = tuple(config_of[m] for m in result.rec.tied if m in config_of)
    p_best = float(ranking.loc[result.rec.top, "p_best"]) if has_p and leader else np.nan
    decision = Decision(round_no, leader, p_best, tied, tuple(standings), None, tuple(notes))
    return replace(decision, stop=_stop(decision, scheduled, previous_tied, rule))


def _nothing(round_no: int, contenders: Sequence[str], names: Mapping[str, str], seeds: pd.Series,
             why: str) -> Decision:
    """Nothing to rank: every contender is out (collapsed where its finished trials all collapsed)."""
    standings = tuple(Standing(c, names[c], int(seeds.get(c, 0)), np.nan, np.nan, np.nan, np.nan,
                               (COLLAPSED if seeds.get(c, 0) else NO_RESULT) if c in contenders else OUT_EARLIER)
                      for c in names)
    return Decision(round_no, None, np.nan, (), standings, NOTHING, (why,))


def _stop(decision: Decision, scheduled: Mapping[str, int], previous_tied: Sequence[str] | None,
          rule: RaceRule) -> str | None:
    """Why the race stops after this decision, or None when it goes on."""
    if decision.leader is not None and np.isfinite(decision.p_best) and decision.p_best >= rule.confidence:
        return CONFIDENT
    if previous_tied is not None and set(previous_tied) == set(decision.tied):
        return STABLE
    if len(decision.contenders) <= 1:
        return ALONE
    if all(scheduled.get(c, 0) >= rule.max_seeds for c in decision.contenders):
        return MAX_SEEDS
    return None
