"""Frames in RAM while they fit a memory budget, else in an on-disk memory-mapped .npy file.

A memmapped array is paged in by the OS as the loader reads it, so a data set larger than
memory trains without a whole copy in RAM. `Frames` re-opens the file lazily in each process,
so it works in DataLoader workers (fork or spawn) without pickling the data.
"""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np


class Frames:
    """An [N, ...] float32 array, in RAM or memory-mapped from ``path``; write it once, then read."""

    def __init__(self, shape: tuple[int, ...], budget_bytes: int, path, dtype=np.float32):
        self.shape, self.dtype = tuple(int(s) for s in shape), np.dtype(dtype)
        self.nbytes = int(np.prod(self.shape)) * self.dtype.itemsize
        self.path = Path(path) if self.nbytes > budget_bytes else None
        if self.path is None:
            self._array = np.empty(self.shape, self.dtype)
        else:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._array = np.lib.format.open_memmap(self.path, mode="w+", dtype=self.dtype, shape=self.shape)

    @property
    def on_disk(self) -> bool:
        return self.path is not None

    @property
    def array(self) -> np.ndarray:
        if self._array is None:
            self._array = np.load(self.path, mmap_mode="r")
        return self._array

    def finish(self) -> None:
        """Flush a memmap after writing and reopen it read-only (the view workers get)."""
        if self.on_disk:
            self._array.flush()
            self._array = None

    def __len__(self) -> int:
        return self.shape[0]

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        if self.on_disk:
            state["_array"] = None      # each worker maps the file itself
        return state


def loader_frames_per_s(loader, frames_in, max_batches: int | None = None) -> tuple[float, int]:
    """Iterate ``loader`` and return (frames/s, frames); ``frames_in(batch)`` counts a batch's frames."""
    t0, frames = time.perf_counter(), 0
    for i, batch in enumerate(loader):
        frames += frames_in(batch)
        if max_batches is not None and i + 1 >= max_batches:
            break
    return frames / max(time.perf_counter() - t0, 1e-9), frames
