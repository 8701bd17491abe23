"""Camera image subscriptions the way image_transport names them, for every node."""
from __future__ import annotations

from typing import Callable

import numpy as np
from sensor_msgs.msg import CompressedImage, Image

from ..perception.image import decode_compressed, decode_image, image_order, to_model_channels
from ..perception.pixels import MODEL_ORDER, ColorOrder
from ..perception.stats import StageStats
from .checks import checked_stamp
from .qos import sensor_qos

TRANSPORTS = ("raw", "compressed")


def subscribe_image(node, topic: str, transport: str, on_raw: Callable[[Image], None],
                    on_compressed: Callable[[CompressedImage], None], depth: int = 1, *,
                    stats: StageStats) -> None:
    """'raw': sensor_msgs/Image on ``topic``; 'compressed': CompressedImage on ``topic``/compressed.
    Sensor-data QoS keeping the newest ``depth`` frames (1: only the newest waits). Frames with
    a bad header stamp are counted in ``stats`` and dropped before the callbacks. Anything else
    stops start-up with a message naming the node.
    """
    if not 1 <= depth <= 100:
        raise SystemExit(f"{node.get_name()}: queue_depth must be 1..100, not {depth}")
    if transport == "raw":
        node.create_subscription(Image, topic, checked_stamp(node, stats, on_raw), sensor_qos(depth))
    elif transport == "compressed":
        node.create_subscription(CompressedImage, topic + "/compressed", checked_stamp(node, stats, on_compressed),
                                 sensor_qos(depth))
    else:
        raise SystemExit(f"{node.get_name()}: image_transport must be "
                         f"{' or '.join(repr(t) for t in TRANSPORTS)}, not {transport!r}")


def decode_any(msg: Image | CompressedImage, max_pixels: int) -> tuple[np.ndarray, ColorOrder]:
    """Decode a raw or compressed frame as uint8 HxWxC and its channel order (compressed colour is BGR)."""
    if isinstance(msg, CompressedImage):
        image = decode_compressed(msg, max_pixels=max_pixels)
        return image, "gray" if image.shape[2] == 1 else "bgr"
    return decode_image(msg, max_pixels=max_pixels), image_order(msg.encoding)


def decode_for_model(msg: Image | CompressedImage, encoding: str, max_pixels: int) -> np.ndarray:
    """Decode a raw or compressed frame into the channels of a model whose input is ``encoding`` (mono8,
    rgb8, bgr8): any camera encoding reaches any model the way it was trained.
    """
    image, order = decode_any(msg, max_pixels)
    return to_model_channels(image, order, MODEL_ORDER[encoding])
