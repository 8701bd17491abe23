"""config/collection.yaml -> the protocol and safety settings of a collection run."""
from __future__ import annotations

from dataclasses import dataclass, fields
from pathlib import Path

import numpy as np

from .protocol import ProtocolConfig
from .safety import ForceLimits

NODE_NAME = "collection_node"
RUN_KEYS = ("force_limits", "stale_after", "control_period", "image_rate", "style")
# used by the node only
NODE_KEYS = ("autostart", "robot", "robot_host", "wrench_topic", "base_frame", "dry_run", "simulate_sensors",
             "sim_rdt_port")


@dataclass
class CollectionConfig:
    protocol: ProtocolConfig
    limits: ForceLimits
    stale_after: float = 0.1
    control_period: float = 0.002
    image_rate: float = 20.0
    style: str = "array1"

    @classmethod
    def from_parameters(cls, values: dict) -> "CollectionConfig":
        protocol_keys = {f.name for f in fields(ProtocolConfig)}
        unknown = set(values) - protocol_keys - set(RUN_KEYS) - set(NODE_KEYS)
        if unknown:
            raise ValueError(f"unknown collection parameter(s): {', '.join(sorted(unknown))}")
        protocol = {k: v for k, v in values.items() if k in protocol_keys}
        protocol["start_pose"] = np.asarray(protocol.get("start_pose", ()), float)
        limits = values.get("force_limits")
        return cls(protocol=ProtocolConfig(**protocol),
                   limits=ForceLimits(*limits) if limits is not None else ForceLimits(),
                   **{k: values[k] for k in RUN_KEYS[1:] if k in values})

    @classmethod
    def from_yaml(cls, path: str | Path) -> "CollectionConfig":
        from ..paths import node_parameters
        params = node_parameters(path, NODE_NAME)
        try:
            return cls.from_parameters(params)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"{path}: {exc}") from None
