"""Simulated tactile sensor + Nano17 (config/sim.yaml), a simulated top-down RGB-D camera over
table scenes (config/sim.yaml) and the perception nodes (perception.launch.py, with its frames).
namespace:=arm2 moves all of them and their relative topics together.
"""
import os

from ament_index_python.packages import get_package_share_directory
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, IncludeLaunchDescription, SetEnvironmentVariable
from launch.launch_description_sources import PythonLaunchDescriptionSource
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node


def generate_launch_description():
    share = get_package_share_directory("tacforce")
    profile = os.path.join(share, "config", "fastdds_large_images.xml")
    namespace = LaunchConfiguration("namespace")
    return LaunchDescription([
        DeclareLaunchArgument("namespace", default_value="",
                              description="namespace for every node and its relative topics (e.g. arm2)"),
        DeclareLaunchArgument("sim_config", default_value=os.path.join(share, "config", "sim.yaml"),
                              description="ROS parameter file for sim_sensors_node and sim_camera_node"),
        SetEnvironmentVariable("FASTRTPS_DEFAULT_PROFILES_FILE", profile),
        SetEnvironmentVariable("FASTDDS_DEFAULT_PROFILES_FILE", profile),
        Node(package="tacforce", executable="sim_sensors_node", name="sim_sensors_node", namespace=namespace,
             parameters=[LaunchConfiguration("sim_config")], output="screen"),
        Node(package="tacforce", executable="sim_camera_node", name="sim_camera_node", namespace=namespace,
             parameters=[LaunchConfiguration("sim_config")], output="screen"),
        IncludeLaunchDescription(PythonLaunchDescriptionSource(
            os.path.join(share, "launch", "perception.launch.py")), launch_arguments={"namespace": namespace}.items()),
    ])
