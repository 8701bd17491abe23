"""Start nodes in one process: each node's `main`, `tacforce run` and `tacforce demo` use it."""
from __future__ import annotations

import faulthandler
import os
import sys
import threading
from pathlib import Path
from typing import Callable, Sequence

from ..paths import resolve

FASTDDS_PROFILE = "fastdds_large_images.xml"
TEARDOWN_S = 5.0  # destroying the nodes and the context normally takes well under a second
PROFILE_VARIABLES = ("FASTRTPS_DEFAULT_PROFILES_FILE", "FASTDDS_DEFAULT_PROFILES_FILE")


def use_large_image_transport() -> None:
    """Point Fast DDS at the shipped profile (10 MB shared-memory segments) unless the user set
    one: with the default 512 KB segment, colour 640x480 frames fall back to fragmented UDP and
    best-effort subscribers lose many of them. Fast DDS 2.x (Humble, Jazzy) reads
    FASTRTPS_DEFAULT_PROFILES_FILE, 3.x (Kilted) FASTDDS_DEFAULT_PROFILES_FILE: set both.
    Must run before rclpy.init().
    """
    profile = resolve("config", FASTDDS_PROFILE)
    user_set = any(v in os.environ for v in PROFILE_VARIABLES)
    if profile.is_file() and not user_set:
        for variable in PROFILE_VARIABLES:
            os.environ[variable] = str(profile)


def spin_nodes(factories: Sequence[Callable], args: Sequence[str] | None = None) -> int:
    """Create the nodes (after rclpy.init with ``args``, so --ros-args and --params-file apply)
    and spin them until Ctrl-C. A node that refuses to start (SystemExit with a message, or a
    parameter or topic name rclpy refuses) stops the process with that one line.
    """
    import rclpy
    from rclpy.exceptions import NameValidationException, ParameterException
    from rclpy.executors import ExternalShutdownException
    from rclpy.impl.implementation_singleton import rclpy_implementation as _rclpy

    use_large_image_transport()
    faulthandler.enable()  # a crash inside a C++ layer (DDS, rcl) still names the Python line it came from
    try:
        rclpy.init(args=args)
    except (_rclpy.RCLError, _rclpy.UnknownROSArgsError) as exc:  # bad --ros-args, e.g. '-p name' without :=
        print(f"{Path(sys.argv[0]).stem}: {str(exc).split(', at ')[0]}", file=sys.stderr)
        return 1
    nodes = []
    try:
        for factory in factories:
            try:
                nodes.append(factory())
            except (ParameterException, NameValidationException) as exc:
                # a parameter or name rclpy refused that the node did not check itself: one line
                text = " ".join(line.strip() for line in str(exc).splitlines()[:2])  # not the ^ marker
                raise SystemExit(f"{getattr(factory, '__name__', 'node')}: {text}") from None
        _spin_each(nodes)
    except SystemExit as exc:
        if exc.code not in (None, 0):
            print(exc.code, file=sys.stderr)
            return 1
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    except Exception:
        if rclpy.ok():
            raise
        # Ctrl-C landed while the executor was inside rcl and it reported the context it was
        # using as invalid (RCLError): that is a normal stop, and the nodes still close below.
    finally:
        for node in nodes:
            close = getattr(node, "close", None)
            if close:
                close()  # the node's own work (a bag, a socket) ends here, before any DDS teardown
        watchdog = threading.Timer(TEARDOWN_S, _teardown_stuck)
        watchdog.daemon = True
        watchdog.start()
        for node in nodes:
            node.destroy_node()
        if rclpy.ok():
            rclpy.shutdown()
        watchdog.cancel()
    return 0


def _spin_each(nodes: list) -> None:
    """Spin every node on its own single-threaded executor, one thread each. rclpy's
    MultiThreadedExecutor polls its futures in a busy loop that, on a two-core machine, took most
    of the CPU from the nodes it serves (the tactile node answered about 1 frame/s of 30 beside
    the simulators); an executor per node sleeps in rcl_wait and lets the nodes' numpy and ONNX
    Runtime work run side by side. The first exception (or Ctrl-C) in any thread stops them all.
    """
    import rclpy
    from rclpy.executors import SingleThreadedExecutor

    if len(nodes) == 1:
        executor = SingleThreadedExecutor()
        executor.add_node(nodes[0])
        executor.spin()
        return
    errors: list[BaseException] = []

    def spin(node) -> None:
        executor = SingleThreadedExecutor()
        executor.add_node(node)
        try:
            executor.spin()
        except BaseException as exc:  # noqa: BLE001 - handed to the main thread, which re-raises it
            errors.append(exc)
            rclpy.try_shutdown()  # the other executors return
    threads = [threading.Thread(target=spin, args=(node,), name=node.get_name(), daemon=True) for node in nodes]
    for thread in threads:
        thread.start()
    for thread in threads:
        while thread.is_alive():
            thread.join(0.2)  # a bounded join, so Ctrl-C reaches this thread
    if errors:
        raise errors[0]


def _teardown_stuck() -> None:
    """End a process whose ROS teardown hangs: Fast DDS 2.14 can deadlock while it destroys a
    participant (a discovery thread and set_listener waiting on each other), and a node asked to
    stop must stop. Every node has closed its own resources by then.
    """
    print(f"{Path(sys.argv[0]).stem}: ROS teardown did not finish within {TEARDOWN_S:g} s; exiting",
          file=sys.stderr, flush=True)
    os._exit(0)
