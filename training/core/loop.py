"""The one training loop every task runs: ``fit(task, cfg, out_dir, resume=...)``.

    seed -> task.build_model() -> DDP (under torchrun) -> AdamW (decay on weights only)
    -> each epoch: DistributedSampler over task.train_set(), global batch cfg.batch_size split
       over the ranks; autocast + GradScaler on CUDA only; clip the gradient norm; LambdaLR
       warmup then cosine, stepped per optimizer step
    -> validation: each rank predicts its shard of task.val_items(), rows gathered on every rank,
       task.score(rows) -> (metrics, score); the best score (task.higher_is_better) is best.pt
    -> rank 0: last.pt every epoch (resumable), best.pt, metrics.csv, curves.png, TensorBoard

A task provides: ``name`` (from @register), ``score_name``, ``higher_is_better``, ``config``
(a dataclass with ``to_dict``), ``summary`` (dict), ``build_model()``, ``train_set()`` (a
Dataset; ``set_epoch(epoch)`` is called if it has one), ``loss(model, batch)``,
``val_items()``, ``predict(model, items) -> dict of row tensors``, ``score(rows)``; optionally
``collate``, ``check_resume(ckpt)``, ``describe(record)`` (the epoch line) and
``param_groups(model)`` (parts of the model with their own AdamW settings, e.g. a GAN's
discriminator at its own learning rate; the schedule scales every group alike).
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from torch.utils.data import DataLoader, DistributedSampler
from tqdm import tqdm

from . import checkpoint, distributed
from .config import DictConfig
from .curves import Curves


@dataclass
class LoopConfig(DictConfig):
    """What every task's config has; a task config subclasses it and adds its own fields."""

    epochs: int = 12
    batch_size: int = 8           # global: split evenly over the ranks
    lr: float = 2e-3              # AdamW peak
    min_lr: float = 1e-4          # cosine floor
    warmup_steps: int = 30
    weight_decay: float = 1e-4    # on weights with 2+ dims only
    grad_clip: float = 1.0        # max gradient norm; 0 turns clipping off
    seed: int = 0
    num_threads: int = 0          # torch.set_num_threads; 0 leaves torch's default
    num_workers: int = 0          # DataLoader workers per rank
    amp: bool = True              # mixed precision, on CUDA only


@dataclass
class FitResult:
    best_path: Path
    last_path: Path
    best_epoch: int
    metrics: dict         # task.score metrics of best.pt's epoch
    history: list         # one dict per epoch
    summary: dict         # task summary + run facts (epochs, best epoch, world size, seconds)
    rank: int = 0

    @property
    def main(self) -> bool:
        return self.rank == 0


def warmup_cosine(cfg: LoopConfig, total_steps: int):
    """Return the LambdaLR factor: linear warmup to ``lr``, then cosine to ``min_lr`` at ``total_steps``."""
    def factor(step: int) -> float:
        if step < cfg.warmup_steps:
            return (step + 1) / cfg.warmup_steps
        progress = min(1.0, (step - cfg.warmup_steps) / max(1, total_steps - cfg.warmup_steps))
        return (cfg.min_lr + 0.5 * (cfg.lr - cfg.min_lr) * (1 + math.cos(math.pi * progress))) / cfg.lr
    return factor


def make_optimizer(model: torch.nn.Module, cfg: LoopConfig, groups=None) -> torch.optim.AdamW:
    """Return AdamW at ``cfg.lr`` with weight decay on weights of 2+ dims only. ``groups``: (parameters,
    AdamW options) pairs that split the model, each option overriding the defaults (e.g. ``lr``).
    """
    param_groups = []
    for params, options in groups or [(list(model.parameters()), {})]:
        params = list(params)
        param_groups += [{"params": [p for p in params if p.dim() >= 2], "weight_decay": cfg.weight_decay, **options},
                         {"params": [p for p in params if p.dim() < 2], **options, "weight_decay": 0.0}]
    return torch.optim.AdamW(param_groups, lr=cfg.lr)


def to_device(batch, device: torch.device):
    if isinstance(batch, torch.Tensor):
        return batch.to(device, non_blocking=True)
    if isinstance(batch, (list, tuple)):
        return type(batch)(to_device(b, device) for b in batch)
    if isinstance(batch, dict):
        return {k: to_device(v, device) for k, v in batch.items()}
    return batch


def batch_size_of(batch) -> int:
    first = batch if isinstance(batch, torch.Tensor) else next(iter(batch.values() if isinstance(batch, dict)
                                                                    else batch))
    return len(first)


@torch.no_grad()
def validate(task, model: torch.nn.Module, ctx: distributed.Context) -> tuple[dict, float]:
    """Predict this rank's shard of the validation items, gather the rows, score them (same on every rank)."""
    model.eval()
    rows = task.predict(model, distributed.shard(task.val_items(), ctx))
    rows = {k: distributed.gather_rows(v.cpu(), ctx) for k, v in rows.items()}
    return task.score(rows)


def fit(task, cfg: LoopConfig, out_dir, *, resume: bool = False, device: str = "auto") -> FitResult:
    """Train ``task`` with ``cfg`` into ``out_dir``; with ``resume`` continue from ``out_dir/last.pt``."""
    ctx = distributed.init(device)
    try:
        return _fit(task, cfg, Path(out_dir), resume, ctx)
    finally:
        distributed.close(ctx)


