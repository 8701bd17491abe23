"""Start the perception nodes with config/perception.yaml (override with config:=FILE).

grasp_planner:=false leaves out the camera grasp planner (e.g. on a tactile-only setup).
namespace:=arm2 starts a second set beside the first: relative topics move with it
(/arm2/tactile/image_raw -> /arm2/estimated_wrench); /diagnostics stays shared.
The rig's static frames (config/frames.yaml, override with frames:=FILE) go to /tf_static
through tf2_ros' static_transform_publisher, one per frame; publish_frames:=false leaves them
to another launch (a second arm's set, a robot description). Without tf2_ros (a pip-only
install) they are skipped with a message: see the README, "Frames".
"""
import os

from ament_index_python.packages import PackageNotFoundError, get_package_share_directory
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, LogInfo, OpaqueFunction, SetEnvironmentVariable
from launch.conditions import IfCondition
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node
from tacforce_ros.frames import load_frames


def static_frames(context):
    """One static_transform_publisher per frame of the frames file, checked before any starts."""
    if LaunchConfiguration("publish_frames").perform(context).lower() not in ("true", "1"):
        return []
    frames = load_frames(LaunchConfiguration("frames").perform(context))
    try:
        get_package_share_directory("tf2_ros")
    except PackageNotFoundError:
        return [LogInfo(msg=f"tf2_ros is not installed: {len(frames)} static frame(s) not published")]
    return [Node(package="tf2_ros", executable="static_transform_publisher", name=f"static_tf_{frame.child}",
                 arguments=frame.publisher_arguments(), output="log") for frame in frames]


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
        DeclareLaunchArgument("frames", default_value=os.path.join(share, "config", "frames.yaml"),
                              description="the rig's static frames (parent, child, xyz m, rpy rad)"),
        DeclareLaunchArgument("publish_frames", default_value="true",
                              description="publish the frames file on /tf_static (tf2_ros)"),
        OpaqueFunction(function=static_frames),
        # Large images between processes: see config/fastdds_large_images.xml.
        SetEnvironmentVariable("FASTRTPS_DEFAULT_PROFILES_FILE", profile),
        SetEnvironmentVariable("FASTDDS_DEFAULT_PROFILES_FILE", profile),
        Node(package="tacforce", executable="tactile_force_node", name="tactile_force_node", namespace=namespace,
             parameters=[config], output="screen"),
        Node(package="tacforce", executable="grasp_planner_node", name="grasp_planner_node", namespace=namespace,
             parameters=[config], output="screen", condition=IfCondition(LaunchConfiguration("grasp_planner"))),
    ])
