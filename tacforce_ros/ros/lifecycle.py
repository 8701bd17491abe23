"""Lifecycle nodes that also run without a lifecycle manager.

A hardware node is a ``rclpy.lifecycle`` node: configure connects, activate streams or moves,
deactivate stops safely, cleanup releases. With the ``autostart`` parameter (default true) the
node configures and activates itself at the end of its constructor, so `tacforce run`, the
console scripts and launch files need no manager; a refused transition then stops start-up
with one line, like a bad parameter does.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any

from rclpy.lifecycle import LifecycleNode, LifecycleState, TransitionCallbackReturn

from .params import declare


class ManagedNode(LifecycleNode, ABC):
    """A LifecycleNode with ``autostart`` and one-line refusals.

    Transition callbacks return ``self.refuse(reason)`` for an expected failure (box or robot
    unreachable): logged for a manager, or the start-up line with autostart. rclpy turns an
    exception raised in a callback into ERROR without logging it, so callbacks catch theirs.
    ``close()`` releases everything from any state: shutdown and error transitions call it, and
    so does spin_nodes when the process stops (Ctrl-C, SIGTERM), without the state machine.
    """

    def __init__(self, node_name: str, **kwargs: Any) -> None:
        super().__init__(node_name, **kwargs)
        self.autostart = declare(self, "autostart", True,
                                 "configure and activate at start-up; false waits for a lifecycle "
                                 "manager (ros2 lifecycle set <node> configure, then activate)")
        self._refusal = ""
        self._starting = False

    def refuse(self, reason: str) -> TransitionCallbackReturn:
        """Fail the running transition with ``reason`` (the node stays in its previous state)."""
        self._refusal = reason
        if not self._starting:  # autostart prints it once, as the start-up error
            self.get_logger().error(reason)
        return TransitionCallbackReturn.FAILURE

    def start(self) -> None:
        """With ``autostart``: configure, then activate; call last in the constructor."""
        if not self.autostart:
            return
        self._starting = True
        for label, trigger in (("configure", self.trigger_configure), ("activate", self.trigger_activate)):
            self._refusal = ""
            if trigger() != TransitionCallbackReturn.SUCCESS:
                raise SystemExit(f"{self.get_name()}: {self._refusal or label + ' failed'}")
        self._starting = False

    @abstractmethod
    def close(self) -> None:
        """Release the hardware from any state (a subclass's own)."""

    def drop(self, name: str, release: str = "close") -> None:
        """Call ``release`` on the attribute ``name`` when it holds something, then forget it."""
        held = getattr(self, name)
        if held is not None:
            getattr(held, release)()
            setattr(self, name, None)

    def on_shutdown(self, state: LifecycleState) -> TransitionCallbackReturn:
        self.close()
        return super().on_shutdown(state)

    def on_error(self, state: LifecycleState) -> TransitionCallbackReturn:
        self.close()
        return super().on_error(state)
