#!/usr/bin/env bash
# Create or refresh the local virtual environment (.venv, or $TACFORCE_VENV).
#   scripts/setup_env.sh            runtime only (nodes, shipped models, simulator)
#   scripts/setup_env.sh train dev  + PyTorch training/export, + test tools
# With a ROS 2 install sourced (ROS_DISTRO set and rclpy importable) the venv sees its
# packages; otherwise ROS 2 Jazzy rclpy and messages come from the PyPI wheels.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
venv=${TACFORCE_VENV:-$root/.venv}
py=${PYTHON:-python3}

"$py" -c 'import sys; sys.exit(sys.version_info < (3, 10))' ||
  { echo "tacforce needs Python 3.10 or newer ($py is $("$py" --version 2>&1))" >&2; exit 1; }

if [ -n "${ROS_DISTRO:-}" ] && "$py" -c 'import rclpy' 2>/dev/null; then
  ros=system
else
  ros=pypi
fi

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

reqs=(-r "$root/requirements.txt")
[ "$ros" = pypi ] && reqs+=(-r "$root/requirements-ros.txt")
for extra in "$@"; do
  case "$extra" in
    train) reqs+=(-r "$root/requirements-train.txt") ;;
    dev) reqs+=(-r "$root/requirements-dev.txt") ;;
    *) echo "unknown extra '$extra' (train, dev)" >&2; exit 2 ;;
  esac
done
"$venv/bin/python" -m pip install -q --disable-pip-version-check "${reqs[@]}"
"$venv/bin/python" -m pip install -q --disable-pip-version-check --no-deps --no-build-isolation -e "$root"
echo "tacforce environment ready: $venv (ROS 2 from $ros)"
