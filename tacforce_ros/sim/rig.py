"""A simulated indentation rig: where the robot's TCP is decides what the tactile sensor and
the force sensor read.

The sensor lies flat under the robot with its centre at ``centre_xy`` (base frame) and its
surface at ``surface_z`` (the TCP z at which the indenter just touches); sensor x/y are base
x/y. Depth is ``surface_z - z``. The press point is where the indenter touched down, and the
shear is how far the TCP has slid from it since, so the same robot motion that a real run
makes produces the simulator's (position, depth, shear) contact.
"""
from __future__ import annotations

import numpy as np

from .tactile import ContactState, TactileSimulator


class IndentationRig:
    def __init__(self, sim: TactileSimulator, indenter: str, centre_xy: tuple[float, float], surface_z: float):
        self.sim = sim
        self.indenter = indenter
        self.centre = np.asarray(centre_xy, float)
        self.surface_z = surface_z
        self._press_xy: np.ndarray | None = None

    @classmethod
    def for_protocol(cls, protocol, style: str) -> "IndentationRig":
        """Build the rig a protocol run presses into, with the force-depth curves of every contact
        position built now: building one takes up to a second, far too long inside a 1 kHz
        force stream.
        """
        from ..hardware.protocol import contact_offsets
        from .tactile_styles import SENSOR_STYLES

        rig = cls(TactileSimulator(SENSOR_STYLES[style]), protocol.indenter,
                  tuple(protocol.start_pose[:2]), protocol.surface_z)
        for x, y in contact_offsets(protocol):
            rig.sim.normal_force(protocol.indenter, float(x), float(y), 1e-4)
        return rig

    def contact(self, tcp_pose: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]:
        """(depth m, press point m relative to the sensor centre, shear m) for a TCP pose."""
        depth = self.surface_z - float(tcp_pose[2])
        xy = np.asarray(tcp_pose[:2], float) - self.centre
        if depth <= 0.0:
            self._press_xy = None
            return 0.0, xy, np.zeros(2)
        if self._press_xy is None:
            self._press_xy = xy
        return depth, self._press_xy, xy - self._press_xy

    def wrench(self, tcp_pose: np.ndarray) -> np.ndarray:
        """Fx Fy Fz Tx Ty Tz (N, N·m) on the sensor, as a Nano17 under it would read."""
        depth, press, shear = self.contact(tcp_pose)
        force = self.sim.force(self.indenter, press[0], press[1], depth, tuple(shear))
        return np.concatenate([force, np.zeros(3)])

    def image(self, tcp_pose: np.ndarray) -> np.ndarray:
        depth, press, shear = self.contact(tcp_pose)
        state: ContactState | None = None
        if depth > 0.0:
            state = self.sim.contact(self.indenter, press[0], press[1], depth, tuple(shear))
        return self.sim.render(state)
