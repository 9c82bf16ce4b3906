"""A rich progress bar on stderr for training, used when stderr is a terminal."""

from __future__ import annotations

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from mrcnf_cli.training import LoggingReporter


class RichReporter:
    """Draw one progress bar per level with its step, BPD, NFE and seconds per step."""

    def __init__(self):
        self.progress = Progress(
            TextColumn("level {task.fields[level]}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[bpd]} bits/dim  NFE {task.fields[nfe]}  {task.fields[speed]} s/step"),
            TimeElapsedColumn(),
            console=Console(stderr=True),
        )
        self.task = None
        self.validation_log = LoggingReporter()

    def start(self, level: str, total_steps: int | None, first_step: int) -> None:
        self.progress.start()
        self.task = self.progress.add_task(
            "train", total=total_steps, completed=first_step, level=level, bpd="-", nfe="-", speed="-"
        )

    def step(self, metrics: dict) -> None:
        self.progress.update(
            self.task,
            completed=metrics["step"],
            bpd=f"{metrics['bpd']:.4f}",
            nfe=metrics["nfe"],
            speed=f"{metrics['seconds_per_step']:.2f}",
        )

    def validation(self, metrics: dict) -> None:
        self.validation_log.validation(metrics)

    def finish(self) -> None:
        self.progress.stop()
