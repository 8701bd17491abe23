"""Guards every node shares: a header stamp must be a time, and nothing non-finite goes out."""
from __future__ import annotations

import array
import math
from typing import Callable

import numpy as np
from rclpy.node import Node

from ..perception.stats import StageStats


def stamp_problem(stamp) -> str | None:
    """Why a builtin_interfaces/Time is not a time (nanosec >= 1e9, negative sec), or None."""
    if stamp.nanosec >= 1_000_000_000:
        return f"header stamp nanosec {stamp.nanosec} is not below 1e9"
    if stamp.sec < 0:
        return f"header stamp sec {stamp.sec} is negative"
    return None


def checked_stamp(node: Node, stats: StageStats, callback: Callable, what: str = "frame") -> Callable:
    """Wrap ``callback`` for messages with a valid header stamp; any other is counted (errors_stamp),
    logged and dropped, so a bad stamp is never copied into an output.
    """
    def guarded(msg) -> None:
        problem = stamp_problem(msg.header.stamp)
        if problem:
            stats.error("stamp")
            node.get_logger().warning(f"{what} rejected: {problem}", throttle_duration_sec=2.0)
            return
        callback(msg)
    return guarded


def non_finite_field(msg) -> str | None:
    """Return the first float field of a message (nested messages and arrays included) that is NaN
    or infinite, as a path such as 'poses[2].position.x'; None when all are finite.
    """
    for name in msg.get_fields_and_field_types():
        value = getattr(msg, name)
        if isinstance(value, float):
            bad = not math.isfinite(value)
        elif isinstance(value, array.array):
            bad = value.typecode in "fd" and not np.isfinite(np.frombuffer(value, value.typecode)).all()
        elif isinstance(value, np.ndarray):
            bad = value.dtype.kind == "f" and not np.isfinite(value).all()
        elif isinstance(value, list):
            for i, item in enumerate(value):
                inner = non_finite_field(item) if hasattr(item, "get_fields_and_field_types") else None
                if inner:
                    return f"{name}[{i}].{inner}"
            continue
        elif hasattr(value, "get_fields_and_field_types"):
            inner = non_finite_field(value)
            if inner:
                return f"{name}.{inner}"
            continue
        else:
            continue
        if bad:
            return name
    return None


def publish_finite(node: Node, publisher, msg, stats: StageStats) -> bool:
    """Publish ``msg`` unless a number in it is NaN or infinite (counted as errors_non_finite
    and logged): no subscriber ever sees one. Returns whether it was published.
    """
    field = non_finite_field(msg)
    if field:
        stats.error("non_finite")
        node.get_logger().warning(f"{publisher.topic_name}: not published, {field} is not finite",
                                  throttle_duration_sec=2.0)
        return False
    publisher.publish(msg)
    return True
