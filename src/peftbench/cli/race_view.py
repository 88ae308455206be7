"""The races a store holds (store/races.py), as tables: per configuration its seeds, P(best) and share
tied after the race's last round, and the round it was raced out in."""

from __future__ import annotations

import math

import pandas as pd
from rich.markup import escape
from rich.table import Table


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
    return (f"race {race['race_id'].iloc[0]} · study {race['study'].iloc[0]} · {settings['weights_label']} · "
            f"confidence {settings['confidence']:g} · max seeds {settings['max_seeds']}: {ended}; trials "
            f"{' + '.join(map(str, trials))} = {sum(trials)} (a fixed --seeds {settings['max_seeds']} study: "
            f"{fixed})")


def _status(config: str, race: pd.DataFrame, last: pd.DataFrame) -> str:
    row = last[last["config"] == config].iloc[0]
    if row["status"] in ("in", "back in"):
        if row["config"] == last["leader"].iloc[0]:
            return "leader"
        return "in, tied" if config in last["tied"].iloc[0] else "in"
    left = race[(race["config"] == config) & race["status"].isin(["raced out", "no result", "collapsed"])]
    if not len(left):
        return "raced out"
    last_left = left.sort_values("round").iloc[-1]
    why = {"no result": " (no finished trial)", "collapsed": " (collapsed)"}.get(last_left["status"], "")
    return f"raced out in round {int(last_left['round'])}{why}"


def race_tables(frame: pd.DataFrame) -> list[Table]:
    """One table per race in `frame` (races_frame's rows), in the order they were run."""
    tables = []
    for _, race in frame.groupby("race_id", sort=False):
        last = race[race["round"] == race["round"].max()]
        table = Table(title=escape(race_title(race)), title_justify="left")
        for col in ("configuration", "seeds", "score", "P(best)", "≥ leader", "status"):
            table.add_column(col, justify="left" if col in ("configuration", "status") else "right")
        for _, row in last.sort_values("score", ascending=False, na_position="last").iterrows():
            table.add_row(escape(str(row["label"])), str(int(row["seeds"])), _num(row["score"], ".3f"),
                          _num(row["p_best"]), _num(row["share_tied"]), _status(row["config"], race, last))
        tables.append(table)
    return tables
