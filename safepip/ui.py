"""What a person sees: messages on stderr, progress bars, the final summary.

The library reports through this object (a delegate whose methods the quiet mode turns
into no-ops); ``rich`` is imported only when a progress bar is really drawn.
"""

from __future__ import annotations

import sys
import threading

# typing is not imported at run time (4 ms of a lock answered from its memo)
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, TextIO


class UI:
    """Messages and progress; ``verbosity`` -1 quiet, 0 normal, 1+ verbose."""

    def __init__(self, verbosity: int = 0, stream: TextIO | None = None,
                 progress: bool | None = None) -> None:
        self.verbosity = verbosity
        self.stream = stream or sys.stderr
        isatty = getattr(self.stream, "isatty", lambda: False)()
        self.progress_enabled = isatty and verbosity >= 0 if progress is None else progress
        self._lock = threading.Lock()

    def info(self, msg: str) -> None:
        if self.verbosity >= 0:
            self._write(msg)

    def detail(self, msg: str) -> None:
        if self.verbosity >= 1:
            self._write(msg)

    def warn(self, msg: str) -> None:
        if self.verbosity >= -1:
            self._write(f"warning: {msg}")

    def _write(self, msg: str) -> None:
        with self._lock:
            print(msg, file=self.stream, flush=True)

    def download_progress(self) -> DownloadProgress:
        return DownloadProgress(self) if self.progress_enabled else DownloadProgress(None)


class DownloadProgress:
    """A progress bar per download (rich), or nothing."""

    def __init__(self, ui: UI | None) -> None:
        self._progress: Any = None
        self._tasks: dict[str, Any] = {}
        self._lock = threading.Lock()
        if ui is not None:
            from rich.console import Console
            from rich.progress import (
                BarColumn,
                DownloadColumn,
                Progress,
                ProgressColumn,
                SpinnerColumn,
                TextColumn,
                TransferSpeedColumn,
            )
            from rich.text import Text

            class OnlyFor(ProgressColumn):
                """Show a column for download tasks, or only for status tasks."""

                def __init__(self, inner: ProgressColumn, status: bool = False) -> None:
                    super().__init__()
                    self.inner, self.status = inner, status

                def render(self, task: Any) -> Any:
                    if bool(task.fields.get("status")) != self.status:
                        return Text("")
                    return self.inner.render(task)

            self._progress = Progress(
                OnlyFor(SpinnerColumn(), status=True), TextColumn("{task.description}"),
                OnlyFor(BarColumn()), OnlyFor(DownloadColumn()), OnlyFor(TransferSpeedColumn()),
                console=Console(file=ui.stream), transient=True,
            )

    def __enter__(self) -> DownloadProgress:
        if self._progress is not None:
            self._progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._progress is not None:
            self._progress.stop()

    def status(self, text: str) -> None:
        """One line that says what is going on (e.g. resolution), replaced each time."""
        if self._progress is None:
            return
        with self._lock:
            task = self._tasks.get("__status__")
            if task is None:
                self._tasks["__status__"] = self._progress.add_task(text, total=None,
                                                                    status=True)
            else:
                self._progress.update(task, description=text)

    def clear_status(self) -> None:
        if self._progress is not None and "__status__" in self._tasks:
            with self._lock:
                self._progress.remove_task(self._tasks.pop("__status__"))

    def start(self, key: str, name: str, total: int | None) -> None:
        if self._progress is not None:
            with self._lock:
                self._tasks[key] = self._progress.add_task(name, total=total)

    def advance(self, key: str, n: int) -> None:
        if self._progress is not None and key in self._tasks:
            self._progress.advance(self._tasks[key], n)

    def finish(self, key: str) -> None:
        if self._progress is not None and key in self._tasks:
            with self._lock:
                self._progress.remove_task(self._tasks.pop(key))
