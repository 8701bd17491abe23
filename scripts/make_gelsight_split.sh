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
