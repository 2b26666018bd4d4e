"""A Robotiq 2F gripper on a UR arm through the Robotiq URCap's ASCII socket (port 63352 of the controller).

The URCap serves the gripper's registers as text, one request per message:

- ``SET <VAR> <value> [<VAR> <value> ...]`` writes registers; the reply is ``ack``. ``POS`` is the
  requested position (0 = open, 255 = closed), ``SPE`` the speed and ``FOR`` the force (0-255
  each), ``GTO 1`` starts the motion to them, ``ACT 1`` activates the gripper.
- ``GET <VAR>`` reads one; the reply is ``<VAR> <value>``: ``POS`` (actual position 0-255),
  ``OBJ`` (0 moving, 1 stopped on an object while opening, 2 stopped on an object while
  closing, 3 at the requested position: no object), ``STA`` (3 = active), ``FLT`` (0 = no fault).

Positions map linearly onto the opening: 0 is the widest (``limits.max_width``), 255 the
narrowest; pass a gripper's calibrated ``open_position`` / ``closed_position`` (the URCap's
calibration) to use its own range. Speed and force map linearly onto the 2F-85's 20-150 mm/s and
20-235 N. The gripper is never activated from here (activation sweeps the fingers through their
whole stroke): an inactive gripper is refused, to be activated from the pendant.
"""

from __future__ import annotations

import re
import socket
import time

from core.errors import ChordError
from real.limits import ROBOTIQ_2F85, GripperLimits
from real.robot import Gripper, GripperState

PORT = 63352  # the Robotiq URCap's socket on the UR controller
_SPEED_RANGE = (0.020, 0.150)  # m/s at register values 0 and 255 (2F-85 manual)
_FORCE_RANGE = (20.0, 235.0)  # N at register values 0 and 255 (2F-85 manual)
_STA_ACTIVE = 3
_OBJ_MOVING = 0


def _register(value: float, lo: float, hi: float) -> int:
    """``value`` in [lo, hi] as a register value 0-255 (clipped)."""
    return int(min(255, max(0, round(255 * (value - lo) / (hi - lo)))))


class RobotiqSocketGripper(Gripper):
    """A Robotiq 2F gripper at ``host``:``port`` (the UR controller running the Robotiq URCap)."""

    def __init__(
        self,
        host: str,
        port: int = PORT,
        limits: GripperLimits = ROBOTIQ_2F85,
        open_position: int = 0,  # register value of the widest opening
        closed_position: int = 255,  # register value of the narrowest
        timeout: float = 1.0,  # s, per request
    ):
        super().__init__(limits)
        if not 0 <= open_position < closed_position <= 255:
            raise ValueError(
                f"positions {open_position}..{closed_position}, expected 0 <= open < closed <= 255"
            )
        self.host, self.port, self.timeout = host, port, timeout
        self.open_position, self.closed_position = open_position, closed_position
        self._sock: socket.socket | None = None

    # -- the protocol ------------------------------------------------------------------------
    def _request(self, line: str, reply: re.Pattern[str]) -> re.Match[str]:
        """Send one request line and read until the reply matches ``reply`` (or time out)."""
        if self._sock is None:
            raise ChordError(f"robotiq at {self.host}:{self.port}: not connected")
        self._sock.sendall(line.encode("ascii") + b"\n")
        buf, deadline = b"", time.monotonic() + self.timeout
        while True:
            text = buf.decode("ascii", errors="replace").strip()
            m = reply.fullmatch(text)
            if m:
                return m
            left = deadline - time.monotonic()
            if left <= 0 or len(buf) > 256:
                raise ChordError(
                    f"robotiq at {self.host}:{self.port}: {line!r} got {text!r}, expected {reply.pattern!r}"
                )
            self._sock.settimeout(left)
            try:
                chunk = self._sock.recv(256)
            except TimeoutError:
                continue  # the deadline check above reports it
            if not chunk:
                raise ChordError(f"robotiq at {self.host}:{self.port}: connection closed after {line!r}")
            buf += chunk

    def set(self, **registers: int) -> None:
        """``SET`` registers (in the order given); raises ChordError unless the URCap acknowledges."""
        line = "SET " + " ".join(f"{k} {int(v)}" for k, v in registers.items())
        self._request(line, re.compile("ack"))

    def get(self, register: str) -> int:
        """``GET`` one register's value; raises ChordError on a malformed or missing reply."""
        m = self._request(f"GET {register}", re.compile(rf"{register} (-?\d+)"))
        return int(m.group(1))

    # -- units ---------------------------------------------------------------------------------
    def position_of(self, width: float) -> int:
        """Register value (0-255) commanding an opening of ``width`` m."""
        lim = self.limits
        frac = (lim.max_width - width) / (lim.max_width - lim.min_width)  # 0 open .. 1 closed
        return round(self.open_position + frac * (self.closed_position - self.open_position))

    def width_of(self, position: int) -> float:
        """Opening in m at register value ``position``."""
        lim = self.limits
        frac = (position - self.open_position) / (self.closed_position - self.open_position)
        return lim.max_width - frac * (lim.max_width - lim.min_width)

    # -- the Gripper hooks -------------------------------------------------------------------
    def _connect(self) -> None:
        try:
            self._sock = socket.create_connection((self.host, self.port), timeout=self.timeout)
        except OSError as e:
            raise ChordError(
                f"robotiq at {self.host}:{self.port}: cannot connect ({e}); is the Robotiq URCap installed and running?"
            ) from e
        status = self.get("STA")
        if status != _STA_ACTIVE:
            raise ChordError(
                f"robotiq at {self.host}:{self.port}: gripper not active (STA {status}); activate it from the "
                "URCap on the pendant (chord does not: activation sweeps the fingers)"
            )
        fault = self.get("FLT")
        if fault != 0:
            raise ChordError(
                f"robotiq at {self.host}:{self.port}: gripper fault FLT {fault}; clear it at the robot"
            )

    def _disconnect(self) -> None:
        if self._sock is not None:
            self._sock.close()
        self._sock = None

    def _go(self, width: float, force: float) -> None:
        self.set(
            POS=self.position_of(width),
            SPE=_register(self.limits.speed, *_SPEED_RANGE),
            FOR=_register(force, *_FORCE_RANGE),
            GTO=1,
        )

    def _move(self, width: float) -> None:
        self._go(width, self.limits.min_force)

    def _grasp(self, width: float, force: float) -> None:
        self._go(width, force)

    def _read(self) -> GripperState:
        position, obj, fault = self.get("POS"), self.get("OBJ"), self.get("FLT")
        return GripperState(
            width=self.width_of(position),
            moving=obj == _OBJ_MOVING,
            fault=None if fault == 0 else f"robotiq fault FLT {fault}",
        )
