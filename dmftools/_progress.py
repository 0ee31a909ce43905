"""Progress reporting: tqdm on a terminal when installed, plain stage lines otherwise.

``progress=None`` (the default everywhere) shows progress only when stderr is a terminal;
``True`` forces it, ``False`` silences it. Without the optional ``tqdm`` (extra
``progress``) a terminal gets one line per stage on stderr instead of a bar.
"""

from __future__ import annotations

import sys

__all__ = ["ProgressBar", "progress_iter"]


def _wanted(progress) -> bool:
    if progress not in (None, True, False):
        raise TypeError(f"progress: expected None, True or False, got {progress!r}")
    return bool(progress) or (progress is None and sys.stderr.isatty())


class ProgressBar:
    """``update(n, stage)`` / ``close()``; a context manager."""

    def __init__(self, total: int, desc: str, unit: str = "step", progress=None):
        self._bar = None
        self._lines = False
        self.desc = desc
        if not _wanted(progress):
            return
        try:
            from tqdm.auto import tqdm
        except ImportError:
            self._lines = True
            return
        self._bar = tqdm(total=total, desc=desc, unit=unit)

    def update(self, n: int = 1, stage: str | None = None):
        if self._bar is not None:
            if stage:
                self._bar.set_postfix_str(stage, refresh=False)
            self._bar.update(n)
        elif self._lines and stage:
            print(f"{self.desc}: {stage}", file=sys.stderr, flush=True)

    def close(self):
        if self._bar is not None:
            self._bar.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def progress_iter(iterable, total: int, desc: str, unit: str, progress=None):
    """Iterate with a bar (see :class:`ProgressBar`)."""
    with ProgressBar(total, desc, unit, progress) as bar:
        for item in iterable:
            yield item
            bar.update(1)
