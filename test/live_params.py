"""Set a running node's parameters from a test process, the way `ros2 param set` does."""
from __future__ import annotations

from rcl_interfaces.srv import GetParameters, SetParameters
from rclpy.parameter import Parameter, parameter_value_to_python
from rosutil import spin_until


def set_parameter(node, target: str, name: str, value):
    """Return the SetParametersResult of ``/<target>/set_parameters`` for one parameter."""
    request = SetParameters.Request(parameters=[Parameter(name, value=value).to_parameter_msg()])
    return _call(node, SetParameters, f"/{target}/set_parameters", request).results[0]


def get_parameter(node, target: str, name: str):
    response = _call(node, GetParameters, f"/{target}/get_parameters", GetParameters.Request(names=[name]))
    return parameter_value_to_python(response.values[0])


def _call(node, kind, service: str, request):
    client = node.create_client(kind, service)
    try:
        assert client.wait_for_service(timeout_sec=30), service
        future = client.call_async(request)
        assert spin_until(node, future.done, 30), service
        return future.result()
    finally:
        node.destroy_client(client)
