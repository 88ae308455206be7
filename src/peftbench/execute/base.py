"""The executor contract: run specs, report events, yield one outcome per spec (never raise for a trial)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Iterator, Protocol

from peftbench.config.spec import TrialSpec
from peftbench.data.prepared import PreparedData


@dataclass
class TrialOutcome:
    spec: TrialSpec
    status: str  # ok | failed | cancelled
    record: dict[str, Any]
    error: str | None = None


@dataclass
class Event:
    """Something the driver may show: a trial started, progressed or ended."""

    trial_id: str
    kind: str  # started | progress | ended
    payload: dict[str, Any]


EventSink = Callable[[Event], None]


class Executor(Protocol):
    def run(self, specs: list[TrialSpec], data: PreparedData, on_event: EventSink,
            on_start: Callable[[TrialSpec], None]) -> Iterator[TrialOutcome]:
        ...
