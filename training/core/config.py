"""to_dict / from_dict for every config dataclass (loop, task and model configs), written once.

Checkpoints hold configs as plain dicts and lists, so they load with weights_only=True and read
back on a later version of the class: keys it no longer has are dropped, new ones take their
defaults, nested configs and tuples are rebuilt from the field types.
"""
from __future__ import annotations

import types
import typing
from dataclasses import asdict, fields


class DictConfig:
    """Mixin for a config dataclass stored in checkpoints and ONNX metadata as plain data."""

    def to_dict(self) -> dict:
        return _plain(asdict(self))

    @classmethod
    def from_dict(cls, d: dict):
        """Build from ``to_dict`` output (of this or another version of the class)."""
        hints = typing.get_type_hints(cls)
        return cls(**{f.name: _typed(hints[f.name], d[f.name]) for f in fields(cls) if f.name in d})


def _plain(value):
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def _typed(hint, value):
    """``value`` as the field type ``hint`` wants it: a nested config from its dict, a tuple from a list."""
    options = typing.get_args(hint) if isinstance(hint, types.UnionType) else (hint,)
    for option in options:
        if isinstance(value, dict) and isinstance(option, type) and issubclass(option, DictConfig):
            return option.from_dict(value)
        if isinstance(value, list) and typing.get_origin(option) is tuple:
            return tuple(value)
    return value
