"""Bags written with BagWriter, read back with rosbags, recovered explicitly after a kill, and
paired with load_tactile_pairs.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from rosbags.rosbag2 import Reader

from tacforce_ros.bags import (
    COMPRESSED_IMAGE,
    IMAGE,
    STRING,
    WRENCH,
    BagError,
    BagWriter,
    EpisodeError,
    default_typestore,
    episode_message_json,
    needs_recovery,
    open_bag,
    parse_episode,
    read_messages,
    recover_bag,
)
from tacforce_ros.cli import main as cli_main
from tacforce_ros.data.tactile_pairs import TactilePairs, interpolate_wrench, load_tactile_pairs
from tacforce_ros.perception.compressed import encode_compressed
from tacforce_ros.perception.image import encode_image_fields

REPO = Path(__file__).resolve().parents[1]
TS = default_typestore()
T0 = 1_700_000_000_000_000_000
MS = 1_000_000


def stamp(ns: int) -> object:
    return TS.types["builtin_interfaces/msg/Time"](sec=ns // 10**9, nanosec=ns % 10**9)


def header(ns: int, frame_id: str = "sensor") -> object:
    return TS.types["std_msgs/msg/Header"](stamp=stamp(ns), frame_id=frame_id)


def force_at(ns: int) -> np.ndarray:
    """Synthetic wrench, linear in time, so interpolation has an exact answer."""
    t = (ns - T0) / 1e9
    return np.array([2.0 * t, -3.0 * t + 1.0, 0.5, 0.1 * t, 0.0, -t])


def wrench_msg(ns: int, frame_id: str = "ft_sensor") -> object:
    v = force_at(ns)
    vec = TS.types["geometry_msgs/msg/Vector3"]
    wrench = TS.types["geometry_msgs/msg/Wrench"](force=vec(*v[:3]), torque=vec(*v[3:]))
    return TS.types[WRENCH](header=header(ns, frame_id), wrench=wrench)


def image_msg(ns: int, array: np.ndarray, encoding: str) -> object:
    fields = encode_image_fields(array, encoding)
    fields["data"] = np.frombuffer(fields["data"], np.uint8)
    return TS.types[IMAGE](header=header(ns), **fields)


def compressed_msg(ns: int, array: np.ndarray, fmt: str) -> object:
    fmt_string, data = encode_compressed(array, fmt)  # type: ignore[arg-type]
    return TS.types[COMPRESSED_IMAGE](
        header=header(ns), format=fmt_string, data=np.frombuffer(data, np.uint8)
    )


def frame(index: int, channels: int = 1, size: tuple[int, int] = (6, 8)) -> np.ndarray:
    """Make a frame whose pixels encode its index, so tests can tell frames apart."""
    base = np.arange(size[0] * size[1] * channels, dtype=np.int64).reshape(*size, channels)
    return ((base + 7 * index) % 251).astype(np.uint8)


def write_bag(
    path: Path,
    image_stamps: list[int],
    wrench_stamps: list[int],
    *,
    encoding: str = "mono8",
    compressed: str | None = None,
    episodes: list[str] | None = None,
    storage: str = "mcap",
    wrench_frame: str = "ft_sensor",
) -> Path:
    with BagWriter(path, storage=storage) as writer:  # type: ignore[arg-type]
        writer.add_topic("/tactile/image", COMPRESSED_IMAGE if compressed else IMAGE)
        writer.add_topic("/ft/wrench", WRENCH)
        if episodes is not None:
            writer.add_topic("/episode", STRING)
            for i, data in enumerate(episodes):
                writer.write_msg("/episode", T0 + i, TS.types[STRING](data=data))
        for ns in wrench_stamps:
            writer.write_msg("/ft/wrench", ns, wrench_msg(ns, wrench_frame))
        channels = 1 if encoding == "mono8" else 3
        for i, ns in enumerate(image_stamps):
            array = frame(i, channels)
            if compressed:
                writer.write_msg("/tactile/image", ns, compressed_msg(ns, array, compressed))
            else:
                writer.write_msg("/tactile/image", ns, image_msg(ns, array, encoding))
    return path


def wrench_grid(start_ms: int, stop_ms: int, every_ms: int = 4) -> list[int]:
    return [T0 + t * MS for t in range(start_ms, stop_ms, every_ms)]


def load(bags: list[Path], **kwargs: Any) -> TactilePairs:
    return load_tactile_pairs(bags, "/tactile/image", "/ft/wrench", **kwargs)


def test_written_bag_reads_with_rosbags_directly(tmp_path: Path) -> None:
    images = [T0 + t * MS for t in (10, 43, 77)]
    bag = write_bag(tmp_path / "bag", images, wrench_grid(0, 100), encoding="rgb8")
    assert (bag / "metadata.yaml").exists()
    assert not needs_recovery(bag)
    with Reader(bag) as reader:
        assert {t: i.msgcount for t, i in reader.topics.items()} == {
            "/tactile/image": 3,
            "/ft/wrench": 25,
        }
        conns = [c for c in reader.connections if c.topic == "/tactile/image"]
        msgs = [TS.deserialize_cdr(raw, IMAGE) for _, _, raw in reader.messages(conns)]
    assert [m.encoding for m in msgs] == ["rgb8"] * 3
    np.testing.assert_array_equal(msgs[1].data.reshape(6, 8, 3), frame(1, 3))
    topics = [m.topic for m in read_messages(bag, ["/tactile/image"])]
    assert topics == ["/tactile/image"] * 3


def test_pairs_interpolate_linearly_and_count_drops(tmp_path: Path) -> None:
    # Wrenches every 4 ms over [0, 200) ms with a hole over [100, 140) ms.
    wrenches = [ns for ns in wrench_grid(0, 200) if not T0 + 100 * MS <= ns < T0 + 140 * MS]
    inside = [T0 + t * MS + 1357 for t in (5, 21, 50, 83)]  # between samples
    exact = [T0 + 60 * MS]  # on a sample
    hole = [T0 + 120 * MS]  # 24 ms from the nearest wrench
    outside = [T0 - 5 * MS, T0 + 250 * MS]
    bag = write_bag(tmp_path / "bag", sorted(inside + exact + hole + outside), wrenches)

    pairs = load([bag], tolerance_s=0.01)
    assert pairs.stats.images_read == 8
    assert pairs.stats.paired == 5
    assert pairs.stats.dropped_no_wrench == 3
    assert pairs.stats.wrenches_read == len(wrenches)
    [seq] = pairs.sequences
    stamps = sorted(inside + exact)
    np.testing.assert_array_equal(seq.stamps_ns, stamps)
    expected = np.array([force_at(ns) for ns in stamps], dtype=np.float32)
    np.testing.assert_allclose(seq.forces, expected[:, :3], rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(seq.torques, expected[:, 3:], rtol=1e-6, atol=1e-6)
    assert seq.forces.dtype == np.float32
    assert seq.images.shape == (5, 6, 8, 1)
    assert seq.images.dtype == np.uint8
    assert seq.encoding == "mono8"
    assert "dropped 3 with no wrench within 10 ms" in pairs.summary()
    assert pairs.stats.wrench_frames == {"ft_sensor": len(wrenches)}
    assert pairs.force_frame == "ft_sensor"  # the labels' frame: the model's output frame


def test_force_frame_is_the_wrench_frame_id_and_must_agree(tmp_path: Path) -> None:
    images, wrenches = [T0 + 20 * MS], wrench_grid(0, 40)
    a = write_bag(tmp_path / "a", images, wrenches, wrench_frame="nano17")
    b = write_bag(tmp_path / "b", images, wrenches, wrench_frame="nano17")
    c = write_bag(tmp_path / "c", images, wrenches, wrench_frame="mini45")
    unnamed = write_bag(tmp_path / "d", images, wrenches, wrench_frame="")
    assert load([a, b]).force_frame == "nano17"
    assert load([unnamed]).force_frame == ""  # not recorded: the node falls back to the image's frame
    with pytest.raises(ValueError, match=r"wrenches in several frames \['mini45', 'nano17'\]"):
        load([a, c]).force_frame


def test_undecodable_images_are_dropped_and_counted(tmp_path: Path) -> None:
    bag = tmp_path / "bag"
    with BagWriter(bag) as writer:
        writer.add_topic("/tactile/image", IMAGE)
        writer.add_topic("/ft/wrench", WRENCH)
        for ns in wrench_grid(0, 100):
            writer.write_msg("/ft/wrench", ns, wrench_msg(ns))
        good = image_msg(T0 + 10 * MS, frame(0), "mono8")
        writer.write_msg("/tactile/image", T0 + 10 * MS, good)
        bad = [  # (stamp, encoding, data): unsupported encoding, truncated data
            (T0 + 20 * MS, "yuv422", np.zeros(96, np.uint8)),
            (T0 + 30 * MS, "mono8", np.zeros(10, np.uint8)),
        ]
        for ns, encoding, data in bad:
            msg = TS.types[IMAGE](
                header=header(ns), height=6, width=8, encoding=encoding,
                is_bigendian=0, step=16, data=data,
            )
            writer.write_msg("/tactile/image", ns, msg)
    pairs = load([bag])
    assert (pairs.stats.paired, pairs.stats.dropped_bad_image) == (1, 2)
    assert "2 undecodable" in pairs.summary()


def test_rclpy_serialized_messages_take_the_cdr_path(tmp_path: Path) -> None:
    from builtin_interfaces.msg import Time
    from geometry_msgs.msg import WrenchStamped
    from rclpy.serialization import serialize_message
    from sensor_msgs.msg import Image

    bag = tmp_path / "bag"
    images = [T0 + t * MS for t in (11, 22, 33)]
    with BagWriter(bag) as writer:
        writer.add_topic("/tactile/image", IMAGE)
        writer.add_topic("/ft/wrench", WRENCH)
        for ns in wrench_grid(0, 50):
            msg = WrenchStamped()
            msg.header.stamp = Time(sec=ns // 10**9, nanosec=ns % 10**9)
            f = force_at(ns)
            msg.wrench.force.x, msg.wrench.force.y, msg.wrench.force.z = f[:3]
            msg.wrench.torque.x, msg.wrench.torque.y, msg.wrench.torque.z = f[3:]
            writer.write("/ft/wrench", ns, serialize_message(msg))
        for i, ns in enumerate(images):
            msg = Image(**encode_image_fields(frame(i, 3), "bgr8"))
            msg.header.stamp = Time(sec=ns // 10**9, nanosec=ns % 10**9)
            writer.write("/tactile/image", ns, serialize_message(msg))

    with Reader(bag) as reader:
        raws = [raw for c, _, raw in reader.messages() if c.topic == "/tactile/image"]
    assert TS.deserialize_cdr(raws[2], IMAGE).encoding == "bgr8"

    [seq] = load([bag]).sequences
    assert seq.encoding == "rgb8"  # colour frames always come out RGB
    np.testing.assert_array_equal(seq.images[2], frame(2, 3)[:, :, ::-1])
    expected = np.array([force_at(ns)[:3] for ns in images], dtype=np.float32)
    np.testing.assert_allclose(seq.forces, expected, rtol=1e-6, atol=1e-6)


def test_episode_topic_splits_sequences_and_counts_malformed(tmp_path: Path) -> None:
    def mark(ms: int, episode: int, phase: str) -> str:
        return episode_message_json(
            stamp_ns=T0 + ms * MS, episode=episode, indenter="sphere_5mm",
            position_id=episode * 10, depth_m=0.001 * episode, phase=phase,
        )

    episodes = [
        mark(0, 1, "approach"),
        mark(20, 1, "press"),
        "not json",
        '__import__("os").system("false")',
        '{"stamp_ns": 5, "episode": "2"}',
        "[1, 2]",
        mark(50, 2, "approach"),
        mark(80, 3, "approach"),
    ]
    images = [T0 + t * MS for t in range(2, 100, 8)]  # no time gaps at all
    bag = write_bag(tmp_path / "bag", images, wrench_grid(0, 110), episodes=episodes)
    pairs = load([bag], episode_topic="/episode")
    assert pairs.stats.episodes_malformed == 4
    assert [s.episode["episode"] for s in pairs.sequences] == [1, 2, 3]
    assert [len(s) for s in pairs.sequences] == [6, 4, 3]
    first = pairs.sequences[0]
    assert first.episode == {
        "episode": 1, "indenter": "sphere_5mm", "position_id": 10, "depth_m": 0.001,
    }
    assert first.phases == ("approach",) * 3 + ("press",) * 3
    assert pairs.stats.sequences == 3
    assert "4 malformed episode message(s)" in pairs.summary()


def test_gap_splitting_without_episode_topic(tmp_path: Path) -> None:
    images = [T0 + t * MS for t in [*range(0, 100, 10), *range(300, 400, 10), 460]]
    bag = write_bag(tmp_path / "bag", images, wrench_grid(0, 500))
    pairs = load([bag])
    assert [len(s) for s in pairs.sequences] == [10, 10, 1]
    # An episode topic that the bag lacks falls back to gap splitting too.
    again = load([bag], episode_topic="/episode")
    assert [len(s) for s in again.sequences] == [10, 10, 1]
    assert all(s.episode is None and s.phases is None for s in again.sequences)


@pytest.mark.parametrize(("fmt", "channels"), [("png", 3), ("jpeg", 1)])
def test_compressed_image_topic(tmp_path: Path, fmt: str, channels: int) -> None:
    images = [T0 + t * MS for t in (10, 20, 30)]
    bag = write_bag(
        tmp_path / "bag", images, wrench_grid(0, 50),
        encoding="mono8" if channels == 1 else "bgr8", compressed=fmt,
    )
    [seq] = load([bag]).sequences
    assert seq.images.shape == (3, 6, 8, channels)
    if fmt == "png":  # lossless: stored BGR, loaded RGB
        assert seq.encoding == "rgb8"
        np.testing.assert_array_equal(seq.images[1], frame(1, 3)[:, :, ::-1])
    else:
        assert seq.encoding == "mono8"


def test_sqlite3_bag_is_readable(tmp_path: Path) -> None:
    images = [T0 + t * MS for t in (10, 20, 30)]
    bag = write_bag(tmp_path / "bag", images, wrench_grid(0, 50), storage="sqlite3")
    assert (bag / "bag.db3").exists()
    with Reader(bag) as reader:
        assert reader.message_count == 3 + 13
    [seq] = load([bag]).sequences
    assert len(seq) == 3
    np.testing.assert_array_equal(seq.images[0], frame(0))


def test_many_bags_mixed_encodings_max_frames_and_transform(tmp_path: Path) -> None:
    images = [T0 + t * MS for t in range(10, 90, 10)]
    wrenches = wrench_grid(0, 100)
    bags = [
        write_bag(tmp_path / enc, images, wrenches, encoding=enc)
        for enc in ("mono8", "rgb8", "bgr8")
    ]
    pairs = load(bags)
    assert [s.encoding for s in pairs.sequences] == ["mono8", "rgb8", "rgb8"]
    np.testing.assert_array_equal(pairs.sequences[1].images[3], frame(3, 3))
    np.testing.assert_array_equal(pairs.sequences[2].images[3], frame(3, 3)[:, :, ::-1])
    assert pairs.sequences[2].bag == str(bags[2])

    capped = load(bags, max_frames=11, transform=lambda im: im[::2, ::2])
    assert [len(s) for s in capped.sequences] == [8, 3]
    assert capped.stats.paired == 11
    assert capped.sequences[0].images.shape == (8, 3, 4, 1)


def test_wrong_topic_names_are_explained(tmp_path: Path) -> None:
    bag = write_bag(tmp_path / "bag", [T0], wrench_grid(0, 10))
    with pytest.raises(BagError, match=r"no topic '/camera'.*/ft/wrench \[geometry_msgs"):
        load_tactile_pairs([bag], "/camera", "/ft/wrench")
    with pytest.raises(BagError, match="topic '/ft/wrench' has type geometry_msgs"):
        load_tactile_pairs([bag], "/ft/wrench", "/ft/wrench")


def test_interpolate_wrench_tolerance_is_inclusive() -> None:
    stamps = np.array([0, 10, 20], dtype=np.int64)
    values = np.array([[0.0], [1.0], [3.0]])
    assert interpolate_wrench(stamps, values, 15, 5)[0] == 2.0
    assert interpolate_wrench(stamps, values, 10, 0)[0] == 1.0
    assert interpolate_wrench(stamps, values, 14, 4) is None
    assert interpolate_wrench(stamps, values, -1, 100) is None
    assert interpolate_wrench(stamps, values, 21, 100) is None


def test_episode_json_round_trip_and_rejects() -> None:
    text = episode_message_json(
        stamp_ns=5, episode=2, indenter="flat", position_id=3, depth_m=0.002, phase="press"
    )
    mark = parse_episode(text)
    assert (mark.stamp_ns, mark.episode, mark.depth_m, mark.phase) == (5, 2, 0.002, "press")
    valid = {"stamp_ns": 1, "episode": 1, "indenter": "a", "position_id": 1,
             "depth_m": 1, "phase": "p"}
    assert parse_episode(str(valid).replace("'", '"')).depth_m == 1.0
    for bad, words in [
        ("{", "not JSON"),
        ('"x"', "must be a JSON object"),
        ('{"episode": 1}', "lacks field 'stamp_ns'"),
        (text.replace('"episode": 2', '"episode": true'), "'episode' must be int"),
        (text.replace("0.002", "NaN"), "depth_m must be finite"),
    ]:
        with pytest.raises(EpisodeError, match=words):
            parse_episode(bad)


# --------------------------------------------------------------------------- durability

WRITER_CHILD = textwrap.dedent(
    """
    import sys
    sys.path.insert(0, {repo!r})
    import numpy as np
    from tacforce_ros.bags import BagWriter, default_typestore
    ts = default_typestore()
    Time = ts.types['builtin_interfaces/msg/Time']
    Header = ts.types['std_msgs/msg/Header']
    Image = ts.types['sensor_msgs/msg/Image']
    pixels = np.zeros(64 * 48, np.uint8)
    writer = BagWriter({bag!r}, storage={storage!r}, flush_every=25, flush_interval_s=60)
    writer.add_topic('/tactile/image', 'sensor_msgs/msg/Image')
    reported = 0
    i = 0
    while True:
        pixels[:4] = np.frombuffer(i.to_bytes(4, 'little'), np.uint8)
        msg = Image(header=Header(stamp=Time(sec=i, nanosec=0), frame_id=''), height=48,
                    width=64, encoding='mono8', is_bigendian=0, step=64, data=pixels)
        writer.write_msg('/tactile/image', {t0} + i, msg)
        i += 1
        if writer.flushed_count != reported:
            reported = writer.flushed_count
            print(reported, flush=True)
    """
)


def kill_writer_after(bag: Path, storage: str, min_flushed: int) -> int:
    """Run a writer in a child, SIGKILL it mid-stream; return the most it reported flushed."""
    code = WRITER_CHILD.format(repo=str(REPO), bag=str(bag), storage=storage, t0=T0)
    child = subprocess.Popen(
        [sys.executable, "-c", code], stdout=subprocess.PIPE, text=True, bufsize=1
    )
    flushed = 0
    try:
        assert child.stdout is not None
        for line in child.stdout:
            flushed = int(line)
            if flushed >= min_flushed:
                break
        time.sleep(0.02)  # let it run on, so the kill lands anywhere in the stream
        os.kill(child.pid, signal.SIGKILL)
        rest, _ = child.communicate(timeout=10)
    finally:
        if child.poll() is None:
            child.kill()
    flushed = max([flushed, *map(int, rest.split())])
    assert child.returncode == -signal.SIGKILL
    assert flushed >= min_flushed, "child died before flushing enough"
    return flushed


def snapshot(bag: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(bag.iterdir())}


@pytest.mark.parametrize("storage", ["mcap", "sqlite3"])
def test_sigkilled_writer_keeps_every_flushed_message(
    tmp_path: Path, storage: str, capsys: pytest.CaptureFixture[str]
) -> None:
    bag = tmp_path / "killed"
    flushed = kill_writer_after(bag, storage, min_flushed=200)
    assert not (bag / "metadata.yaml").exists()
    assert needs_recovery(bag)

    before = snapshot(bag)
    with pytest.raises(BagError, match=rf"unfinished.*`tacforce bag recover {bag}`"):
        next(read_messages(bag))
    assert snapshot(bag) == before  # reading never rewrites a bag

    assert cli_main(["bag", "recover", str(bag)]) == 0
    [line] = capsys.readouterr().out.splitlines()
    assert line.startswith(f"{bag}: ") and "messages readable" in line
    assert not needs_recovery(bag)
    with open_bag(bag) as reader:
        stamps = [ts for _, ts, _ in reader.messages()]
    assert (bag / "metadata.yaml").exists()
    assert len(stamps) >= flushed
    assert stamps == [T0 + i for i in range(len(stamps))]  # complete, in order, no gaps

    with Reader(bag) as reader:  # plain rosbags reads the recovered bag too
        raws = [raw for _, _, raw in reader.messages()]
        assert reader.message_count == len(stamps)
    last = TS.deserialize_cdr(raws[-1], IMAGE)
    assert int.from_bytes(bytes(last.data[:4]), "little") == len(stamps) - 1


def test_recovery_drops_a_truncated_tail(tmp_path: Path) -> None:
    bag = tmp_path / "killed"
    flushed = kill_writer_after(bag, "mcap", min_flushed=50)
    with (bag / "killed.mcap").open("ab") as f:
        f.write(b"\x06" + (10_000).to_bytes(8, "little") + b"partial")  # a half-written chunk
    result = recover_bag(bag)
    assert result.rewritten == ("killed.mcap",)
    assert result.dropped_bytes >= 16
    assert result.message_count >= flushed
    assert not needs_recovery(bag)
    assert len(list(read_messages(bag))) == result.message_count


def test_recovery_refuses_a_bag_a_live_writer_holds(tmp_path: Path) -> None:
    with BagWriter(tmp_path / "live") as writer:
        writer.add_topic("/ft/wrench", WRENCH)
        writer.write_msg("/ft/wrench", T0, wrench_msg(T0))
        writer.flush()
        with pytest.raises(BagError, match="being written by a live process"):
            recover_bag(tmp_path / "live")
        with pytest.raises(BagError, match="still being recorded"):
            next(read_messages(tmp_path / "live"))
    assert len(list(read_messages(tmp_path / "live"))) == 1


def test_recover_command_reports_errors_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "empty").mkdir()
    assert cli_main(["bag", "recover", str(tmp_path / "empty")]) == 1
    [line] = capsys.readouterr().err.splitlines()
    assert line == f'tacforce bag recover: {tmp_path / "empty"} holds no .mcap or .db3 file to recover'
