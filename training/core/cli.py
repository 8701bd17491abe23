"""Command-line pieces every task's `tacforce train|eval|export` sub-commands share (argparse only, no torch)."""
from __future__ import annotations

import shlex
import sys
from pathlib import Path

ENCODINGS = ("mono8", "rgb8", "bgr8")


def command_line() -> str:
    return shlex.join(["tacforce", *sys.argv[1:]])


def user_errors() -> tuple[type[Exception], ...]:
    """Errors that are the input's fault: printed as one line, exit code 1, no traceback.
    (ModelError covers export.ExportError; importing nothing torch keeps `eval` torch-free.)
    """
    from tacforce_ros.bags import BagError
    from tacforce_ros.inference.contract import ModelError

    return ValueError, KeyError, OSError, BagError, ModelError


def fail(exc: Exception) -> int:
    print(f"error: {exc}", file=sys.stderr)
    return 1


def record_in_card(card: Path, data: str, report: str, title: str = "Held-out evaluation",
                   note: str = "") -> None:
    """Replace (or append) the model card's ``## title`` section with these results, an optional
    note and the command that made them; other sections stay as they are.
    """
    text = card.read_text(encoding="utf-8") if card.is_file() else ""
    heading = f"## {title}"
    if heading in text:
        before, rest = text.split(heading, 1)
        after = rest.split("\n## ", 1)
        text = before.rstrip() + ("\n\n## " + after[1] if len(after) == 2 else "")
    text = text.rstrip() + "\n\n"
    text += f"{heading}\n\nData: {data}\n\n```\n{report}\n```\n\n"
    text += f"{note}\n\n" if note else ""
    text += f"Made by:\n\n```\n{command_line()}\n```\n"
    card.write_text(text, encoding="utf-8")
