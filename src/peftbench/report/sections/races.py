"""Races (`--race`, store/races.py): per race, how it ended and what it cost, and per configuration its
seeds, score, P(best) and share at least as high as the leader after the last round, and when it left.

The frame comes from the store through the caller (the report never opens the store itself)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import pandas as pd

from peftbench.report.page import Page, esc, table_html

COLUMNS = ["configuration", "seeds", "score", "P(best)", "≥ leader", "status"]


@dataclass(frozen=True)
class RaceSummary:
    title: str
    rows: list[list[str]]  # COLUMNS, best score first


def _num(value, spec: str = ".2f") -> str:
    return "-" if value is None or (isinstance(value, float) and math.isnan(value)) else format(value, spec)


def race_title(race: pd.DataFrame) -> str:
    """One line: the race's settings, how it ended and what it cost."""
    settings = race["settings"].iloc[0]
    rounds = race.drop_duplicates("round").sort_values("round")
    last = rounds.iloc[-1]
    trials = [int(t) for t in rounds["trials"]]
    ended = (f"stopped after round {int(last['round'])}: {last['stop']}" if isinstance(last["stop"], str)
             else f"in progress after round {int(last['round'])}")
    fixed = int(settings["configurations"]) * int(settings["max_seeds"])
    spent = " + ".join(map(str, trials)) + (f" = {sum(trials)}" if len(trials) > 1 else "")
    return (f"race {race['race_id'].iloc[0]} · study {race['study'].iloc[0]} · {settings['weights_label']} · "
            f"confidence {settings['confidence']:g} · max seeds {settings['max_seeds']}: {ended}; trials "
            f"{spent} (a fixed --seeds {settings['max_seeds']} study: {fixed})")


def _status(config: str, race: pd.DataFrame, last: pd.DataFrame) -> str:
    row = last[last["config"] == config].iloc[0]
    if row["status"] in ("in", "back in"):
        if config == last["leader"].iloc[0]:
            return "leader"
        return "in, tied" if config in last["tied"].iloc[0] else "in"
    left = race[(race["config"] == config) & race["status"].isin(["raced out", "no result", "collapsed"])]
    if not len(left):
        return "raced out"
    when = left.sort_values("round").iloc[-1]
    why = {"no result": " (no finished trial)", "collapsed": " (collapsed)"}.get(when["status"], "")
    return f"raced out in round {int(when['round'])}{why}"


def race_summaries(frame: pd.DataFrame) -> list[RaceSummary]:
    """One summary per race in `frame` (store.races.races_frame's rows), in the order they were run."""
    out = []
    for _, race in frame.groupby("race_id", sort=False):
        last = race[race["round"] == race["round"].max()]
        rows = [[str(row["label"]), str(int(row["seeds"])), _num(row["score"], ".3f"), _num(row["p_best"]),
                 _num(row["share_tied"]), _status(row["config"], race, last)]
                for _, row in last.sort_values("score", ascending=False, na_position="last").iterrows()]
        out.append(RaceSummary(race_title(race), rows))
    return out


def races_section(page: Page, frame: pd.DataFrame | None) -> None:
    """Nothing when the store holds no race."""
    if frame is None or frame.empty:
        return
    page.add("<h2>Races</h2><p class='muted'>Each race ran seed 0 of every configuration, then one more seed "
             "per round for those still in contention on validation (P(best) and the share of resamples "
             "scoring at least as high as the leader, by a bootstrap over seeds and rows). A configuration "
             "raced out keeps its trials and figures in the store.</p>")
    for summary in race_summaries(frame):
        page.add(f"<h3>{esc(summary.title)}</h3>" + table_html(COLUMNS, summary.rows))
