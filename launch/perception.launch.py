"""Start the perception nodes with config/perception.yaml (override with config:=FILE).

grasp_planner:=false leaves out the camera grasp planner (e.g. on a tactile-only setup).
namespace:=arm2 starts a second set beside the first: relative topics move with it
(/arm2/tactile/image_raw -> /arm2/estimated_wrench); /diagnostics stays shared."""
import os

from ament_index_python.packages import get_package_share_directory
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, SetEnvironmentVariable
from launch.conditions import IfCondition
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
                              description="ROS parameter file for the perception nodes"),
        DeclareLaunchArgument("grasp_planner", default_value="true",
                              description="also start grasp_planner_node (camera grasp poses)"),
        # Large images between processes: see config/fastdds_large_images.xml.
        SetEnvironmentVariable("FASTRTPS_DEFAULT_PROFILES_FILE", profile),
        SetEnvironmentVariable("FASTDDS_DEFAULT_PROFILES_FILE", profile),
        Node(package="tacforce", executable="tactile_force_node", name="tactile_force_node", namespace=namespace,
             parameters=[config], output="screen"),
        Node(package="tacforce", executable="grasp_planner_node", name="grasp_planner_node", namespace=namespace,
             parameters=[config], output="screen", condition=IfCondition(LaunchConfiguration("grasp_planner"))),
    ])
