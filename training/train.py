"""The train loop for TemporalForce (tactile marker images -> contact force).

    sequences -> split by whole sequence (episode) into train / validation
    -> every frame through ImagePreprocess once, cached as float32 (the graph's exact input)
    -> each epoch: clips of ``clip_length`` frames at random starts, zero initial state
       (as GenForce; the model learns to pick up a stream mid-contact)
    -> L1 on min-max-normalised forces at every step -> AdamW, warmup then cosine decay
    -> validation: each held-out sequence streamed from its first frame, as the node does
    -> last.pt every epoch (resumable), best.pt at the lowest validation loss

A sequence is anything with ``.images`` (uint8 N x H x W x C array or list of H x W x C
arrays) and ``.forces`` (N x 3, newtons, sensor frame), e.g. tacforce_ros.bags sequences.

Checkpoints hold only tensors, dicts, lists, numbers and strings so they load with
``torch.load(path, weights_only=True)``. Runs are deterministic on CPU for a given seed, data
and thread count, and a run resumed from last.pt matches an uninterrupted one.
"""
from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from tacforce_ros.inference.contract import ENCODING_CHANNELS

from .metrics import force_metrics
from .models.temporal_force import TemporalForce, TemporalForceConfig
from .preprocess import ImagePreprocess

CHECKPOINT_FORMAT = "tacforce.temporal_force/1"


@dataclass
class TrainConfig:
    model: TemporalForceConfig = field(default_factory=TemporalForceConfig)
    clip_length: int = 16         # frames per training clip (zero state at its first frame)
    batch_size: int = 8           # clips per step
    epochs: int = 12              # an epoch samples about (frames / clip_length) clips
    lr: float = 2e-3              # AdamW peak (GenForce used SGD + momentum; not compared here)
    min_lr: float = 1e-4          # cosine floor
    warmup_steps: int = 30
    weight_decay: float = 1e-4    # on conv/linear weights only
    grad_clip: float = 1.0
    val_fraction: float = 0.2     # of the sequences, when no separate validation set is given
    force_margin: float = 0.1     # force range = training min/max widened by this x span
    min_force_span: float = 1.0   # N; keeps an axis that barely moves from a tiny range
    seed: int = 0
    num_threads: int = 0          # torch.set_num_threads; 0 leaves torch's default

    def to_dict(self) -> dict:
        return {**asdict(self), "model": self.model.to_dict()}

    @classmethod
    def from_dict(cls, d: dict) -> "TrainConfig":
        return cls(**{**d, "model": TemporalForceConfig.from_dict(d["model"])})


@dataclass
class TrainResult:
    best_path: Path
    last_path: Path
    best_epoch: int
    metrics: dict         # force_metrics of best.pt on the validation sequences
    history: list         # one dict per epoch
    summary: dict         # data and run summary for the model card


def as_frames(images) -> np.ndarray:
    """uint8 [N, H, W, C] from an array or a list of H x W (x C) frames."""
    frames = np.asarray(images) if isinstance(images, np.ndarray) else np.stack(list(images))
    if frames.ndim == 3:
        frames = frames[..., None]
    if frames.ndim != 4 or frames.dtype != np.uint8:
        raise ValueError(f"expected uint8 frames N x H x W x C, got {frames.dtype} {frames.shape}")
    return frames


def infer_encoding(channels: int) -> str:
    """mono8 for 1 channel, rgb8 for 3 (pass the encoding explicitly for bgr8 data)."""
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
    """Per-axis min/max of the training forces (always including 0 N), widened by a margin."""
    allf = np.concatenate(forces + [np.zeros((1, 3))])
    lo, hi = allf.min(0), allf.max(0)
    pad = margin * (hi - lo) + np.maximum(0.0, min_span - (hi - lo)) / 2
    return (lo - pad).astype(np.float32), (hi + pad).astype(np.float32)


