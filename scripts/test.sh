#!/usr/bin/env bash
# Set up (runtime + training + test tools), then run the test suite.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
"$root/scripts/setup_env.sh" train dev
cd "$root"
exec "${TACFORCE_VENV:-$root/.venv}/bin/python" -m pytest test "$@"
