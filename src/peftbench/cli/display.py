"""Rich progress for a study: trial k of N with ETA, and the steps of each running trial."""

from __future__ import annotations

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from peftbench.execute.base import Event


class StudyDisplay:
    def __init__(self, console: Console | None = None):
        self.console = console or Console(stderr=True)
        self.progress = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                 TimeElapsedColumn(), TextColumn("eta"), TimeRemainingColumn(),
                                 console=self.console, transient=False)
        self.overall = None
        self.tasks: dict[str, int] = {}
        self.names: dict[str, str] = {}

    def begin(self, total: int, skipped: int) -> None:
        self.progress.start()
        label = "trials" + (f" ({skipped} already done)" if skipped else "")
        self.overall = self.progress.add_task(label, total=total, completed=skipped)

    def on_event(self, event: Event) -> None:
        tid = event.trial_id
        if event.kind == "started":
            self.names[tid] = event.payload.get("method", tid)
            self.tasks[tid] = self.progress.add_task(f"  {self.names[tid]}: starting", total=None)
        elif event.kind == "progress" and tid in self.tasks:
            p = event.payload
            if p.get("phase") == "train" and p.get("total"):
                loss = f" loss {p['loss']:.3f}" if p.get("loss") is not None else ""
                self.progress.update(self.tasks[tid], total=p["total"], completed=p["step"],
                                     description=f"  {self.names[tid]}: train{loss}")
            else:
                self.progress.update(self.tasks[tid], description=f"  {self.names[tid]}: {p.get('phase')}")
        elif event.kind == "ended":
            if tid in self.tasks:
                self.progress.remove_task(self.tasks.pop(tid))
            status = event.payload.get("status")
            if status != "ok":
                self.console.print(f"[red]{self.names.get(tid, tid)}: {status}[/red]")
            self.progress.advance(self.overall)

    def end(self, summary) -> None:
        self.progress.stop()
        pruned = f", {summary.pruned} pruned by tuning" if getattr(summary, "pruned", 0) else ""
        self.console.print(f"{summary.ok} trials ok{pruned}, {summary.failed} failed, {summary.cancelled} "
                           f"cancelled, {summary.skipped} already in the store")
