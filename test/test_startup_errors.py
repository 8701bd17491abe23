"""Every node refuses unusable parameters at start-up in one line: real node processes started
with a bad value (out of range, NaN, wrong type, misspelt name, bad topic name, bad provider,
a model whose graph disagrees with its metadata) exit 1 with exactly one stderr line naming
the parameter or file, never a traceback and never running on. Domains 230-235.
"""
from __future__ import annotations

import subprocess
import sys

import pytest

pytest.importorskip("rclpy")  # the ROS wheels are part of the test set-up

from rosutil import ROOT, ros_env  # noqa: E402

MISMATCH = "<model whose graph is smaller than its metadata>"

CASES = [
    ("tactile_force_node", {"max_image_pixels": "0"}, "parameter 'max_image_pixels' must be in [1, 268435456] (got 0)"),
    ("tactile_force_node", {"diagnostics_period": "0.0"},
     "parameter 'diagnostics_period' must be in [0.05, 3600.0] (got 0.0)"),
    ("tactile_force_node", {"diagnostics_period": ".nan"}, "parameter 'diagnostics_period' must be in"),
    ("tactile_force_node", {"diagnostics_period": "1"}, "parameter 'diagnostics_period' must be a double"),
    ("tactile_force_node", {"providers": "[foo]"}, "providers: unknown execution provider 'foo'"),
    ("tactile_force_node", {"queue_depth": "abc"}, "parameter 'queue_depth' must be an integer (got 'abc')"),
    ("tactile_force_node", {"intra_op_threads": "-1"}, "parameter 'intra_op_threads' must be in [0, 64] (got -1)"),
    ("tactile_force_node", {"max_image_pixel": "100"},
     "unknown parameter 'max_image_pixel' (did you mean 'max_image_pixels'?)"),
    ("tactile_force_node", {"image_topic": "bad topic!"},
     "parameter 'image_topic' is not a valid topic name: topic name must not contain characters"),
    ("tactile_force_node", {"model_path": MISMATCH}, "warm-up run failed"),
    ("grasp_planner_node", {"angle_window": "9"},
     "parameter 'angle_window' must be at most 8 for this model's 18 angle bins (got 9)"),
    ("grasp_planner_node", {"jaw_opening": "5.0"}, "parameter 'jaw_opening' must be in [0.001, 0.5] (got 5.0)"),
    ("grasp_planner_node", {"depth_topic": "/camera//depth"}, "parameter 'depth_topic' is not a valid topic name"),
    ("grasp_planner_node", {"min_range": "2.0", "max_range": "1.0"}, "parameter 'min_range' must be below max_range"),
    ("grasp_planner_node", {"workspace_max": "[0.5, 0.5]"},
     "parameter 'workspace_max' must be three finite numbers [x, y, z] in metres (got [0.5, 0.5])"),
    ("grasp_planner_node", {"workspace_min": "[-0.5, -0.5, 1.0]", "workspace_max": "[0.5, 0.5, 0.8]"},
     "parameter 'workspace_min' must be below workspace_max on every axis, not on z (1 >= 0.8)"),
    ("grasp_success_node", {"threshold": "1.0"}, "parameter 'threshold' must be in (0, 1) (got 1.0)"),
    ("grasp_success_node", {"treshold": "0.6"}, "unknown parameter 'treshold' (did you mean 'threshold'?)"),
    ("visual_force_node", {"max_frame_gap": "0.0"}, "parameter 'max_frame_gap' must be in [0.001, 3600.0] (got 0.0)"),
    ("visual_force_node", {"image_transport": "theora"},
     "parameter 'image_transport' must be one of 'raw', 'compressed' (got 'theora')"),
    # refused before the node contacts any box (host stays on loopback all the same)
    ("netft_node", {"host": "127.0.0.1", "prot": "49152"}, "unknown parameter 'prot' (did you mean 'port'?)"),
    ("netft_node", {"host": "127.0.0.1", "port": "70000"}, "parameter 'port' must be in [1, 65535] (got 70000)"),
]


def run(args: list[str], domain: int) -> subprocess.CompletedProcess:
    try:
        return subprocess.run([sys.executable, *args], env=ros_env(domain), capture_output=True, text=True,
                              timeout=60)
    except subprocess.TimeoutExpired as exc:
        pytest.fail(f"still running after 60 s: the bad value was accepted\n{exc.stderr}")


def assert_one_line(result: subprocess.CompletedProcess, start: str, expected: str) -> None:
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr + result.stdout, result.stderr
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(start) and expected in lines[0], lines[0]


@pytest.mark.parametrize("node, params, expected", CASES,
                         ids=[f"{n}-{'-'.join(p)}" for n, p, _ in CASES])
def test_bad_parameter_stops_the_node_in_one_line(tmp_path, node, params, expected):
    if MISMATCH in params.values():
        from test_runtime import build, metadata

        from tacforce_ros.inference.contract import InputSpec
        path = build(tmp_path / "mismatch.onnx", metadata(input=InputSpec("image", 5, 6, 1, "mono8")))
        params = {k: str(path) if v == MISMATCH else v for k, v in params.items()}
    args = ["-m", f"tacforce_ros.nodes.{node}", "--ros-args"]
    for key, value in params.items():
        args += ["-p", f"{key}:={value}"]
    assert_one_line(run(args, 230), f"{node}: ", expected)


def test_record_refuses_an_existing_bag_directory(tmp_path):
    result = run(["-m", "tacforce_ros.cli", "record", "--out", str(tmp_path)], 231)
    assert_one_line(result, "recorder_node: ", f"cannot create bag {tmp_path}")


def test_a_misspelt_name_in_one_section_of_a_shared_params_file_names_its_node(tmp_path):
    """`tacforce run` starts several nodes from one file: each section is checked against its own
    node, so the tactile node's parameters are not unknown to the planner and vice versa.
    """
    config = tmp_path / "perception.yaml"
    text = (ROOT / "config" / "perception.yaml").read_text()
    config.write_text(text.replace("    top_k: 5\n", "    top_kk: 5\n"))
    result = run(["-m", "tacforce_ros.cli", "run", "--config", str(config)], 232)
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines()[-1] == \
        "grasp_planner_node: unknown parameter 'top_kk' (did you mean 'top_k'?)"
