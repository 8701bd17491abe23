"""The package as a robot installs it: colcon build layout, package.xml, entry points, launch
and config files that point at things that exist, and the runtime/training import split.
"""
from __future__ import annotations

import ast
import os
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET

import yaml

from rosutil import ROOT

NODES = ("tactile_force_node", "sim_sensors_node", "recorder_node", "netft_node", "grasp_planner_node",
         "sim_camera_node", "grasp_success_node", "visual_force_node")


# Python module -> its rosdep key (ros/rosdistro rosdep/python.yaml; "-pip" keys install with pip).
ROSDEP_KEYS = {"numpy": "python3-numpy", "cv2": "python3-opencv", "yaml": "python3-yaml",
               "ruamel": "python3-ruamel.yaml", "matplotlib": "python3-matplotlib", "tqdm": "python3-tqdm",
               "onnxruntime": "python3-onnxruntime-pip", "rosbags": "python3-rosbags-pip",
               "defusedxml": "python3-defusedxml", "simplejpeg": "python3-simplejpeg-pip", "mcap": "mcap-ros2-support",
               "taxim": "python3-taxim-pip",
               "pybullet": "python3-pybullet-pip", "pybullet_utils": "python3-pybullet-pip",
               "pybullet_data": "python3-pybullet-pip",
               "launch": "launch", "launch_ros": "launch_ros"}


def entry_points() -> dict[str, str]:
    tree = ast.parse((ROOT / "setup.py").read_text())
    found = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and " = " in node.value:
            name, target = node.value.split(" = ")
            found[name] = target
    return found


def test_package_xml_is_format_3_ament_python_with_runtime_depends():
    root = ET.parse(ROOT / "package.xml").getroot()
    assert root.get("format") == "3" and root.findtext("name") == "tacforce"
    assert root.find("export/build_type").text == "ament_python"
    depends = {e.text for e in root.findall("exec_depend")}
    imported = set()
    for path in (ROOT / "tacforce_ros").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                imported.add(node.module.split(".")[0])
            elif isinstance(node, ast.Import):
                imported.update(alias.name.split(".")[0] for alias in node.names)
    ros_packages = {m for m in imported
                    if m.endswith(("_msgs", "_srvs")) or m in ("rclpy", "rcl_interfaces", "ament_index_python")}
    assert ros_packages <= depends, ros_packages - depends
    # Every other runtime import needs a rosdep key, so `rosdep install` on a robot brings it.
    third_party = imported - ros_packages - set(sys.stdlib_module_names) - {"tacforce_ros", "tacforce_training"}
    missing = {m: ROSDEP_KEYS.get(m) for m in third_party if ROSDEP_KEYS.get(m) not in depends}
    assert not missing, f"imports without an exec_depend rosdep key: {missing}"


def test_entry_points_resolve():
    import importlib
    points = entry_points()
    assert set(NODES) | {"tacforce"} <= set(points)
    for target in points.values():
        module, func = target.split(":")
        assert callable(getattr(importlib.import_module(module), func))


NAMESPACED_LAUNCH = ("perception.launch.py", "grasp_success.launch.py", "visual_force.launch.py", "sim.launch.py",
                     "collection.launch.py")


def test_launch_and_config_files_reference_what_exists():
    executables = set(entry_points())
    for launch in (ROOT / "launch").glob("*.launch.py"):
        text = launch.read_text()
        compile(text, str(launch), "exec")
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, ast.Call) and getattr(node.func, "id", "") == "Node":
                keywords = {k.arg: k.value for k in node.keywords}
                if keywords["package"].value != "tacforce":  # tf2_ros' static frames: global, no namespace
                    continue
                assert keywords["executable"].value in executables, (launch.name, keywords["executable"].value)
                if launch.name in NAMESPACED_LAUNCH:  # namespace:=arm2 moves every node
                    assert "namespace" in keywords, launch.name
            if isinstance(node, ast.Constant) and isinstance(node.value, str) \
                    and node.value.endswith((".yaml", ".xml", ".launch.py")):
                assert (ROOT / ("launch" if node.value.endswith(".py") else "config") / node.value).is_file()
    for config in (ROOT / "config").glob("*.yaml"):
        if config.name == "frames.yaml":  # not a parameter file: tacforce_ros.frames reads it (test_frames.py)
            continue
        doc = yaml.safe_load(config.read_text())
        for key, section in doc.items():
            # '/**/name' also matches the node pushed into a namespace (a plain 'name' would not)
            node_name = key.removeprefix("/**/")
            assert node_name in NODES + ("collection_node",) and "ros__parameters" in section, config.name


