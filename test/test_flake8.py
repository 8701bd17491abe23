"""Code style: flake8 through ament_flake8, with the package's configuration in setup.cfg."""
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PATHS = ["tacforce_ros", "training", "test", "benchmarks", "launch", "scripts", "setup.py"]
EXCLUDES = [".venv", "build", "install", "log"]
# In a fresh process: flake8 forks its workers, and this pytest process holds DDS and torch threads
# by now (a worker forked from it crashed in garbage collection once and the pool waited forever).
RUN = ("import sys\nfrom ament_flake8.main import main_with_errors\n"
       "rc, errors = main_with_errors(argv=sys.argv[1:])\nprint('\\n'.join(errors))\nsys.exit(rc)\n")


def test_flake8():
    """Keep the code to one style (ament's checks, 120 columns, double quotes) so reviews see only real changes."""
    argv = ["--config", str(ROOT / "setup.cfg"), *(str(ROOT / p) for p in PATHS),
            "--exclude", *(str(ROOT / e) for e in EXCLUDES)]
    done = subprocess.run([sys.executable, "-c", RUN, *argv], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, f"code style errors / warnings:\n{done.stdout}{done.stderr}"
