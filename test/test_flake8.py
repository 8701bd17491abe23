"""Code style: flake8 through ament_flake8, with the package's configuration in setup.cfg."""
from pathlib import Path

from ament_flake8.main import main_with_errors

ROOT = Path(__file__).resolve().parents[1]
PATHS = ["tacforce_ros", "training", "test", "benchmarks", "launch", "scripts", "setup.py"]
EXCLUDES = [".venv", "build", "install", "log"]


def test_flake8():
    """Keep the code to one style (ament's checks, 120 columns, double quotes) so reviews see only real changes."""
    rc, errors = main_with_errors(argv=["--config", str(ROOT / "setup.cfg"), *(str(ROOT / p) for p in PATHS),
                                        "--exclude", *(str(ROOT / e) for e in EXCLUDES)])
    assert rc == 0, f"Found {len(errors)} code style errors / warnings:\n" + "\n".join(errors)
