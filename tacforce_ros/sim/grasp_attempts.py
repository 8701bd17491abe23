"""Grasp trial records (image, centre, angle, outcome) in the attempts CSV format shared by
synthetic (``grasp_labels.sample_attempts``) and real robot trials.
"""

from __future__ import annotations

import csv
import math
from pathlib import Path, PurePosixPath
from typing import Iterable, NamedTuple, Sequence

import numpy as np

ATTEMPT_COLUMNS = ("image", "u", "v", "angle", "success")
ATTEMPT_CSV_NAME = "attempts.csv"


class Attempt(NamedTuple):
    """One recorded grasp trial: image file (relative to the CSV's folder), centre px, angle, outcome."""

    image: str
    u: float
    v: float
    angle: float
    success: bool


def _csv_path(path: str | Path) -> Path:
    path = Path(path)
    return path / ATTEMPT_CSV_NAME if path.is_dir() or path.suffix == "" else path


def _parse_float(name: str, text: str, where: str) -> float:
    try:
        value = float(text)
    except (TypeError, ValueError):
        raise ValueError(f"{where}: {name} must be a number, got {text!r}") from None
    if not math.isfinite(value):
        raise ValueError(f"{where}: {name} must be finite, got {text!r}")
    return value


def _parse_success(text, where: str) -> bool:
    if isinstance(text, (bool, np.bool_)):
        return bool(text)
    if isinstance(text, (int, np.integer)) and text in (0, 1):
        return bool(text)
    key = str(text).strip().lower()
    if key in ("1", "true"):
        return True
    if key in ("0", "false"):
        return False
    raise ValueError(f"{where}: success must be 0/1/true/false, got {text!r}")


def _validate(row, where: str) -> Attempt:
    if len(row) != len(ATTEMPT_COLUMNS):
        raise ValueError(f"{where}: expected {len(ATTEMPT_COLUMNS)} fields {ATTEMPT_COLUMNS}, got {len(row)}")
    image, u, v, angle, success = row
    if not isinstance(image, str) or not image.strip():
        raise ValueError(f"{where}: image must be a non-empty file name, got {image!r}")
    image = image.strip()
    parts = PurePosixPath(image.replace("\\", "/"))
    if parts.is_absolute() or ".." in parts.parts or (len(image) > 1 and image[1] == ":"):
        raise ValueError(f"{where}: image must be a path relative to the CSV's folder, got {image!r}")
    u = _parse_float("u", u, where)
    v = _parse_float("v", v, where)
    if u < 0 or v < 0:
        raise ValueError(f"{where}: pixel coordinates must be >= 0, got u={u}, v={v}")
    angle = _parse_float("angle", angle, where)
    if not 0.0 <= angle < math.pi:
        raise ValueError(f"{where}: angle must be radians in [0, pi) (see grasp_angles), got {angle}")
    return Attempt(image, u, v, angle, _parse_success(success, where))


def write_attempt_csv(path: str | Path, rows: Iterable[Sequence]) -> Path:
    """Write rows (image, u, v, angle, success) to ``path`` (a CSV file, or a folder to get
    ``attempts.csv`` in it); rows are validated first so a bad one leaves no partial file.
    """
    target = _csv_path(path)
    checked = [_validate(tuple(row), f"row {i}") for i, row in enumerate(rows)]
    target.parent.mkdir(parents=True, exist_ok=True)
    with open(target, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(ATTEMPT_COLUMNS)
        for a in checked:
            writer.writerow([a.image, repr(a.u), repr(a.v), repr(a.angle), int(a.success)])
    return target


def read_attempt_csv(path: str | Path, check_images: bool = False) -> list[Attempt]:
    """Read and validate an attempts CSV (a file, or a folder holding ``attempts.csv``).

    The header must name the columns image,u,v,angle,success (any order, extras ignored). With
    ``check_images`` every referenced image must exist next to the CSV.
    """
    target = _csv_path(path)
    if not target.is_file():
        raise FileNotFoundError(f"no attempts CSV at {target}")
    with open(target, newline="") as f:
        reader = csv.reader(f)
        header = next(reader, None)
        if header is None:
            raise ValueError(f"{target}: empty file, expected header {','.join(ATTEMPT_COLUMNS)}")
        header = [h.strip() for h in header]
        missing = [c for c in ATTEMPT_COLUMNS if c not in header]
        if missing or len(set(header)) != len(header):
            raise ValueError(f"{target}: header must contain each of {ATTEMPT_COLUMNS} once, got {header}")
        index = [header.index(c) for c in ATTEMPT_COLUMNS]
        rows = []
        for record in reader:
            where = f"{target}:{reader.line_num}"
            if not record or all(not x.strip() for x in record):
                continue
            if len(record) != len(header):
                raise ValueError(f"{where}: expected {len(header)} fields, got {len(record)}")
            attempt = _validate(tuple(record[i] for i in index), where)
            if check_images and not (target.parent / attempt.image).is_file():
                raise FileNotFoundError(f"{where}: image {attempt.image!r} not found in {target.parent}")
            rows.append(attempt)
    return rows
