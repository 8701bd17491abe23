r"""A plain CNN on (frame - no-contact reference) beside a tacforce tactile_force model, on one split.

The baseline a user would write first: each frame minus its sequence's no-contact frame (the
same reference rule as training: `no_contact_reference`), area-resized to --size px, four
3x3 stride-2 conv + ReLU layers, global average pool, a linear layer to standardised forces,
MSE, Adam; no recurrence, no augmentation. It trains on the --train-bag sequences and both are
scored on the --test-bag sequences, on all frames and on the frames whose true force lies
beyond the training labels' range (as `tacforce eval` splits them), side by side.

    python benchmarks/tactile_force_baseline.py --train-bag D/train/* --test-bag D/test/* \\
        --image-topic /tactile/image_raw/compressed --wrench-topic /ft_sensor/wrench \\
        --model out/tactile_force.onnx [--epochs 15] [--size 64] [--json FILE]
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
BEYOND = 0.02          # of the training span, as the node's ForceRange and `tacforce eval` count it


def frames_minus_reference(sequences, size: int) -> tuple[np.ndarray, np.ndarray]:
    """Return float32 [N, C, size, size] (frame - reference) / 255 of every frame, and forces [N, 3]."""
    import cv2

    from tacforce_ros.data.tactile_pairs import no_contact_reference

    xs, ys = [], []
    for seq in sequences:
        ref = no_contact_reference(seq.images, seq.forces)[0].astype(np.float32)
        for image in seq.images:
            diff = (image.astype(np.float32) - ref) / 255.0
            small = cv2.resize(diff, (size, size), interpolation=cv2.INTER_AREA)
            xs.append(small.reshape(size, size, -1).transpose(2, 0, 1))
        ys.append(np.asarray(seq.forces, np.float32))
    return np.stack(xs), np.concatenate(ys)


def train_baseline(x: np.ndarray, y: np.ndarray, epochs: int, seed: int):
    """Fit the four-layer CNN; return a function frames -> forces (N) and the seconds it took."""
    import torch
    from torch import nn

    torch.manual_seed(seed)
    widths, layers, cin = (16, 32, 64, 64), [], x.shape[1]
    for w in widths:
        layers += [nn.Conv2d(cin, w, 3, 2, 1), nn.ReLU()]
        cin = w
    net = nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(cin, 3))
    mean, std = y.mean(0), y.std(0) + 1e-6
    xt, yt = torch.from_numpy(x), torch.from_numpy((y - mean) / std)
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    gen = torch.Generator().manual_seed(seed)
    start = time.perf_counter()
    for _ in range(epochs):
        for idx in torch.randperm(len(xt), generator=gen).split(64):
            loss = ((net(xt[idx]) - yt[idx]) ** 2).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
    seconds = time.perf_counter() - start
    net.eval()

    def predict(frames: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            out = torch.cat([net(torch.from_numpy(c)) for c in np.array_split(frames, max(1, len(frames) // 256))])
        return out.numpy() * std + mean

    return predict, seconds


def scored(pred: np.ndarray, true: np.ndarray, beyond: np.ndarray) -> dict:
    from tacforce_training.tasks.tactile_force.metrics import force_metrics

    return {"all": force_metrics(pred, true),
            "beyond_training_range": force_metrics(pred[beyond], true[beyond]) if beyond.any() else None}


def table(results: dict, beyond_frames: int) -> str:
    lines = [f"{'':<28}{'Fz RMSE [N]':>12}{'% range':>9}{'R² x':>8}{'R² y':>8}{'R² z':>8}   "
             f"beyond range ({beyond_frames} frames): Fz RMSE, R² z"]
    for name, r in results.items():
        m, b = r["all"], r["beyond_training_range"]
        tail = "n/a" if b is None else f"{b['rmse']['z']:.3f} N, {b['r2']['z']:.3f}"
        lines.append(f"{name:<28}{m['rmse']['z']:>12.3f}{m['fz_rmse_pct_range']:>9.2f}"
                     f"{m['r2']['x']:>8.3f}{m['r2']['y']:>8.3f}{m['r2']['z']:>8.3f}   {tail}")
    return "\n".join(lines)


def main() -> int:
    sys.path.insert(0, str(ROOT))
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--train-bag", nargs="+", required=True, type=Path)
    p.add_argument("--test-bag", nargs="+", required=True, type=Path)
    p.add_argument("--image-topic", required=True)
    p.add_argument("--wrench-topic", required=True)
    p.add_argument("--episode-topic", default=None)
    p.add_argument("--model", type=Path, required=True, help="tactile_force ONNX model to compare")
    p.add_argument("--epochs", type=int, default=15)
    p.add_argument("--size", type=int, default=64, help="baseline input side, px")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--json", type=Path, default=None, help="also write the numbers here")
    args = p.parse_args()

    import torch

    from tacforce_ros.data.tactile_pairs import load_tactile_pairs
    from tacforce_training.tasks.tactile_force.evaluate import predict_sequences

    torch.set_num_threads(args.threads)
    load = (lambda bags: load_tactile_pairs(bags, args.image_topic, args.wrench_topic, args.episode_topic).sequences)
    train_seqs, test_seqs = load(args.train_bag), load(args.test_bag)
    x_train, y_train = frames_minus_reference(train_seqs, args.size)
    x_test, y_test = frames_minus_reference(test_seqs, args.size)
    lo, hi = y_train.min(0), y_train.max(0)
    margin = BEYOND * (hi - lo)
    beyond = ((y_test < lo - margin) | (y_test > hi + margin)).any(1)
    print(f"train: {len(train_seqs)} sequences, {len(y_train)} frames, forces {np.round(lo, 2)} .. "
          f"{np.round(hi, 2)} N; test: {len(test_seqs)} sequences, {len(y_test)} frames, forces "
          f"{np.round(y_test.min(0), 2)} .. {np.round(y_test.max(0), 2)} N, {int(beyond.sum())} beyond the training "
          "range")

    baseline, seconds = train_baseline(x_train, y_train, args.epochs, args.seed)
    results = {f"baseline CNN ({seconds:.0f} s train)": scored(baseline(x_test), y_test, beyond)}
    model = predict_sequences(args.model, test_seqs)
    if not np.allclose(model.true, y_test, atol=1e-5):
        raise SystemExit("the model's evaluation frames differ from the baseline's")
    results[args.model.name] = scored(model.pred, y_test, beyond)
    print(table(results, int(beyond.sum())))
    if args.json:
        args.json.write_text(json.dumps({"train_bags": [str(b) for b in args.train_bag],
                                         "test_bags": [str(b) for b in args.test_bag],
                                         "beyond_frames": int(beyond.sum()), "results": results}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
