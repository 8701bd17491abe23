"""Transport floor for the latency benchmark: a node with the same subscription and publisher
as tactile_force_node that only copies the input stamp into a WrenchStamped.
"""
from geometry_msgs.msg import WrenchStamped
from rclpy.node import Node
from sensor_msgs.msg import Image

from tacforce_ros.ros.qos import output_qos, sensor_qos


class EchoStampNode(Node):
    def __init__(self):
        super().__init__("echo_stamp_node")
        self.pub = self.create_publisher(WrenchStamped, "/estimated_wrench", output_qos())
        self.create_subscription(Image, "/tactile/image_raw", self.on_image, sensor_qos())

    def on_image(self, msg: Image) -> None:
        out = WrenchStamped()
        out.header.stamp = msg.header.stamp
        out.header.frame_id = "tactile_sensor"
        self.pub.publish(out)


def main():
    from tacforce_ros.nodes.runner import spin_nodes
    raise SystemExit(spin_nodes([EchoStampNode]))


if __name__ == "__main__":
    main()
