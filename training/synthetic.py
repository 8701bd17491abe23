"""Synthetic tactile marker episodes: for tests, and for timing training without a robot.

Not physics. A grid of bright dots on a dark gel (like GenForce's marker images) is displaced
around a contact point: along the shear force, and outward with the normal force, dots near
the contact growing as it presses. That makes image -> force smooth and learnable, with the
shapes, dtypes and sign convention of recorded data (newtons, pressing gives Fz < 0).

    python -m tacforce_training.synthetic --frames 5000 --config default --epochs 2

times the train loop on 480x640 mono8 frames (seconds per epoch are printed).
"""
from __future__ import annotations

import argparse
import dataclasses
import tempfile
from dataclasses import dataclass

import numpy as np


@dataclass
class SyntheticSequence:
    images: np.ndarray     # uint8 [N, H, W, C]
    forces: np.ndarray     # float32 [N, 3], N
    stamps_ns: np.ndarray  # int64 [N]


def episode_forces(frames: int, rng: np.random.Generator) -> np.ndarray:
    """Approach, press with some shear, release: zero force at both ends."""
    t = np.linspace(0.0, 1.0, frames)
    press = np.sin(np.pi * np.clip((t - 0.1) / 0.8, 0.0, 1.0)) ** 2
    fz = -rng.uniform(2.0, 15.0) * press
    turns, phase = rng.uniform(0.5, 2.0), rng.uniform(0.0, 2 * np.pi)
    fx = rng.uniform(-3.0, 3.0) * press * np.sin(2 * np.pi * turns * t + phase)
    fy = rng.uniform(-3.0, 3.0) * press * np.cos(2 * np.pi * turns * t + phase)
    return np.stack([fx, fy, fz], 1).astype(np.float32)


def render_markers(forces: np.ndarray, center: np.ndarray, height: int, width: int,
                   rng: np.random.Generator, noise: float = 3.0) -> np.ndarray:
    """uint8 [N, H, W] dot images for forces [N, 3] applied at ``center`` (x, y pixels)."""
    spacing = max(4.0, width / 26)
    radius = 0.2 * spacing
    gy, gx = np.mgrid[spacing / 2:height:spacing, spacing / 2:width:spacing]
    rest = np.stack([gx.ravel(), gy.ravel()], 1)
    sigma = 0.25 * min(height, width)
    rel = rest - center
    weight = np.exp(-(rel ** 2).sum(1) / (2 * sigma ** 2))[:, None]
    shear_px, normal_px = 0.004 * width, 0.0015 * width          # pixels per newton
    reach = int(np.ceil(radius * 1.6)) + 1
    oy, ox = (a.ravel() for a in np.mgrid[-reach:reach + 1, -reach:reach + 1])
    images = np.empty((len(forces), height, width), np.uint8)
    for k, (fx, fy, fz) in enumerate(forces):
        pos = rest + weight * (shear_px * np.array([fx, fy]) + normal_px * abs(fz) * rel / sigma)
        rad = radius * (1 + 0.03 * abs(fz) * weight[:, 0])
        px = np.floor(pos[:, :1]).astype(int) + ox
        py = np.floor(pos[:, 1:]).astype(int) + oy
        ink = np.clip(rad[:, None] + 0.5 - np.hypot(px - pos[:, :1], py - pos[:, 1:]), 0.0, 1.0)
        inside = (px >= 0) & (px < width) & (py >= 0) & (py < height) & (ink > 0)
        canvas = np.zeros((height, width))
        np.maximum.at(canvas, (py[inside], px[inside]), ink[inside])
        img = 30.0 + 200.0 * canvas + rng.normal(0.0, noise, canvas.shape)
        images[k] = np.clip(np.rint(img), 0, 255).astype(np.uint8)
    return images


def marker_sequences(count: int, frames: int, height: int = 480, width: int = 640,
                     channels: int = 1, seed: int = 0) -> list[SyntheticSequence]:
    """``count`` episodes of ``frames`` frames each, contact point random near the centre."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(count):
        forces = episode_forces(frames, rng)
        center = np.array([width, height]) * rng.uniform(0.3, 0.7, 2)
        images = render_markers(forces, center, height, width, rng)[..., None]
        if channels == 3:
            images = np.repeat(images, 3, axis=-1)
        stamps = np.arange(frames, dtype=np.int64) * 33_333_333
        out.append(SyntheticSequence(images, forces, stamps))
    return out


def main(argv=None) -> int:
    import time

    import torch

    from .models.temporal_force import CONFIGS
    from .tasks.tactile_force.config import TrainConfig
    from .tasks.tactile_force.train import train

    p = argparse.ArgumentParser(description="Time TemporalForce training on synthetic marker images.")
    p.add_argument("--frames", type=int, default=5000, help="total frames")
    p.add_argument("--length", type=int, default=100, help="frames per episode")
    p.add_argument("--height", type=int, default=480)
    p.add_argument("--width", type=int, default=640)
    p.add_argument("--config", choices=sorted(CONFIGS), default="default")
    p.add_argument("--image-size", type=int, default=None)
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--threads", type=int, default=0)
    p.add_argument("--out", default=None, help="checkpoint folder (default: a temporary one)")
    args = p.parse_args(argv)

    t0 = time.perf_counter()
    seqs = marker_sequences(max(2, args.frames // args.length), args.length, args.height, args.width)
    print(f"rendered {sum(len(s.forces) for s in seqs)} frames {args.width}x{args.height} "
          f"in {time.perf_counter() - t0:.1f} s")
    model = CONFIGS[args.config]
    if args.image_size:
        model = dataclasses.replace(model, image_size=args.image_size)
    cfg = TrainConfig(model=model, epochs=args.epochs, num_threads=args.threads)
    out = args.out or tempfile.mkdtemp(prefix="tacforce-bench-")
    t0 = time.perf_counter()
    result = train(cfg, seqs, out)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; "
          f"caching + training {time.perf_counter() - t0:.1f} s; per epoch: "
          + ", ".join(f"{r['seconds']:.1f} s" for r in result.history))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
