"""Progress reporting: rich progress bars in the CLI, silence in the library by default."""

from __future__ import annotations

import time
from contextlib import contextmanager
from typing import Any, Iterator


class Task:
    """One progress bar; ``advance`` moves it, ``note`` updates its extra text."""

    def advance(self, n: float = 1, **fields: Any) -> None:  # pragma: no cover - trivial
        pass

    def note(self, text: str) -> None:
        pass


class Reporter:
    """Silent reporter (the library default)."""

    @contextmanager
    def task(self, description: str, total: float | None, unit: str = "") -> Iterator[Task]:
        yield Task()

    def log(self, message: str) -> None:
        pass


class Prefixed(Reporter):
    """Another reporter's tasks, their descriptions prefixed (``"wavlm_base x iemocap: "``) so a
    log names what each bar belongs to."""

    def __init__(self, inner: Reporter, prefix: str):
        self.inner, self.prefix = inner, prefix

    @contextmanager
    def task(self, description: str, total: float | None, unit: str = "") -> Iterator[Task]:
        with self.inner.task(self.prefix + description, total, unit) as task:
            yield task

    def log(self, message: str) -> None:
        self.inner.log(message)


class _RichTask(Task):
    def __init__(self, progress, task_id, unit: str):
        self.progress, self.task_id, self.unit = progress, task_id, unit
        self.start = time.perf_counter()
        self.fields: dict[str, float] = {}

    def advance(self, n: float = 1, **fields: Any) -> None:
        for k, v in fields.items():
            self.fields[k] = self.fields.get(k, 0.0) + float(v)
        elapsed = max(time.perf_counter() - self.start, 1e-9)
        rates = []
        if self.unit:
            done = self.progress.tasks[self._pos()].completed + n
            rates.append(f"{done / elapsed:.1f} {self.unit}/s")
        if "audio_s" in self.fields:
            rates.append(f"{self.fields['audio_s'] / elapsed:.1f} audio-s/s")
        if "gflop" in self.fields:
            rates.append(f"{self.fields['gflop'] / elapsed:.1f} GFLOP/s")
        self.progress.update(self.task_id, advance=n, rates="  ".join(rates))

    def note(self, text: str) -> None:
        from rich.markup import escape

        self.progress.update(self.task_id, rates=escape(text))

    def _pos(self) -> int:
        for i, t in enumerate(self.progress.tasks):
            if t.id == self.task_id:
                return i
        return 0


class _LineTask(Task):
    """A task on a console that is not a terminal (a batch job's log): whole lines, never cut
    to the console's width, one when it starts, one every ``every`` seconds and one at the
    end."""

    def __init__(self, log, description: str, total: float | None, unit: str,
                 every: float):
        self.log, self.description, self.total, self.unit = log, description, total, unit
        self.every = every
        self.start = self.last = time.perf_counter()
        self.done = 0.0
        self.fields: dict[str, float] = {}
        self.text = ""

    def advance(self, n: float = 1, **fields: Any) -> None:
        self.done += n
        for k, v in fields.items():
            self.fields[k] = self.fields.get(k, 0.0) + float(v)
        now = time.perf_counter()
        if now - self.last >= self.every:
            self.last = now
            self.log(self.line())

    def note(self, text: str) -> None:
        self.text = text

    def line(self, final: bool = False) -> str:
        elapsed = max(time.perf_counter() - self.start, 1e-9)
        count = f"{self.done:g}" + (f"/{self.total:g}" if self.total is not None else "")
        parts = [f"{self.description}: {'finished, ' if final else ''}{count}"
                 f"{' ' + self.unit if self.unit else ''}", f"{elapsed:.1f} s"]
        if "audio_s" in self.fields:
            parts.append(f"{self.fields['audio_s'] / elapsed:.1f} audio-s/s")
        if self.text:
            parts.append(self.text)
        return ", ".join(parts)


class RichReporter(Reporter):
    """Progress bars on stderr (``rich``); on a console that is not a terminal (a batch job),
    whole progress lines instead: one when a task starts, one a minute, one when it ends."""

    LINE_EVERY = 60.0  # seconds between progress lines off a terminal

    def __init__(self, console=None):
        from rich.console import Console

        self.console = console or Console(stderr=True)

    @contextmanager
    def task(self, description: str, total: float | None, unit: str = "") -> Iterator[Task]:
        if not self.console.is_terminal:
            self.log(f"{description} ...")
            line = _LineTask(self.log, description, total, unit, self.LINE_EVERY)
            yield line
            self.log(line.line(final=True))
            return
        from rich.markup import escape
        from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn,
                                   TimeElapsedColumn, TimeRemainingColumn)

        columns = [TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                   TimeElapsedColumn(), TextColumn("eta"), TimeRemainingColumn(),
                   TextColumn("{task.fields[rates]}")]
        with Progress(*columns, console=self.console, transient=False) as progress:
            # the description holds names and paths: shown as written, never as markup
            task_id = progress.add_task(escape(description), total=total, rates="")
            yield _RichTask(progress, task_id, unit)

    def log(self, message: str) -> None:
        self.console.print(message, markup=False, highlight=False, soft_wrap=True)
