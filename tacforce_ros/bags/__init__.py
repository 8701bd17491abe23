"""rosbag2 bags: writing (writer), explicit recovery (recovery), reading (reading), episode marks.

Pairing images with wrenches for training lives in ``tacforce_ros.data.tactile_pairs``.
"""

from .episodes import EpisodeError, EpisodeMark, episode_message_json, parse_episode
from .reading import BagMessage, open_bag, read_messages, stamp_to_ns
from .recovery import Recovery, needs_recovery, recover_bag
from .writer import (
    COMPRESSED_IMAGE,
    IMAGE,
    STRING,
    WRENCH,
    BagError,
    BagWriter,
    default_typestore,
)

__all__ = [
    "COMPRESSED_IMAGE",
    "IMAGE",
    "STRING",
    "WRENCH",
    "BagError",
    "BagMessage",
    "BagWriter",
    "EpisodeError",
    "EpisodeMark",
    "Recovery",
    "default_typestore",
    "episode_message_json",
    "needs_recovery",
    "open_bag",
    "parse_episode",
    "read_messages",
    "recover_bag",
    "stamp_to_ns",
]
