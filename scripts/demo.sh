#!/usr/bin/env bash
# Set up, then run the main job on its built-in default: the simulated tactile sensor and the
# shipped model through the real nodes; prints estimated vs. true force and writes a plot.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
"$root/scripts/setup_env.sh"
exec "${TACFORCE_VENV:-$root/.venv}/bin/tacforce" demo "$@"
