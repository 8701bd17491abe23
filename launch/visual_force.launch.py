"""Start visual_force_node with config/perception.yaml (override with config:=FILE).

Separate from perception.launch.py, which starts its nodes unconditionally: visual force needs
a camera looking at the object being pressed, so it is started only where one is mounted.
"""
import os

from ament_index_python.packages import get_package_share_directory
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, SetEnvironmentVariable
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node


def generate_launch_description():
    share = get_package_share_directory("tacforce")
    config = LaunchConfiguration("config")
    profile = os.path.join(share, "config", "fastdds_large_images.xml")
    namespace = LaunchConfiguration("namespace")
    return LaunchDescription([
        DeclareLaunchArgument("namespace", default_value="",
                              description="namespace for every node and its relative topics (e.g. arm2)"),
        DeclareLaunchArgument("config", default_value=os.path.join(share, "config", "perception.yaml"),
                              description="ROS parameter file (visual_force_node section)"),
        # Large images between processes: see config/fastdds_large_images.xml.
        SetEnvironmentVariable("FASTRTPS_DEFAULT_PROFILES_FILE", profile),
        SetEnvironmentVariable("FASTDDS_DEFAULT_PROFILES_FILE", profile),
        Node(package="tacforce", executable="visual_force_node", name="visual_force_node", namespace=namespace,
             parameters=[config], output="screen"),
    ])
