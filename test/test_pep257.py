"""Docstring style: pydocstyle through ament_pep257, with the package's docstring convention."""
from pathlib import Path

from ament_pep257.main import main

ROOT = Path(__file__).resolve().parents[1]
PATHS = ["tacforce_ros", "training", "test", "benchmarks", "launch", "scripts", "setup.py"]
EXCLUDES = [".venv", "build", "install", "log"]
# ament's convention, except that a docstring's summary starts on its first line (D212, not D213) and
# may be a sentence wrapping over several lines (so no D205, D400 or D415).
ADD_IGNORE = ["D205", "D400", "D415", "D213"]
ADD_SELECT = ["D212"]


def test_pep257():
    """Keep docstrings to one convention so that help texts and API docs read alike across the package."""
    rc = main(argv=[*(str(ROOT / p) for p in PATHS), "--add-ignore", *ADD_IGNORE, "--add-select", *ADD_SELECT,
                    "--exclude", *(str(ROOT / e) for e in EXCLUDES)])
    assert rc == 0, "Found code style errors / warnings in docstrings (listed in the captured stderr)"
