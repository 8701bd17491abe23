"""Camera image subscriptions the way image_transport names them, for every node."""
from __future__ import annotations

from typing import Callable

from sensor_msgs.msg import CompressedImage, Image

from .qos import sensor_qos

TRANSPORTS = ("raw", "compressed")


def subscribe_image(node, topic: str, transport: str, on_raw: Callable[[Image], None],
                    on_compressed: Callable[[CompressedImage], None], depth: int = 1) -> None:
    """'raw': sensor_msgs/Image on ``topic``; 'compressed': CompressedImage on ``topic``/compressed.
    Sensor-data QoS keeping the newest ``depth`` frames (1: only the newest waits). Anything
    else stops start-up with a message naming the node."""
    if not 1 <= depth <= 100:
        raise SystemExit(f"{node.get_name()}: queue_depth must be 1..100, not {depth}")
    if transport == "raw":
        node.create_subscription(Image, topic, on_raw, sensor_qos(depth))
    elif transport == "compressed":
        node.create_subscription(CompressedImage, topic + "/compressed", on_compressed, sensor_qos(depth))
    else:
        raise SystemExit(f"{node.get_name()}: image_transport must be "
                         f"{' or '.join(repr(t) for t in TRANSPORTS)}, not {transport!r}")