class CachedSequences:
    """Frames of each sequence after ``preprocess``, float32 [N, C, S, S], with their forces."""

    def __init__(self, sequences, preprocess: ImagePreprocess, desc: str, chunk: int = 64):
        self.frames, self.forces, self.frame_shape = [], [], None
        with torch.no_grad():
            for seq in tqdm(sequences, desc=f"caching {desc} frames", unit="seq", leave=False):
                images, parts = seq.images, []
                for i in range(0, len(images), chunk):
                    frames = as_frames(images[i:i + chunk])
                    if self.frame_shape is None:
                        self.frame_shape = frames.shape[1:]
                    if frames.shape[1:] != self.frame_shape:
                        raise ValueError(f"frames of {frames.shape[1:]} among frames of {self.frame_shape}; "
                                         "all images must have one size and encoding")
                    parts.append(preprocess(torch.from_numpy(frames)))
                forces = np.asarray(seq.forces, np.float32).reshape(-1, 3)
                if len(forces) != sum(len(p) for p in parts):
                    raise ValueError(f"sequence has {len(images)} images but {len(forces)} forces")
                if not np.isfinite(forces).all():
                    raise ValueError("sequence has non-finite forces")
                self.frames.append(torch.cat(parts))
                self.forces.append(torch.from_numpy(forces))

    @property
    def lengths(self) -> list[int]:
        return [len(f) for f in self.frames]


def sample_clips(lengths: list[int], clip_length: int, gen: torch.Generator) -> list[tuple[int, int]]:
    """About one clip per ``clip_length`` frames of each sequence, at uniform random starts."""
    clips = []
    for s, n in enumerate(lengths):
        starts = torch.randint(0, max(1, n - clip_length + 1), (max(1, round(n / clip_length)),),
                               generator=gen)
        clips += [(s, int(i)) for i in starts]
    return [clips[i] for i in torch.randperm(len(clips), generator=gen).tolist()]


def clips_per_epoch(lengths: list[int], clip_length: int) -> int:
    return sum(max(1, round(n / clip_length)) for n in lengths)


def make_batch(data: CachedSequences, clips, clip_length: int):
    """Clips -> (x [B, L, C, S, S], forces [B, L, 3], mask [B, L]); short sequences are padded
    at the end with their last frame and masked out (the GRU is causal, so padding is inert).
    """
    xs, ys, masks = [], [], []
    for s, start in clips:
        frames, forces = data.frames[s][start:start + clip_length], data.forces[s][start:start + clip_length]
        n, pad = len(frames), clip_length - len(frames)
        if pad:
            frames = torch.cat([frames, frames[-1:].expand(pad, -1, -1, -1)])
            forces = torch.cat([forces, forces[-1:].expand(pad, -1)])
        xs.append(frames)
        ys.append(forces)
        masks.append(torch.arange(clip_length) < n)
    return torch.stack(xs), torch.stack(ys), torch.stack(masks).float()


def lr_at(step: int, total_steps: int, cfg: TrainConfig) -> float:
    """Linear warmup, then cosine from ``lr`` to ``min_lr`` over the remaining steps."""
    if step < cfg.warmup_steps:
        return cfg.lr * (step + 1) / cfg.warmup_steps
    progress = min(1.0, (step - cfg.warmup_steps) / max(1, total_steps - cfg.warmup_steps))
    return cfg.min_lr + 0.5 * (cfg.lr - cfg.min_lr) * (1 + math.cos(math.pi * progress))


@torch.no_grad()
def validate(model: TemporalForce, data: CachedSequences, chunk: int = 128) -> tuple[float, dict]:
    """Stream each sequence from a zero state (in chunks, state carried) -> (L1 loss, metrics)."""
    model.eval()
    preds = []
    for frames in data.frames:
        h, out = None, []
        for i in range(0, len(frames), chunk):
            f, h = model.rollout(frames[i:i + chunk][None], h)
            out.append(f[0])
        preds.append(torch.cat(out))
    pred, true = torch.cat(preds), torch.cat(data.forces)
    loss = (model.normalise(pred) - model.normalise(true)).abs().mean().item()
    return loss, force_metrics(pred.numpy(), true.numpy())


def make_optimizer(model: TemporalForce, cfg: TrainConfig) -> torch.optim.AdamW:
    decay = [p for p in model.parameters() if p.dim() >= 2]
    no_decay = [p for p in model.parameters() if p.dim() < 2]
    return torch.optim.AdamW([{"params": decay, "weight_decay": cfg.weight_decay},
                              {"params": no_decay, "weight_decay": 0.0}], lr=cfg.lr)


