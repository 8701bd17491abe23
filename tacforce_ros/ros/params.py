"""Typed, described, range-checked parameters (`ros2 param describe` shows all of it).

A node given a value it cannot use (out of range, NaN, wrong type, bad topic name, a name it
does not declare) stops at start-up with one line naming the node, the parameter and the value,
never a traceback and never running on with it. A parameter declared with ``read_only=False``
can be set while the node runs once `live` names what to do with a new value; the same limits,
choices and check refuse a bad one then, and the node keeps the old value.
"""
from __future__ import annotations

import difflib
import math
import weakref
from dataclasses import dataclass
from typing import Any, Callable, Sequence

from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor, SetParametersResult
from rclpy.exceptions import (InvalidParameterTypeException, InvalidParameterValueException,
                              NameValidationException)
from rclpy.expand_topic_name import expand_topic_name
from rclpy.node import Node
from rclpy.validate_full_topic_name import validate_full_topic_name
from rclpy.validate_topic_name import validate_topic_name

Check = Callable[[Node, Any], "str | None"]


@dataclass(frozen=True)
class _Rule:
    """What `declare` was told a value must be, kept for values set later (`live`)."""

    choices: Sequence[str] | None
    check: Check | None


_RULES: weakref.WeakKeyDictionary[Node, dict[str, _Rule]] = weakref.WeakKeyDictionary()


def declare(node: Node, name: str, default: Any, description: str, read_only: bool = True, *,
            limits: tuple[float, float] | None = None, choices: Sequence[str] | None = None,
            check: Check | None = None) -> Any:
    """Declare one parameter with its type taken from ``default`` and return its value.

    ``limits`` (low, high), both allowed, go in the descriptor as an IntegerRange or
    FloatingPointRange, so rclpy refuses a value outside them here and on later sets;
    ``choices`` are the allowed strings; ``check(node, value)`` says what is wrong with a value
    (None: nothing). Doubles must be finite. Any refusal raises `invalid`'s SystemExit.
    """
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
    rule = _Rule(choices, check)
    problem = _problem(node, value, rule)
    if problem:
        raise invalid(node, name, problem, value)
    _RULES.setdefault(node, {})[name] = rule
    return value


def live(node: Node, names: Sequence[str], apply: Callable[[dict[str, Any]], str | None]) -> None:
    """Let the parameters ``names`` (declared with ``read_only=False``) change at run time.

    Each new value must pass its descriptor's range (rclpy checks that first), be finite and
    meet the choices and check given to `declare`; then ``apply(changes)`` (name -> value, all
    of one set call) checks what only the node can (min below max, a window for this model)
    and returns why not, or applies them all and returns None. A refusal answers
    SetParametersResult(successful=False, reason) and the node keeps every old value. Other
    parameters pass through (rclpy refuses read-only ones). Call after the last declare.
    """
    rules, names = _RULES.get(node, {}), frozenset(names)

    def on_set(parameters) -> SetParametersResult:
        changes = {p.name: p.value for p in parameters if p.name in names}
        problem = next((f"parameter '{name}' {why} (got {value!r})" for name, value in changes.items()
                        if (why := _problem(node, value, rules.get(name, _Rule(None, None))))), None)
        if problem is None and changes:
            problem = apply(changes)
        if problem:
            node.get_logger().warning(f"parameter change refused: {problem}")
            return SetParametersResult(successful=False, reason=problem)
        if changes:
            node.get_logger().info("parameters set: " + ", ".join(f"{k}={v!r}" for k, v in changes.items()))
        return SetParametersResult(successful=True)
    node.add_on_set_parameters_callback(on_set)


def _problem(node: Node, value: Any, rule: _Rule) -> str | None:
    """Why ``value`` breaks ``rule`` (a double must also be finite), or None."""
    if not all(math.isfinite(v) for v in (value if isinstance(value, (list, tuple)) else [value])
               if isinstance(v, float)):
        return "must be finite"
    if rule.choices and value not in rule.choices:
        return "must be one of " + ", ".join(repr(c) for c in rule.choices)
    return rule.check(node, value) if rule.check else None


def invalid(node: Node, name: str, problem: str, value: Any) -> SystemExit:
    """Return the one-line start-up refusal: ``<node>: parameter '<name>' <problem> (got <value>)``."""
    return SystemExit(f"{node.get_name()}: parameter '{name}' {problem} (got {value!r})")


def topic(node: Node, value: str) -> str | None:
    """Check that rclpy accepts a topic name, also once ~ and relative names are expanded (a `check`)."""
    try:
        validate_topic_name(value)
        validate_full_topic_name(expand_topic_name(value, node.get_name(), node.get_namespace()))
    except NameValidationException as exc:
        return "is not a valid topic name: " + str(exc).splitlines()[0].removeprefix("Invalid topic name: ").rstrip(":")
    except ValueError as exc:  # rcl's expansion: e.g. an unknown {substitution}
        return "is not a valid topic name: " + str(exc).split(", at ")[0]
    return None


def optional_topic(node: Node, value: str) -> str | None:
    """Check for empty (no topic), or a valid topic name (a `check`)."""
    return topic(node, value) if value else None


def refuse_unknown(node: Node) -> None:
    """Stop on a parameter given to this node (its section of a params file, '/**', -p) that it
    does not declare: a misspelt name is otherwise silently ignored. Call after the last
    declare. rclpy keeps the node's overrides in ``_parameter_overrides`` (no public accessor);
    its own parameters (use_sim_time, ...) are declared and so never unknown.
    """
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
