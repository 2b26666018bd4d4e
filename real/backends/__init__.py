"""Robot backends: one module per vendor SDK (imported lazily), plus a fake for tests and dry runs."""

from __future__ import annotations

from typing import Any

from core.errors import ChordError

BACKENDS = ("fake", "franka", "ur", "xarm")


def make_robot(backend: str, **kwargs: Any):
    """Build the ``backend`` robot (not yet connected); raises ChordError for an unknown name."""
    if backend == "fake":
        from real.backends.fake import FakeRobot

        return FakeRobot(**kwargs)
    if backend == "franka":
        from real.backends.franky import FrankaRobot

        return FrankaRobot(**kwargs)
    if backend == "ur":
        from real.backends.ur import URRobot

        return URRobot(**kwargs)
    if backend == "xarm":
        from real.backends.xarm import XArmRobot

        return XArmRobot(**kwargs)
    raise ChordError(f"backend {backend!r} is unknown; expected one of {list(BACKENDS)}")
