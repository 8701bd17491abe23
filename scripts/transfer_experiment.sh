#!/usr/bin/env bash
# GenForce cross-sensor experiment on simulated sensors, end to end (README, "Cross-sensor transfer"):
# location-paired runs on four sensors -> paired masks -> material curves -> m2m models ->
# oracle and transferred force models -> the table (`tacforce eval transfer`).
#   scripts/transfer_experiment.sh [OUT_DIR]     (DATA=data/transfer EPOCHS=10 M2M_CONFIG=cpu THREADS=2)
# Source: array1. Targets: diamond1 (homogeneous: another marker pattern), diamond1_soft (material:
# the same pattern, an 8x softer elastomer), tactip1 (heterogeneous: large dark pins on a bright
# skin). Steps whose output exists are skipped, so an interrupted run continues where it stopped.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
out=${1:-runs/transfer}
data=${DATA:-data/transfer}
epochs=${EPOCHS:-10}
threads=${THREADS:-2}
"$root/scripts/setup_env.sh" train
tacforce=${TACFORCE_VENV:-$root/.venv}/bin/tacforce
topics=(--image-topic /tactile/image_raw/compressed --wrench-topic /ft_sensor/wrench --episode-topic /tactile/episode)
seen=(sphere cylinder cube hexagon moon line)
held_out=(sphere_s triangle pacman cone wave torus)
todo() { [ ! -e "$1" ]; }

# 1. The same scripted contacts on every sensor (training: seen indenters; test: held out).
for style in array1 diamond1 diamond1_soft tactip1; do
  for i in "${seen[@]}"; do
    todo "$data/$style/train/$i" && "$tacforce" sim --config transfer_sim.yaml --style "$style" --indenters "$i" --bag "$data/$style/train/$i"
  done
done
for style in diamond1 diamond1_soft tactip1; do
  for i in "${held_out[@]}"; do
    todo "$data/$style/test/$i" && "$tacforce" sim --config transfer_sim.yaml --style "$style" --seed 1 --indenters "$i" --bag "$data/$style/test/$i"
  done
done

# 2. Paired masks for m2m: a few frames per contact (seen indenters), and held-out ones for image quality.
todo "$data/pairs/train.npz" && "$tacforce" pairs --sim --styles array1 diamond1 tactip1 --contacts 500 --frames 4 --out "$data/pairs/train.npz"
todo "$data/pairs/test_heldout.npz" && "$tacforce" pairs --sim --styles array1 diamond1 tactip1 --contacts 60 --frames 2 \
  --seed 1 --indenters "${held_out[@]}" --out "$data/pairs/test_heldout.npz"

# 3. Force-depth curves from material-curve runs (straight press/release, simulated UR5e + Nano17).
for style in array1 diamond1_soft; do
  todo "$data/material/$style" && "$tacforce" collect --sim --config material_curve_sim.yaml --style "$style" --bag "$data/material/$style"
  todo "$data/material/$style.json" && "$tacforce" fit material-curve --bag "$data/material/$style" --surface-z 0.195 \
    --sensor "$style" --out "$data/material/$style.json"
done

# 4. m2m models, array1 -> each marker style (diamond1_soft has diamond1's markers: the same model serves it).
for target in diamond1 tactip1; do
  todo "$out/m2m_$target/m2m.pt" && "$tacforce" train m2m --pairs "$data/pairs/train.npz" --source array1 --target "$target" \
    --config "${M2M_CONFIG:-cpu}" --threads "$threads" --out "$out/m2m_$target"
done

# 5. Oracles: trained on the target sensor's own labelled runs.
for target in diamond1 diamond1_soft tactip1; do
  todo "$out/oracle_$target/tactile_force.onnx" && "$tacforce" train tactile-force --bag "$data/$target"/train/* "${topics[@]}" \
    --segment-markers --epochs "$epochs" --threads "$threads" --out "$out/oracle_$target"
done

# 6. Transfers: source labels, translated images (+ compensation where the stiffness differs).
transfer() {  # OUT_NAME M2M TARGET [extra args]
  local name=$1 m2m=$2 target=$3
  shift 3
  todo "$out/$name/tactile_force.onnx" && "$tacforce" train transfer --bag "$data/array1"/train/* "${topics[@]}" \
    --m2m "$out/m2m_$m2m/m2m.pt" --target-reference "$data/$target/test/cone" --eval-bag "$data/$target"/test/* \
    --epochs "$epochs" --threads "$threads" --out "$out/$name" "$@"
  return 0
}
transfer transfer_diamond1 diamond1 diamond1
transfer transfer_comp_diamond1_soft diamond1 diamond1_soft \
  --source-curve "$data/material/array1.json" --target-curve "$data/material/diamond1_soft.json"
transfer transfer_tactip1 tactip1 tactip1

# 7. The table. No transfer = the shipped array1 model run on the target sensor. Without
# compensation the material case trains on exactly the homogeneous case's data (same markers,
# same labels), so its m2m row is that model.
shipped="$root/models/tactile_force.onnx"
rows=()
row() { rows+=(--row "$1" "$2" "$3" "$data/$4/test/*"); }  # the glob stays quoted: the command expands it
row homogeneous no-transfer "$shipped" diamond1
row homogeneous m2m "$out/transfer_diamond1/tactile_force.onnx" diamond1
row homogeneous oracle "$out/oracle_diamond1/tactile_force.onnx" diamond1
row material no-transfer "$shipped" diamond1_soft
row material m2m "$out/transfer_diamond1/tactile_force.onnx" diamond1_soft
row material m2m+compensation "$out/transfer_comp_diamond1_soft/tactile_force.onnx" diamond1_soft
row material oracle "$out/oracle_diamond1_soft/tactile_force.onnx" diamond1_soft
row heterogeneous no-transfer "$shipped" tactip1
row heterogeneous m2m "$out/transfer_tactip1/tactile_force.onnx" tactip1
row heterogeneous oracle "$out/oracle_tactip1/tactile_force.onnx" tactip1
"$tacforce" eval transfer --out "$out/transfer_table" "${rows[@]}" \
  --m2m homogeneous "$out/m2m_diamond1/m2m.pt" "$data/pairs/test_heldout.npz" \
  --m2m heterogeneous "$out/m2m_tactip1/m2m.pt" "$data/pairs/test_heldout.npz"
