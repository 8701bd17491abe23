"""Does the recorder keep up? A publisher process sends 640x480 mono8 images at 60 Hz and
WrenchStamped at 1 kHz (numbered in frame_id) for N seconds; recorder_node runs in another
process; then the bag is read back with rosbags and every number is checked.

    python benchmarks/recorder_throughput.py [--seconds 60] [--reliable]
"""
from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

IMAGE_RATE, WRENCH_RATE = 60.0, 1000.0


def publish(seconds: float, reliable: bool) -> tuple[int, int]:
    import rclpy
    from geometry_msgs.msg import WrenchStamped
    from sensor_msgs.msg import Image

    from tacforce_ros.perception.image import encode_image_fields
    from tacforce_ros.ros.qos import output_qos, sensor_qos

    rclpy.init()
    node = rclpy.create_node("bench_sensor_publisher")
    qos = output_qos(depth=100) if reliable else sensor_qos(depth=100)
    image_pub = node.create_publisher(Image, "/tactile/image_raw", qos)
    wrench_pub = node.create_publisher(WrenchStamped, "/ft_sensor/wrench", qos)
    end = time.monotonic() + 30
    while (image_pub.get_subscription_count() == 0 or wrench_pub.get_subscription_count() == 0) \
            and time.monotonic() < end:
        rclpy.spin_once(node, timeout_sec=0.05)
    time.sleep(2.0)
    fields = encode_image_fields(np.random.default_rng(0).integers(0, 255, (480, 640), np.uint8), "mono8")
    start = time.monotonic()
    images = wrenches = 0
    while (now := time.monotonic()) - start < seconds:
        while wrenches < (now - start) * WRENCH_RATE:
            msg = WrenchStamped()
            msg.header.stamp = node.get_clock().now().to_msg()
            msg.header.frame_id = str(wrenches)
            wrench_pub.publish(msg)
            wrenches += 1
        if images < (now - start) * IMAGE_RATE:
            msg = Image(**fields)
            msg.header.stamp = node.get_clock().now().to_msg()
            msg.header.frame_id = str(images)
            image_pub.publish(msg)
            images += 1
        time.sleep(0.001)
    time.sleep(1.0)
    node.destroy_node()
    rclpy.shutdown()
    return images, wrenches


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--reliable", action="store_true", help="reliable QoS publishers (default: sensor data)")
    args = parser.parse_args()
    os.environ.setdefault("ROS_DOMAIN_ID", "94")
    from tacforce_ros.nodes.runner import use_large_image_transport
    use_large_image_transport()
    bag = Path(tempfile.mkdtemp()) / "bench"
    recorder = subprocess.Popen([sys.executable, "-m", "tacforce_ros.nodes.recorder_node", "--ros-args",
                                 "-p", f"output:={bag}", "-p", "topics:=['/tactile/image_raw','/ft_sensor/wrench']"],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(2.0)
    t = time.monotonic()
    images, wrenches = publish(args.seconds, args.reliable)
    span = time.monotonic() - t
    recorder.send_signal(signal.SIGINT)
    recorder.wait(60)

    from tacforce_ros.bags import read_messages
    got = {"/tactile/image_raw": set(), "/ft_sensor/wrench": set()}
    for m in read_messages(bag):
        got[m.topic].add(int(m.msg.header.frame_id))
    size = sum(f.stat().st_size for f in bag.iterdir()) / 1e6
    print(f"recorder_node, {args.seconds:g} s, {'reliable' if args.reliable else 'sensor-data (best effort)'} "
          f"publishers, 640x480 mono8 at {IMAGE_RATE:g} Hz + WrenchStamped at {WRENCH_RATE:g} Hz "
          f"(publisher ran {span:.1f} s with discovery)")
    for topic, sent in (("/tactile/image_raw", images), ("/ft_sensor/wrench", wrenches)):
        missing = sent - len(got[topic] & set(range(sent)))
        print(f"  {topic:20s} sent {sent:6d}  recorded {len(got[topic]):6d}  missing {missing:5d} "
              f"({100 * missing / max(sent, 1):.3f} %)")
    print(f"  bag {size:.0f} MB, {size / args.seconds:.1f} MB/s")


if __name__ == "__main__":
    main()
