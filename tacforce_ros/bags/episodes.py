"""The episode-mark protocol: one JSON mark per phase change on a std_msgs/String topic.

Recorders write marks with ``episode_message_json``; readers parse them with
``parse_episode``, which accepts nothing but the documented fields and types,
so a malformed mark is counted and skipped instead of mislabelling frames.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from typing import Any


class EpisodeError(ValueError):
    """An episode message whose JSON is malformed."""


@dataclass(frozen=True)
class EpisodeMark:
    """From ``stamp_ns`` on, frames belong to this episode and phase."""

    stamp_ns: int
    episode: int
    indenter: str
    position_id: int
    depth_m: float
    phase: str

    def info(self) -> dict[str, Any]:
        """Per-episode fields (the phase changes within an episode)."""
        return {
            "episode": self.episode,
            "indenter": self.indenter,
            "position_id": self.position_id,
            "depth_m": self.depth_m,
        }


_EPISODE_TYPES: dict[str, tuple[type, ...]] = {
    "stamp_ns": (int,),
    "episode": (int,),
    "indenter": (str,),
    "position_id": (int,),
    "depth_m": (int, float),
    "phase": (str,),
}


def episode_message_json(
    *,
    stamp_ns: int,
    episode: int,
    indenter: str,
    position_id: int,
    depth_m: float,
    phase: str,
) -> str:
    """JSON for the std_msgs/String episode topic."""
    mark = EpisodeMark(
        int(stamp_ns), int(episode), str(indenter), int(position_id), float(depth_m), str(phase)
    )
    return json.dumps(asdict(mark), allow_nan=False)


def parse_episode(data: str) -> EpisodeMark:
    """Parse episode JSON (json.loads only); raise EpisodeError naming what is wrong."""
    try:
        obj = json.loads(data)
    except (json.JSONDecodeError, TypeError, RecursionError) as exc:
        msg = f"episode message is not JSON: {exc}"
        raise EpisodeError(msg) from None
    if not isinstance(obj, dict):
        msg = f"episode message must be a JSON object, got {type(obj).__name__}"
        raise EpisodeError(msg)
    for key, types in _EPISODE_TYPES.items():
        if key not in obj:
            msg = f"episode message lacks field {key!r}"
            raise EpisodeError(msg)
        value = obj[key]
        if isinstance(value, bool) or not isinstance(value, types):
            names = "/".join(t.__name__ for t in types)
            msg = f"episode field {key!r} must be {names}, got {value!r}"
            raise EpisodeError(msg)
    if not math.isfinite(obj["depth_m"]):
        msg = f'episode field depth_m must be finite, got {obj["depth_m"]!r}'
        raise EpisodeError(msg)
    return EpisodeMark(
        stamp_ns=obj["stamp_ns"],
        episode=obj["episode"],
        indenter=obj["indenter"],
        position_id=obj["position_id"],
        depth_m=float(obj["depth_m"]),
        phase=obj["phase"],
    )
