"""Typed, described, range-checked parameters (`ros2 param describe` shows all of it).

A node given a value it cannot use (out of range, NaN, wrong type, bad topic name, a name it
does not declare) stops at start-up with one line naming the node, the parameter and the value,
never a traceback and never running on with it.
"""
from __future__ import annotations

import difflib
import math
from typing import Any, Callable, Sequence

from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor
from rclpy.exceptions import (InvalidParameterTypeException, InvalidParameterValueException,
                              NameValidationException)
from rclpy.expand_topic_name import expand_topic_name
from rclpy.node import Node
from rclpy.validate_full_topic_name import validate_full_topic_name
from rclpy.validate_topic_name import validate_topic_name

Check = Callable[[Node, Any], "str | None"]


def declare(node: Node, name: str, default: Any, description: str, read_only: bool = True, *,
            limits: tuple[float, float] | None = None, choices: Sequence[str] | None = None,
            check: Check | None = None) -> Any:
    """Declare one parameter with its type taken from ``default`` and return its value.

    ``limits`` (low, high), both allowed, go in the descriptor as an IntegerRange or
    FloatingPointRange, so rclpy refuses a value outside them here and on later sets;
    ``choices`` are the allowed strings; ``check(node, value)`` says what is wrong with a value
    (None: nothing). Doubles must be finite. Any refusal raises `invalid`'s SystemExit."""
    descriptor = ParameterDescriptor(description=description, read_only=read_only)
    if limits is not None and isinstance(default, float):
        descriptor.floating_point_range = [FloatingPointRange(from_value=float(limits[0]), to_value=float(limits[1]))]
    elif limits is not None:
        descriptor.integer_range = [IntegerRange(from_value=int(limits[0]), to_value=int(limits[1]))]
    if choices:
        descriptor.additional_constraints = "one of: " + ", ".join(choices)
    try:
        value = node.declare_parameter(name, default, descriptor).value
    except InvalidParameterTypeException:
        raise invalid(node, name, f"must be {_type_name(default)}", _override(node, name)) from None
    except InvalidParameterValueException:
        raise invalid(node, name, f"must be in [{limits[0]}, {limits[1]}]", _override(node, name)) from None
    if not all(math.isfinite(v) for v in (value if isinstance(value, (list, tuple)) else [value])
               if isinstance(v, float)):
        raise invalid(node, name, "must be finite", value)
    if choices and value not in choices:
        raise invalid(node, name, "must be one of " + ", ".join(repr(c) for c in choices), value)
    problem = check(node, value) if check else None
    if problem:
        raise invalid(node, name, problem, value)
    return value


def invalid(node: Node, name: str, problem: str, value: Any) -> SystemExit:
    """The one-line start-up refusal: ``<node>: parameter '<name>' <problem> (got <value>)``."""
    return SystemExit(f"{node.get_name()}: parameter '{name}' {problem} (got {value!r})")


def topic(node: Node, value: str) -> str | None:
    """A `check`: a topic name rclpy accepts, also once ~ and relative names are expanded."""
    try:
        validate_topic_name(value)
        validate_full_topic_name(expand_topic_name(value, node.get_name(), node.get_namespace()))
    except NameValidationException as exc:
        return "is not a valid topic name: " + str(exc).splitlines()[0].removeprefix("Invalid topic name: ").rstrip(":")
    except ValueError as exc:  # rcl's expansion: e.g. an unknown {substitution}
        return "is not a valid topic name: " + str(exc).split(", at ")[0]
    return None


def optional_topic(node: Node, value: str) -> str | None:
    """A `check`: empty (no topic), or a valid topic name."""
    return topic(node, value) if value else None


def refuse_unknown(node: Node) -> None:
    """Stop on a parameter given to this node (its section of a params file, '/**', -p) that it
    does not declare: a misspelt name is otherwise silently ignored. Call after the last
    declare. rclpy keeps the node's overrides in ``_parameter_overrides`` (no public accessor);
    its own parameters (use_sim_time, ...) are declared and so never unknown."""
    declared = node.list_parameters([], 0).names
    unknown = sorted(n for n in node._parameter_overrides if not node.has_parameter(n))
    if unknown:
        hints = []
        for name in unknown:
            close = difflib.get_close_matches(name, declared, n=1)
            hints.append(f"'{name}'" + (f" (did you mean '{close[0]}'?)" if close else ""))
        raise SystemExit(f"{node.get_name()}: unknown parameter {', '.join(hints)}")


def _override(node: Node, name: str) -> Any:
    override = node._parameter_overrides.get(name)
    return None if override is None else override.value


def _type_name(default: Any) -> str:
    if isinstance(default, (list, tuple)):
        item = default[0] if default else ""
        return "a list of " + {bool: "booleans", int: "integers", float: "doubles"}.get(type(item), "strings")
    return {bool: "true or false", int: "an integer", float: "a double (write 1 as 1.0)"}.get(
        type(default), "a string")
