"""A GenForce indentation run: netft_node (Nano17 over RDT) and collection_node (UR5e) with
config/collection.yaml (override with config:=FILE). Record it with `ros2 bag record` (README).
Both are lifecycle nodes: autostart:=false leaves them unconfigured for `ros2 lifecycle set`.
namespace:=arm2 moves both and their relative topics (ft_sensor/wrench, tcp_pose, tactile/episode).
"""
import os

from ament_index_python.packages import get_package_share_directory
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node


def generate_launch_description():
    share = get_package_share_directory("tacforce")
    config = LaunchConfiguration("config")
    parameters = [config, {"autostart": LaunchConfiguration("autostart")}]
    namespace = LaunchConfiguration("namespace")
    return LaunchDescription([
        DeclareLaunchArgument("namespace", default_value="",
                              description="namespace for both nodes and their relative topics (e.g. arm2)"),
        DeclareLaunchArgument("config", default_value=os.path.join(share, "config", "collection.yaml"),
                              description="ROS parameter file for netft_node and collection_node"),
        DeclareLaunchArgument("autostart", default_value="true",
                              description="configure and activate at start-up; false waits for a lifecycle manager"),
        Node(package="tacforce", executable="netft_node", name="netft_node", namespace=namespace,
             parameters=parameters, output="screen"),
        Node(package="tacforce", executable="collection_node", name="collection_node", namespace=namespace,
             parameters=parameters, output="screen"),
    ])
