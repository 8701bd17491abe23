"""Tactile force training data loader: frames/s from the in-RAM frame store vs the on-disk memmap cache.

Synthetic marker sequences are preprocessed once into each store, then clips are read through
a DataLoader (0 and 2 workers) exactly as the training loop reads them. The memmap numbers
include the OS page cache once the file has been read; the first pass reads from disk.

    python benchmarks/training_loader.py [--sequences 40] [--frames 100] [--image-size 64]
"""
from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def main() -> int:
    sys.path.insert(0, str(ROOT))
    import torch

    from tacforce_training.core.cache import loader_frames_per_s
    from tacforce_training.preprocess import ImagePreprocess
    from tacforce_training.synthetic import marker_sequences
    from tacforce_training.tasks.tactile_force.data import Clips, SequenceFrames

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sequences", type=int, default=40)
    p.add_argument("--frames", type=int, default=100, help="frames per sequence")
    p.add_argument("--image-size", type=int, default=64)
    p.add_argument("--clip-length", type=int, default=16)
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--threads", type=int, default=1, help="torch threads of this process (workers use 1)")
    args = p.parse_args()
    torch.set_num_threads(args.threads)

    seqs = marker_sequences(args.sequences, args.frames, 120, 160, seed=0)
    pre = ImagePreprocess(args.image_size)
    with tempfile.TemporaryDirectory() as tmp:
        for name, budget in (("ram", float("inf")), ("memmap", 0)):
            data = SequenceFrames(seqs, pre, name, budget, Path(tmp) / f"{name}.npy")
            size = data.store.nbytes / 2 ** 20
            for workers in (0, 2):
                clips = Clips(data, args.clip_length, seed=0)
                loader = torch.utils.data.DataLoader(clips, batch_size=args.batch_size, shuffle=True,
                                                     num_workers=workers)
                fps, frames = loader_frames_per_s(loader, lambda b: b[0].shape[0] * b[0].shape[1])
                print(f"{name:>6} ({size:.0f} MiB, {len(data.store)} frames)  workers {workers}: "
                      f"{fps:,.0f} frames/s over {frames} clip frames")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
