"""Tactile force data: sequences -> preprocessed frames (RAM or memmap) -> random clips for training.

A sequence is anything with ``.images`` (uint8 N x H x W x C array or list of H x W x C
arrays) and ``.forces`` (N x 3, newtons, sensor frame), e.g. tacforce_ros.bags sequences.
Each sequence's no-contact reference is the mean of its frames before the first contact
(`tacforce_ros.data.tactile_pairs.no_contact_reference`), as the node takes its first frames.
"""
from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import Dataset
from tqdm import tqdm

from tacforce_ros.data.tactile_pairs import no_contact_reference
from tacforce_ros.perception.force import channel_means

from ...core.cache import Frames
from ...preprocess import ImagePreprocess
from .augment import Augment


def as_frames(images) -> np.ndarray:
    """Return uint8 [N, H, W, C] from an array or a list of H x W (x C) frames."""
    frames = np.asarray(images) if isinstance(images, np.ndarray) else np.stack(list(images))
    if frames.ndim == 3:
        frames = frames[..., None]
    if frames.ndim != 4 or frames.dtype != np.uint8:
        raise ValueError(f"expected uint8 frames N x H x W x C, got {frames.dtype} {frames.shape}")
    return frames


def infer_encoding(channels: int) -> str:
    """Return mono8 for 1 channel, rgb8 for 3 (pass the encoding explicitly for bgr8 data)."""
    if channels not in (1, 3):
        raise ValueError(f"images have {channels} channels; expected 1 (mono8) or 3 (rgb8/bgr8)")
    return "mono8" if channels == 1 else "rgb8"


def split_sequences(count: int, val_fraction: float, seed: int) -> tuple[list[int], list[int]]:
    """Hold out whole sequences: frames of one episode are too alike to test on each other."""
    if count < 2:
        raise ValueError(f"need at least 2 sequences to hold one out for validation, got {count} "
                         "(record more episodes, pass an episode topic, or give validation bags)")
    n_val = min(count - 1, max(1, round(count * val_fraction)))
    order = torch.randperm(count, generator=torch.Generator().manual_seed(seed)).tolist()
    return sorted(order[n_val:]), sorted(order[:n_val])


def force_range(forces: list[np.ndarray], margin: float, min_span: float) -> tuple[np.ndarray, np.ndarray]:
    """Return per-axis min/max of the training forces (always including 0 N), widened by a margin."""
    allf = np.concatenate(forces + [np.zeros((1, 3))])
    lo, hi = allf.min(0), allf.max(0)
    pad = margin * (hi - lo) + np.maximum(0.0, min_span - (hi - lo)) / 2
    return (lo - pad).astype(np.float32), (hi + pad).astype(np.float32)


class SequenceFrames:
    """Every frame of some sequences after ``preprocess`` (float32 [C, S, S]) in one `Frames` store, with
    forces, each sequence's preprocessed no-contact reference, and the range of the raw frames' channel means.

    The preprocessed frames are what the graph computes, so they are cached once; above
    ``budget_bytes`` they go to a memmapped ``cache_path`` instead of RAM.
    """

    def __init__(self, sequences, preprocess: ImagePreprocess, desc: str, budget_bytes: float, cache_path,
                 chunk: int = 64):
        lengths = [len(s.images) for s in sequences]
        self.frame_shape = as_frames(sequences[0].images[:1]).shape[1:]
        side, channels = preprocess.image_size, preprocess.out_channels
        self.store = Frames((sum(lengths), channels, side, side), budget_bytes, cache_path)
        self.offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(int).tolist()
        self.forces, self.references, self.reference_frames = [], [], []
        means = []
        with torch.no_grad():
            for s, seq in enumerate(tqdm(sequences, desc=f"caching {desc} frames", unit="seq", leave=False)):
                pos = self.offsets[s]
                for i in range(0, len(seq.images), chunk):
                    frames = as_frames(seq.images[i:i + chunk])
                    if frames.shape[1:] != self.frame_shape:
                        raise ValueError(f"frames of {frames.shape[1:]} among frames of {self.frame_shape}; "
                                         "all images must have one size and encoding")
                    self.store.array[pos:pos + len(frames)] = preprocess(torch.from_numpy(frames)).numpy()
                    means += [channel_means(f) for f in frames[::10]]
                    pos += len(frames)
                forces = np.asarray(seq.forces, np.float32).reshape(-1, 3)
                if len(forces) != lengths[s]:
                    raise ValueError(f"sequence has {lengths[s]} images but {len(forces)} forces")
                if not np.isfinite(forces).all():
                    raise ValueError("sequence has non-finite forces")
                self.forces.append(torch.from_numpy(forces))
                reference, count = no_contact_reference(seq.images, forces)
                self.references.append(preprocess(torch.from_numpy(reference[None]))[0])
                self.reference_frames.append(count)
        self.store.finish()
        self.channel_means = (np.min(means, 0).tolist(), np.max(means, 0).tolist())

    @property
    def lengths(self) -> list[int]:
        return [len(f) for f in self.forces]

    def frames(self, s: int, start: int = 0, stop: int | None = None) -> torch.Tensor:
        """Return frames [start:stop] of sequence ``s`` as a tensor (a copy: the store may be a read-only memmap)."""
        a, b = self.offsets[s], self.offsets[s + 1]
        stop = b - a if stop is None else min(stop, b - a)
        return torch.from_numpy(np.array(self.store.array[a + start:a + stop]))


def clips_per_epoch(lengths: list[int], clip_length: int) -> int:
    return sum(max(1, round(n / clip_length)) for n in lengths)


class Clips(Dataset):
    """About one clip per ``clip_length`` frames of each sequence, at random starts drawn anew each epoch.

    Item: (x [L, C, S, S], reference [C, S, S], forces [L, 3], mask [L]), augmented by
    ``augment`` (one draw per clip: a clip is one sensor unit at one moment). A sequence shorter
    than a clip is padded at the end with its last frame and masked out (the GRU is causal, so
    padding is inert). Starts and augmentations depend only on (seed, epoch, item), so every rank
    and a resumed run draw the same clips.
    """

    def __init__(self, data: SequenceFrames, clip_length: int, seed: int, augment: Augment | None = None):
        self.data, self.clip_length, self.seed, self.augment = data, clip_length, seed, augment
        self.set_epoch(0)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch
        gen = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
        self.clips = []
        for s, n in enumerate(self.data.lengths):
            starts = torch.randint(0, max(1, n - self.clip_length + 1), (max(1, round(n / self.clip_length)),),
                                   generator=gen)
            self.clips += [(s, int(i)) for i in starts]

    def __len__(self) -> int:
        return len(self.clips)

    def __getitem__(self, i: int):
        s, start = self.clips[i]
        frames = self.data.frames(s, start, start + self.clip_length)
        forces = self.data.forces[s][start:start + self.clip_length]
        n, pad = len(frames), self.clip_length - len(frames)
        if pad:
            frames = torch.cat([frames, frames[-1:].expand(pad, -1, -1, -1)])
            forces = torch.cat([forces, forces[-1:].expand(pad, -1)])
        reference = self.data.references[s]
        if self.augment is not None:
            gen = torch.Generator().manual_seed((self.seed * 1_000_003 + self.epoch) * 1_000_033 + i)
            frames, reference, forces = self.augment(frames, reference, forces, gen)
        return frames, reference, forces, (torch.arange(self.clip_length) < n).float()