def model_preprocess(cfg: TemporalForceConfig, encoding: str) -> ImagePreprocess:
    """Return the in-graph preprocessing a TemporalForce config asks for (training and export share it)."""
    return ImagePreprocess(cfg.image_size, encoding, cfg.in_channels, marker_threshold=cfg.marker_threshold,
                           dark_markers=cfg.dark_markers)


def load_model(checkpoint: dict) -> TemporalForce:
    """Load a checkpoint dict (from torch.load(..., weights_only=True)) -> model in eval mode."""
    if checkpoint.get("format") != CHECKPOINT_FORMAT:
        raise ValueError(f"not a TemporalForce checkpoint (format {checkpoint.get('format')!r})")
    model = TemporalForce(TrainConfig.from_dict(checkpoint["train_config"]).model)
    model.load_state_dict(checkpoint["model"])
    return model.eval()


def train(cfg: TrainConfig, sequences, out_dir, *, val_sequences=None, encoding: str | None = None,
          resume: bool = False) -> TrainResult:
    """Train on ``sequences``; validate on ``val_sequences`` or on a held-out share of them.

    Writes ``out_dir/last.pt`` after every epoch and ``out_dir/best.pt`` whenever the
    validation loss improves. With ``resume`` it continues from ``last.pt`` (same data and
    model config required; ``cfg.epochs`` may be raised to train longer).
    """
    t_start = time.perf_counter()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    last_path, best_path = out_dir / "last.pt", out_dir / "best.pt"
    if cfg.num_threads:
        torch.set_num_threads(cfg.num_threads)

    sequences = [s for s in sequences if len(s.images)]
    if val_sequences is None:
        train_idx, val_idx = split_sequences(len(sequences), cfg.val_fraction, cfg.seed)
        train_seqs, val_seqs = [sequences[i] for i in train_idx], [sequences[i] for i in val_idx]
    else:
        train_idx, val_idx = list(range(len(sequences))), []
        train_seqs, val_seqs = sequences, [s for s in val_sequences if len(s.images)]
        if not train_seqs or not val_seqs:
            raise ValueError("need at least one training and one validation sequence")
    first = as_frames(train_seqs[0].images[:1])
    height, width, channels = first.shape[1:]
    encoding = encoding or infer_encoding(channels)
    if ENCODING_CHANNELS.get(encoding) != channels:
        raise ValueError(f"encoding {encoding!r} does not match {channels}-channel images")
    input_spec = {"height": int(height), "width": int(width), "channels": int(channels), "encoding": encoding}

    preprocess = model_preprocess(cfg.model, encoding)
    train_data = CachedSequences(train_seqs, preprocess, "training")
    val_data = CachedSequences(val_seqs, preprocess, "validation")
    if val_data.frame_shape != train_data.frame_shape:
        raise ValueError(f"validation frames are {val_data.frame_shape}, training frames {train_data.frame_shape}")

    lo, hi = force_range([f.numpy() for f in train_data.forces], cfg.force_margin, cfg.min_force_span)
    summary = {
        "sequences": {"train": len(train_seqs), "val": len(val_seqs)},
        "frames": {"train": sum(train_data.lengths), "val": sum(val_data.lengths)},
        "sequence_lengths": {"train": train_data.lengths, "val": val_data.lengths},
        "val_split": "held-out sequences" if val_sequences is None else "separate validation set",
        "val_sequence_indices": val_idx,
        "train_force_min": torch.cat(train_data.forces).min(0).values.tolist(),
        "train_force_max": torch.cat(train_data.forces).max(0).values.tolist(),
        "model_force_range": {"min": lo.tolist(), "max": hi.tolist()},
        "input": input_spec,
        "config": cfg.to_dict(),
        "threads": torch.get_num_threads(),
        "torch": str(torch.__version__),
    }

    torch.manual_seed(cfg.seed)
    model = TemporalForce(cfg.model)
    model.set_force_range(lo, hi)
    optimizer = make_optimizer(model, cfg)
    sampler = torch.Generator().manual_seed(cfg.seed)
    start_epoch, step, history = 0, 0, []
    best = {"epoch": 0, "val_loss": float("inf"), "metrics": {}}

    if resume and last_path.is_file():
        ckpt = torch.load(last_path, map_location="cpu", weights_only=True)
        saved = TrainConfig.from_dict(ckpt["train_config"])
        if saved.model != cfg.model or ckpt["input"] != input_spec:
            raise ValueError(f"{last_path} was trained with model {saved.model} on {ckpt['input']}; "
                             f"this run has {cfg.model} on {input_spec}")
        if ckpt["summary"]["sequence_lengths"] != summary["sequence_lengths"]:
            raise ValueError(f"{last_path} was trained on different data (sequence lengths differ)")
        model.load_state_dict(ckpt["model"])
        optimizer.load_state_dict(ckpt["optimizer"])
        torch.set_rng_state(ckpt["rng"]["torch"])
        sampler.set_state(ckpt["rng"]["sampler"])
        start_epoch, step, history, best = ckpt["epoch"], ckpt["step"], ckpt["history"], ckpt["best"]
        tqdm.write(f"resuming from {last_path} after epoch {start_epoch}")
    elif resume:
        tqdm.write(f"no {last_path} to resume from; starting a new run")

    steps_per_epoch = math.ceil(clips_per_epoch(train_data.lengths, cfg.clip_length) / cfg.batch_size)
    total_steps = steps_per_epoch * cfg.epochs
    for epoch in range(start_epoch, cfg.epochs):
        t_epoch = time.perf_counter()
        model.train()
        clips = sample_clips(train_data.lengths, cfg.clip_length, sampler)
        bar = tqdm(range(0, len(clips), cfg.batch_size), desc=f"epoch {epoch + 1}/{cfg.epochs}",
                   unit="batch", leave=False)
        loss_sum = 0.0
        for i in bar:
            lr = lr_at(step, total_steps, cfg)
            for group in optimizer.param_groups:
                group["lr"] = lr
            x, y, mask = make_batch(train_data, clips[i:i + cfg.batch_size], cfg.clip_length)
            err = (model.normalise(model(x)) - model.normalise(y)).abs().mean(-1)
            loss = (err * mask).sum() / mask.sum()
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
            optimizer.step()
            step += 1
            loss_sum += loss.item()
            bar.set_postfix(loss=f"{loss.item():.4f}", lr=f"{lr:.2e}")
        val_loss, metrics = validate(model, val_data)
        record = {"epoch": epoch + 1, "train_loss": loss_sum / len(bar), "val_loss": val_loss,
                  "seconds": time.perf_counter() - t_epoch, "metrics": metrics}
        history.append(record)
        improved = val_loss < best["val_loss"]
        if improved:
            best = {"epoch": epoch + 1, "val_loss": val_loss, "metrics": metrics}
        ckpt = {"format": CHECKPOINT_FORMAT, "train_config": cfg.to_dict(), "input": input_spec,
                "model": model.state_dict(), "epoch": epoch + 1, "step": step, "best": best,
                "history": history, "summary": summary}
        if improved:
            _save(ckpt, best_path)
        _save({**ckpt, "optimizer": optimizer.state_dict(),
               "rng": {"torch": torch.get_rng_state(), "sampler": sampler.get_state()}}, last_path)
        tqdm.write(_epoch_line(record, cfg.epochs, improved))

    if best["epoch"] == 0:
        raise RuntimeError(f"no usable epoch in {out_dir} (epochs={cfg.epochs}, resumed at "
                           f"{start_epoch}, validation losses {[r['val_loss'] for r in history]})")
    summary = {**summary, "epochs": len(history), "best_epoch": best["epoch"],
               "train_seconds_this_run": round(time.perf_counter() - t_start, 1)}
    return TrainResult(best_path, last_path, best["epoch"], best["metrics"], history, summary)


def _save(obj: dict, path: Path) -> None:
    """Write via a temporary file so an interrupted save never leaves a truncated checkpoint."""
    tmp = path.with_name(path.name + ".tmp")
    torch.save(obj, tmp)
    tmp.replace(path)


def _epoch_line(r: dict, epochs: int, improved: bool) -> str:
    m = r["metrics"]
    rmse = " ".join(f"{a} {m['rmse'][a]:.3f}" for a in "xyz")
    r2 = " ".join(f"{a} {m['r2'][a]:.3f}" for a in "xyz")
    return (f"epoch {r['epoch']}/{epochs}  train L1 {r['train_loss']:.4f}  val L1 {r['val_loss']:.4f}"
            f"  RMSE[N] {rmse}  R² {r2}  {r['seconds']:.1f} s" + ("  *best" if improved else ""))
