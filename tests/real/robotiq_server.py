"""A loopback fake of the Robotiq URCap's ASCII socket (what a UR controller serves on port 63352).

It speaks the protocol ``real.backends.robotiq`` documents: ``SET VAR value ...`` answered with
``ack``, ``GET VAR`` answered with ``VAR value``, anything else with ``?``. Behind it, a 2F gripper
whose position register moves toward the requested one at a rate set by ``SPE``, stops on an
object of ``object_position`` (``OBJ 2``) or at the request (``OBJ 3``), and reports ``STA``/``FLT``.
Replies carry no line end, as the URCap's; the client must not rely on one. Time is the wall
clock (the server runs in a thread), scaled by ``rate``.
"""

from __future__ import annotations

import socket
import threading
import time


class FakeURCap:
    """A threaded TCP server on 127.0.0.1 (a free port); use as a context manager."""

    def __init__(
        self,
        position: int = 0,  # initial position register (0 = open)
        object_position: int | None = None,  # register value where an object stops closing fingers
        active: bool = True,  # STA 3 (activated from the pendant) or 0
        fault: int = 0,  # FLT
        rate: float = 1.0,  # multiplies the finger speed (tests run faster)
        reply_override: dict[str, str] | None = None,  # request line -> reply, for malformed answers
    ):
        self.registers = {"ACT": 1 if active else 0, "GTO": 0, "POS": position, "PRE": position,
                          "SPE": 255, "FOR": 0, "STA": 3 if active else 0, "OBJ": 3, "FLT": fault}  # fmt: skip
        self.object_position = object_position
        self.rate = rate
        self.reply_override = reply_override or {}
        self.requests: list[str] = []
        self._lock = threading.Lock()
        self._last = time.monotonic()
        self._pos = float(position)
        self._server = socket.create_server(("127.0.0.1", 0))
        self._server.settimeout(0.1)
        self.port = self._server.getsockname()[1]
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)

    def __enter__(self) -> FakeURCap:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._server.close()
        self._thread.join(timeout=2)

    # -- the simulated gripper ---------------------------------------------------------------
    def _advance(self) -> None:
        now = time.monotonic()
        dt, self._last = now - self._last, now
        r = self.registers
        if not r["GTO"]:
            return
        # SPE 0..255 -> 20..150 mm/s; the 2F-85's 255 steps span 85 mm (0.333 mm per step).
        steps_per_s = (20 + 130 * r["SPE"] / 255) / (85 / 255) * self.rate
        goal = r["PRE"]
        stop_obj = None
        if self.object_position is not None and self._pos <= self.object_position <= goal:
            goal, stop_obj = self.object_position, 2
        elif self.object_position is not None and goal <= self.object_position <= self._pos:
            goal, stop_obj = self.object_position, 1
        step = steps_per_s * dt
        if abs(goal - self._pos) <= step:
            self._pos = float(goal)
            r["OBJ"] = stop_obj if stop_obj is not None else 3
        else:
            self._pos += step if goal > self._pos else -step
            r["OBJ"] = 0
        r["POS"] = round(self._pos)

    def _handle(self, line: str) -> str:
        if line in self.reply_override:
            return self.reply_override[line]
        words = line.split()
        with self._lock:
            self._advance()
            r = self.registers
            if len(words) == 2 and words[0] == "GET" and words[1] in r:
                return f"{words[1]} {r[words[1]]}"
            if words and words[0] == "SET" and len(words) % 2 == 1 and len(words) > 1:
                pairs = list(zip(words[1::2], words[2::2], strict=True))
                if not all(k in r and v.lstrip("-").isdigit() for k, v in pairs):
                    return "?"
                for k, v in pairs:
                    if k == "POS":
                        r["PRE"] = min(255, max(0, int(v)))
                    else:
                        r[k] = int(v)
                if any(k in ("POS", "GTO") for k, _ in pairs) and r["GTO"]:
                    r["OBJ"] = 0
                return "ack"
        return "?"

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._server.accept()
            except TimeoutError:
                continue
            except OSError:  # closed by __exit__
                return
            threading.Thread(target=self._client, args=(conn,), daemon=True).start()

    def _client(self, conn: socket.socket) -> None:
        buf = b""
        with conn:
            conn.settimeout(0.1)
            while not self._stop.is_set():
                try:
                    chunk = conn.recv(256)
                except TimeoutError:
                    continue
                except OSError:
                    return
                if not chunk:
                    return
                buf += chunk
                while b"\n" in buf:
                    raw, buf = buf.split(b"\n", 1)
                    line = raw.decode("ascii", errors="replace").strip()
                    self.requests.append(line)
                    conn.sendall(self._handle(line).encode("ascii"))
