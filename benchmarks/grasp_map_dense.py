"""One dense GraspNet pass over a 640x480 frame vs. scoring the same cells patch by patch.

Both run through ONNX Runtime (the node's OnnxModel wrapper) on this machine in one run:

  1. dense: the shipped grasp_map model, whole frame in, [15, 20, 18] map out, per frame;
  2. patches: the same weights exported without padding for one 227x227 patch (1x1 map), run
     once per cell on the patch centred on that cell (the frame padded with the mean colour,
     as in training), for all 300 cells of the frame;
  3. ratio of the p50 times, and how closely the two agree (the dense pass sees real
     neighbours where a lone patch sees zero padding inside conv2-5, so they are close, not equal).

    python benchmarks/grasp_map_dense.py [--frames 10] [--checkpoint models/grasp_map_synthetic.pt]

Needs torch (to export the patch model from the checkpoint).
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tactile_force_node import percentiles  # noqa: E402  (benchmarks/ is this script's folder)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, default=10)
    parser.add_argument("--model", default=str(ROOT / "models" / "grasp_map_synthetic.onnx"))
    parser.add_argument("--checkpoint", default=str(ROOT / "models" / "grasp_map_synthetic.pt"))
    args = parser.parse_args()

    from tacforce_ros.inference.runtime import OnnxModel
    from tacforce_ros.perception.grasp_map import OUTPUT, GraspMapLayout
    from tacforce_ros.sim.grasp_scenes import SceneConfig, generate_scene
    from tacforce_training.core import checkpoint
    from tacforce_training.models.grasp_net import PATCH
    from tacforce_training.tasks.grasp_map.export import export_grasp_map

    dense = OnnxModel(args.model, "grasp_map", providers=["cpu"])
    layout = GraspMapLayout.from_metadata(dense.metadata.outputs)
    inp = dense.metadata.input
    rng = np.random.default_rng(7)
    config = SceneConfig(height=inp.height, width=inp.width)
    images = [generate_scene(config, rng).image for _ in range(args.frames)]
    mean = checkpoint.load(args.checkpoint, "grasp_map")["summary"]["mean_rgb"]
    with tempfile.TemporaryDirectory() as tmp:
        patch_path = Path(tmp) / "patch.onnx"
        export_grasp_map(args.checkpoint, patch_path, PATCH, PATCH, np.stack([images[0][:PATCH, :PATCH]]),
                         padded=False)
        patch = OnnxModel(patch_path, "grasp_map", providers=["cpu"])

        dense_times, patch_times, diffs, same_bin = [], [], [], []
        half = PATCH // 2
        for image in images:
            dense.run(image[None])  # warm
            t = time.perf_counter()
            full = dense.run(image[None])[0][OUTPUT]
            dense_times.append(time.perf_counter() - t)
            padded = np.empty((inp.height + 2 * half, inp.width + 2 * half, 3), np.uint8)
            padded[:] = np.round(mean).astype(np.uint8)
            padded[half:half + inp.height, half:half + inp.width] = image
            cells = np.empty_like(full)
            t = time.perf_counter()
            for row in range(layout.rows):
                for col in range(layout.cols):
                    u, v = (int(x) for x in layout.cell_centre(row, col))
                    window = np.ascontiguousarray(padded[v:v + PATCH, u:u + PATCH])[None]
                    cells[row, col] = patch.run(window)[0][OUTPUT][0, 0]
            patch_times.append(time.perf_counter() - t)
            diffs.append(np.abs(cells - full).mean())
            same_bin.append((cells.argmax(2) == full.argmax(2)).mean())

    cells_n = layout.rows * layout.cols
    print(f"GraspNet {inp.width}x{inp.height} {inp.encoding}, {cells_n} cells x {layout.bins} bins, "
          f"{args.frames} frames, ONNX Runtime CPU, model {args.model}")
    print(f"1. dense pass (whole frame)       {percentiles(dense_times)}")
    print(f"2. patch by patch ({cells_n} x {PATCH} px) {percentiles(patch_times)}")
    print(f"3. dense is {np.median(patch_times) / np.median(dense_times):.1f}x faster (p50 ratio); "
          f"mean |P_dense - P_patch| {np.mean(diffs):.3f}, same best bin in {100 * np.mean(same_bin):.1f}% of cells")


if __name__ == "__main__":
    main()
