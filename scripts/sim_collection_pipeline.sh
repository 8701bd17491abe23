#!/usr/bin/env bash
# One command: simulated collection runs (simulated UR5e, Nano17 over loopback RDT, tactile
# simulator) -> bags -> training -> evaluation on indenters held out from training.
#   scripts/sim_collection_pipeline.sh [OUT_DIR]      (EPOCHS=10 CONFIG=collection_sim.yaml)
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
out=${1:-runs/sim_collection}
config=${CONFIG:-collection_sim.yaml}
"$root/scripts/setup_env.sh" train
tacforce=${TACFORCE_VENV:-$root/.venv}/bin/tacforce
topics=(--image-topic /tactile/image_raw/compressed --wrench-topic /ft_sensor/wrench --episode-topic /tactile/episode)
for i in sphere cylinder cube hexagon moon line; do
  "$tacforce" collect --sim --config "$config" --indenter "$i" --bag "$out/train/$i"
done
for i in sphere_s triangle pacman cone wave torus; do
  "$tacforce" collect --sim --config "$config" --indenter "$i" --bag "$out/test/$i"
done
"$tacforce" train tactile-force --bag "$out"/train/* "${topics[@]}" --out "$out/model" --epochs "${EPOCHS:-10}"
"$tacforce" eval tactile-force --model "$out/model/tactile_force.onnx" --bag "$out"/test/* "${topics[@]}"
