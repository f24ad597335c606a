"""How a run reports progress: tqdm bars on a terminal, plain lines otherwise, or nothing."""

from __future__ import annotations

import sys
from typing import Iterable, Iterator, TypeVar

from tqdm import tqdm

T = TypeVar("T")


class Progress:
    """``mode`` is ``"bar"`` (tqdm), ``"log"`` (one line per epoch) or ``"quiet"``."""

    def __init__(self, mode: str | None = None, stream=None):
        self.stream = stream or sys.stderr
        if mode is None:
            mode = "bar" if getattr(self.stream, "isatty", lambda: False)() else "log"
        self.mode = mode
        self._epoch_bar: tqdm | None = None

    def epochs(self, start: int, total: int) -> Iterator[int]:
        if self.mode != "bar":
            yield from range(start, total)
            return
        self._epoch_bar = tqdm(range(start, total), total=total, initial=start, desc="epochs",
                               unit="epoch", file=self.stream, dynamic_ncols=True)
        try:
            yield from self._epoch_bar
        finally:
            self._epoch_bar.close()
            self._epoch_bar = None

    def batches(self, iterable: Iterable[T], total: int, initial: int, epoch: int) -> Iterable[T]:
        if self.mode != "bar":
            return iterable
        return tqdm(iterable, total=total, initial=initial, desc=f"epoch {epoch + 1}", unit="batch",
                    leave=False, file=self.stream, dynamic_ncols=True, mininterval=0.2)

    def epoch_end(self, text: str, postfix: dict | None = None) -> None:
        if self.mode == "log":
            print(text, file=self.stream, flush=True)
        elif self.mode == "bar":  # the line stays above the bars: the history remains on screen
            tqdm.write(text, file=self.stream)
            if self._epoch_bar is not None and postfix:
                self._epoch_bar.set_postfix(postfix, refresh=True)

    def message(self, text: str) -> None:
        if self.mode != "quiet":
            if self.mode == "bar":
                tqdm.write(text, file=self.stream)
            else:
                print(text, file=self.stream, flush=True)
