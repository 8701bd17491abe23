"""ament_python package `tacforce`; also installs with plain pip on a machine without ROS."""
from glob import glob

from setuptools import find_packages, setup

PACKAGE = "tacforce"

setup(
    name=PACKAGE,
    version="0.1.0",
    # training/ installs as `tacforce_training`: a top-level `training` in site-packages would
    # shadow (or be shadowed by) any other project's module of that common name
    packages=find_packages(include=["tacforce_ros", "tacforce_ros.*"])
    + [f"tacforce_training{name[len('training'):]}" for name in find_packages(include=["training", "training.*"])],
    package_dir={"tacforce_training": "training"},
    data_files=[
        ("share/ament_index/resource_index/packages", [f"resource/{PACKAGE}"]),
        (f"share/{PACKAGE}", ["package.xml"]),
        (f"share/{PACKAGE}/launch", glob("launch/*.launch.py")),
        (f"share/{PACKAGE}/config", glob("config/*")),
        (f"share/{PACKAGE}/models", glob("models/*")),
    ],
    install_requires=["setuptools"],
    extras_require={"gpu": ["onnxruntime-gpu==1.31.1"]},
    zip_safe=True,
    maintainer="tacforce maintainers",
    maintainer_email="maintainers@tacforce.dev",
    description="Tactile and visual force, grasp and grasp-success perception for ROS 2",
    license="Apache-2.0",
    entry_points={
        "console_scripts": [
            "tacforce = tacforce_ros.cli:main",
            "tactile_force_node = tacforce_ros.nodes.tactile_force_node:main",
            "grasp_success_node = tacforce_ros.nodes.grasp_success_node:main",
            "visual_force_node = tacforce_ros.nodes.visual_force_node:main",
            "sim_sensors_node = tacforce_ros.nodes.sim_sensors_node:main",
            "recorder_node = tacforce_ros.nodes.recorder_node:main",
            "netft_node = tacforce_ros.nodes.netft_node:main",
            "collection_node = tacforce_ros.nodes.collection_node:main",
            "grasp_planner_node = tacforce_ros.nodes.grasp_planner_node:main",
            "sim_camera_node = tacforce_ros.nodes.sim_camera_node:main",
        ],
    },
)
