"""Child process for node tests: publishes simulated tactile frames (and bad ones) on
/tactile/image_raw at a fixed rate, each stamped with a known, unique time.

    python test/publish_images.py COUNT RATE [--bad] [--compressed]

With --bad every 4th message is a bad frame (wrong encoding, step/size mismatch, truncated
data, zero or huge size; with --compressed a truncated or corrupt PNG), marked by frame_id
'bad'. --compressed publishes PNG sensor_msgs/CompressedImage on /tactile/image_raw/compressed.
--base-sec S stamps frame k at S + k s (default 1000); --ros-args -r remaps the topic.
Prints 'sent N good M bad' when done.
"""
import sys
import time

import rclpy
from sensor_msgs.msg import CompressedImage, Image

from tacforce_ros.perception.compressed import encode_compressed
from tacforce_ros.perception.image import encode_image_fields
from tacforce_ros.ros.qos import sensor_qos
from tacforce_ros.sim.sensors import SimConfig, SimulatedSensors

BASE_SEC = 1000


def bad_frames(good: Image):
    def variant(**changes):
        msg = Image(header=good.header, height=good.height, width=good.width, encoding=good.encoding,
                    step=good.step, data=bytes(good.data))
        for key, value in changes.items():
            setattr(msg, key, value)
        msg.header.frame_id = "bad"
        return msg
    return [variant(encoding="rgb8"), variant(step=good.width - 1), variant(data=bytes(good.data)[:1000]),
            variant(height=0, width=0, step=0, data=b""), variant(height=100000, width=100000, step=100000),
            variant(encoding="32FC1")]


def main() -> None:
    count, rate = int(sys.argv[1]), float(sys.argv[2])
    with_bad = "--bad" in sys.argv
    compressed = "--compressed" in sys.argv
    base = int(sys.argv[sys.argv.index("--base-sec") + 1]) if "--base-sec" in sys.argv else BASE_SEC
    sensors = SimulatedSensors(SimConfig(indenters=("cone",), positions=1, shear_points=2))
    frames = [sensors.image(0.2 + 3.0 * k / count)[0] for k in range(min(count, 40))]
    rclpy.init()
    node = rclpy.create_node("test_image_publisher")
    if compressed:
        pub = node.create_publisher(CompressedImage, "/tactile/image_raw/compressed", sensor_qos(depth=5))
        pngs = [encode_compressed(f, "png") for f in frames]
    else:
        pub = node.create_publisher(Image, "/tactile/image_raw", sensor_qos(depth=5))
    end = time.monotonic() + 30
    while pub.get_subscription_count() == 0 and time.monotonic() < end:
        rclpy.spin_once(node, timeout_sec=0.05)
    time.sleep(1.0)
    good = bad = 0
    period = 1.0 / rate
    next_t = time.monotonic()
    for k in range(count):
        if compressed:
            fmt, data = pngs[k % len(pngs)]
            msg = CompressedImage(format=fmt, data=data)
        else:
            msg = Image(**encode_image_fields(frames[k % len(frames)], "mono8"))
        msg.header.stamp.sec, msg.header.stamp.nanosec = base + k, 123
        msg.header.frame_id = "tactile_sensor_test"
        if with_bad and k % 4 == 3 and compressed:
            msg.data = bytes(msg.data)[: len(msg.data) // 2] if k % 8 == 3 else b"\x89PNG garbage"
            msg.header.frame_id = "bad"
            pub.publish(msg)
            bad += 1
        elif with_bad and k % 4 == 3:
            pub.publish(bad_frames(msg)[(k // 4) % 6])
            bad += 1
        else:
            pub.publish(msg)
            good += 1
        next_t += period
        time.sleep(max(0.0, next_t - time.monotonic()))
    time.sleep(0.5)
    print(f"sent {good} good {bad} bad", flush=True)
    node.destroy_node()
    rclpy.shutdown()


if __name__ == "__main__":
    main()
