#!/usr/bin/env bash
# The GelSight-type evaluation split of issue 13: train on the seen indenters with |Fz| up to F,
# test on the unseen ones pressed deeper (max |Fz| >= 1.75 F), on differently seeded sensor units.
#   scripts/make_gelsight_split.sh OUT_DIR      (PYTHON=.venv/bin/python STYLE=gelsight_mini)
# Writes OUT_DIR/train/<indenter> and OUT_DIR/test/<indenter> MCAP bags (rgb8 320x240 PNG images
# at 30 Hz on /tactile/image_raw/compressed, wrenches at 500 Hz, episode marks); the depths, seeds
# and rates are in config/sim_gelsight_train.yaml and config/sim_gelsight_test.yaml.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
out=${1:?usage: make_gelsight_split.sh OUT_DIR}
python=${PYTHON:-$root/.venv/bin/python}
style=${STYLE:-gelsight_mini}
seen=(cube cylinder hexagon line moon sphere)
unseen=(sphere_s triangle pacman cone wave torus)
mkdir -p "$out/train" "$out/test"
out=$(cd "$out" && pwd)
cd "$root"  # `python -m` imports this checkout's tacforce_ros
for split in train test; do
  if [ "$split" = train ]; then indenters=("${seen[@]}"); base=0; else indenters=("${unseen[@]}"); base=100; fi
  for k in "${!indenters[@]}"; do
    i=${indenters[$k]}
    seed=$((base + k))  # every bag its own sensor unit: colour gain, offset and noise
    start=$SECONDS
    "$python" -m tacforce_ros.cli sim --config "$root/config/sim_gelsight_$split.yaml" --style "$style" \
      --indenters "$i" --seed "$seed" --bag "$out/$split/$i"
    echo "$split/$i: seed $seed, $((SECONDS - start)) s"
  done
done
# check: frames and max |Fz| per bag (the test maximum must reach 1.75x the training one)
"$python" - "$out"/train/* "$out"/test/* <<'PY'
import sys
import numpy as np
from tacforce_ros.data.tactile_pairs import load_tactile_pairs
peak = {}
for bag in sys.argv[1:]:
    pairs = load_tactile_pairs(bag, "/tactile/image_raw/compressed", "/ft_sensor/wrench", "/tactile/episode")
    fz = np.abs(np.concatenate([s.forces[:, 2] for s in pairs.sequences]))
    split = bag.rstrip("/").split("/")[-2]
    peak[split] = max(peak.get(split, 0.0), float(fz.max()))
    print(f"{bag}: {len(fz)} frames ({pairs.sequences[0].encoding}), max |Fz| {fz.max():.2f} N")
print(f"train F = {peak['train']:.2f} N, test max {peak['test']:.2f} N = {peak['test'] / peak['train']:.2f} F")
PY
