"""A GenForce indentation run: netft_node (Nano17 over RDT) and collection_node (UR5e) with
config/collection.yaml (override with config:=FILE). Record it with `ros2 bag record` (README)."""
import os

from ament_index_python.packages import get_package_share_directory
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node


def generate_launch_description():
    share = get_package_share_directory("tacforce")
    config = LaunchConfiguration("config")
    return LaunchDescription([
        DeclareLaunchArgument("config", default_value=os.path.join(share, "config", "collection.yaml"),
                              description="ROS parameter file for netft_node and collection_node"),
        Node(package="tacforce", executable="netft_node", name="netft_node", parameters=[config], output="screen"),
        Node(package="tacforce", executable="collection_node", name="collection_node", parameters=[config],
             output="screen"),
    ])