def _fit(task, cfg: LoopConfig, out_dir: Path, resume: bool, ctx: distributed.Context) -> FitResult:
    t_start = time.perf_counter()
    last_path, best_path = out_dir / "last.pt", out_dir / "best.pt"
    if ctx.main:
        out_dir.mkdir(parents=True, exist_ok=True)
    if cfg.num_threads:
        torch.set_num_threads(cfg.num_threads)
    if cfg.batch_size % ctx.world:
        raise ValueError(f"batch size {cfg.batch_size} does not split evenly over {ctx.world} processes")
    log = tqdm.write if ctx.main else (lambda *a, **k: None)

    torch.manual_seed(cfg.seed)
    module, model = distributed.wrap(task.build_model().to(ctx.device), ctx)
    optimizer = make_optimizer(module, cfg, task.param_groups(module) if hasattr(task, "param_groups") else None)
    train_set = task.train_set()
    sampler = DistributedSampler(train_set, num_replicas=ctx.world, rank=ctx.rank, shuffle=True, seed=cfg.seed)
    loader = DataLoader(train_set, batch_size=cfg.batch_size // ctx.world, sampler=sampler,
                        num_workers=cfg.num_workers, collate_fn=getattr(task, "collate", None),
                        pin_memory=ctx.device.type == "cuda")
    total_steps = len(loader) * cfg.epochs
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, warmup_cosine(cfg, total_steps))
    amp = cfg.amp and ctx.device.type == "cuda"
    scaler = torch.amp.GradScaler("cuda", enabled=amp)
    better = (lambda a, b: a > b) if task.higher_is_better else (lambda a, b: a < b)
    start_epoch, step, history = 0, 0, []
    best = {"epoch": 0, "score": -math.inf if task.higher_is_better else math.inf, "metrics": {}}

    if resume and last_path.is_file():
        ckpt = checkpoint.load(last_path, task.name)
        if ckpt["optimizer"] is None:
            raise checkpoint.CheckpointError(f"{last_path} holds weights only (no optimizer state); cannot resume")
        if hasattr(task, "check_resume"):
            task.check_resume(ckpt, last_path)
        module.load_state_dict(ckpt["model"])
        optimizer.load_state_dict(ckpt["optimizer"])
        scheduler.load_state_dict(ckpt["scheduler"])
        if ckpt["scaler"]:       # empty when the run was saved without AMP (e.g. on CPU)
            scaler.load_state_dict(ckpt["scaler"])
        torch.set_rng_state(ckpt["rng"]["torch"])
        start_epoch, step, history, best = ckpt["epoch"], ckpt["step"], ckpt["history"], ckpt["best"]
        log(f"resuming from {last_path} after epoch {start_epoch}")
    elif resume:
        log(f"no {last_path} to resume from; starting a new run")

    curves = Curves(out_dir, task.score_name) if ctx.main else None
    for epoch in range(start_epoch, cfg.epochs):
        sampler.set_epoch(epoch)
        if hasattr(train_set, "set_epoch"):
            train_set.set_epoch(epoch)
        model.train()
        t_epoch, loss_sum, samples = time.perf_counter(), 0.0, 0
        bar = tqdm(loader, desc=f"epoch {epoch + 1}/{cfg.epochs}", unit="batch", leave=False, disable=not ctx.main)
        for batch in bar:
            batch = to_device(batch, ctx.device)
            with torch.autocast(ctx.device.type, dtype=torch.float16, enabled=amp):
                loss = task.loss(model, batch)
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            if cfg.grad_clip:
                scaler.unscale_(optimizer)
                torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
            scaler.step(optimizer)
            scaler.update()
            scheduler.step()
            step += 1
            loss_sum += loss.item()
            samples += batch_size_of(batch)
            bar.set_postfix(loss=f"{loss.item():.4f}", lr=f"{scheduler.get_last_lr()[0]:.2e}")
        train_seconds = time.perf_counter() - t_epoch
        train_loss = distributed.all_mean(loss_sum / max(1, len(loader)), ctx)
        samples = distributed.all_sum(samples, ctx)
        metrics, score = validate(task, module, ctx)
        record = {"epoch": epoch + 1, "train_loss": train_loss, task.score_name: score,
                  "lr": scheduler.get_last_lr()[0], "samples_per_s": samples / train_seconds,
                  "seconds": time.perf_counter() - t_epoch, "metrics": metrics}
        history.append(record)
        improved = better(score, best["score"])
        if improved:
            best = {"epoch": epoch + 1, "score": score, "metrics": metrics}
        if ctx.main:
            fields = dict(epoch=epoch + 1, step=step, model=module.state_dict(), config=cfg.to_dict(),
                          summary=task.summary, history=history, best=best)
            if improved:
                checkpoint.save(checkpoint.make(task.name, **fields), best_path)
            checkpoint.save(checkpoint.make(task.name, **fields, optimizer=optimizer.state_dict(),
                                            scheduler=scheduler.state_dict(), scaler=scaler.state_dict(),
                                            rng={"torch": torch.get_rng_state()}), last_path)
            curves.update(history)
        describe = getattr(task, "describe", None)
        line = (describe(record, cfg.epochs) if describe else
                f"epoch {epoch + 1}/{cfg.epochs}  train loss {train_loss:.4f}  {task.score_name} {score:.4f}")
        log(line + ("  *best" if improved else ""))
    if curves is not None:
        curves.close()
    distributed.barrier(ctx)     # best.pt / last.pt are complete before any rank returns
    if best["epoch"] == 0:
        raise RuntimeError(f"no usable epoch in {out_dir} (epochs={cfg.epochs}, resumed at {start_epoch}, "
                           f"scores {[r[task.score_name] for r in history]})")
    summary = {**task.summary, "epochs": len(history), "best_epoch": best["epoch"], "processes": ctx.world,
               "train_seconds_this_run": round(time.perf_counter() - t_start, 1)}
    return FitResult(best_path, last_path, best["epoch"], best["metrics"], history, summary, ctx.rank)