def test_config_parameters_are_declared_by_the_nodes():
    from tacforce_ros.sim.sensors import SimConfig
    sim = yaml.safe_load((ROOT / "config" / "sim.yaml").read_text())["/**/sim_sensors_node"]["ros__parameters"]
    assert set(sim) == set(SimConfig.parameter_names())
    perception = yaml.safe_load((ROOT / "config" / "perception.yaml").read_text())
    sim_nodes = yaml.safe_load((ROOT / "config" / "sim.yaml").read_text())
    for doc, node in ((perception, "tactile_force_node"), (perception, "grasp_planner_node"),
                      (perception, "grasp_success_node"), (perception, "visual_force_node"),
                      (sim_nodes, "sim_camera_node")):
        assert set(doc.get(f"/**/{node}", doc.get(node))["ros__parameters"]) == _declared(node), node


def _declared(node: str) -> set[str]:
    """Collect the node's own declare() calls, those of its base ModelNode if it has it, and those of the
    shared ros/model_params.py helpers either calls.
    """
    def calls(tree, name):
        return [n for n in ast.walk(tree) if isinstance(n, ast.Call) and getattr(n.func, "id", "") == name]
    nodes = ROOT / "tacforce_ros" / "nodes"
    trees = [ast.parse((nodes / f"{node}.py").read_text())]
    if "(ModelNode)" in (nodes / f"{node}.py").read_text():
        trees.append(ast.parse((nodes / "model_node.py").read_text()))
    helpers = ast.parse((ROOT / "tacforce_ros" / "ros" / "model_params.py").read_text())
    names = set()
    for tree in trees:
        names |= {n.args[1].value for n in calls(tree, "declare")}
        for function in helpers.body:
            if isinstance(function, ast.FunctionDef) and calls(tree, function.name):
                names |= {n.args[1].value for n in calls(function, "declare")}
    return names


def test_runtime_never_imports_torch_and_training_never_imports_rclpy():
    runtime = ("import sys, importlib, pkgutil, tacforce_ros\n"
               "for m in pkgutil.walk_packages(tacforce_ros.__path__, 'tacforce_ros.'):\n"
               "    importlib.import_module(m.name)\n"
               "assert 'rclpy' in sys.modules and 'torch' not in sys.modules, 'tacforce_ros imported torch'\n"
               "assert 'pybullet' not in sys.modules, 'pybullet imported before a grasp-trial scene'\n")
    training = ("import sys, importlib, pkgutil, tacforce_training\n"
                "for m in pkgutil.walk_packages(tacforce_training.__path__, 'tacforce_training.'):\n"
                "    importlib.import_module(m.name)\n"
                "assert 'torch' in sys.modules and 'rclpy' not in sys.modules, 'training imported rclpy'\n")
    for code in (runtime, training):
        subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)


def test_colcon_build_installs_the_ros_layout(tmp_path):
    src = tmp_path / "ws" / "src" / "tacforce"
    shutil.copytree(ROOT, src, ignore=shutil.ignore_patterns(".venv", ".git", "data", "runs", "out", "build",
                                                             "install", "log", "*.egg-info", "__pycache__"))
    colcon = os.path.join(os.path.dirname(sys.executable), "colcon")  # from requirements-dev.txt
    env = dict(os.environ, PATH=f"{os.path.dirname(sys.executable)}:{os.environ['PATH']}")
    result = subprocess.run([colcon, "build", "--packages-select", "tacforce"], cwd=tmp_path / "ws",
                            env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    install = tmp_path / "ws" / "install" / "tacforce"
    for name in NODES + ("tacforce",):
        assert (install / "lib" / "tacforce" / name).is_file(), name
    share = install / "share" / "tacforce"
    for rel in ("package.xml", "launch/perception.launch.py", "config/perception.yaml",
                "config/fastdds_large_images.xml", "models/tactile_force.onnx"):
        assert (share / rel).is_file(), rel
    assert (install / "share" / "ament_index" / "resource_index" / "packages" / "tacforce").is_file()
    # training/ installs as tacforce_training, never as a top-level `training` module
    site = next(install.glob("lib/python3*/site-packages"))
    assert (site / "tacforce_training" / "core" / "loop.py").is_file()
    assert not (site / "training").exists()
