"""A PyBullet world for assets: table, objects posed kinematically, and the scene camera.

The camera conversion lives here: chord's pinhole camera (OpenCV axes, pixel (i, j) covering
[j, j+1) x [i, i+1) so the image centre is (W/2, H/2)) to PyBullet's OpenGL view and projection
matrices, so TinyRenderer images line up with :func:`project`.

PyBullet places a body by its base's *inertial* frame; :meth:`World.set_pose` takes the URDF
object frame (T_world_obj) and converts. PyBullet does not apply URDF joint friction, so
:meth:`World.add` holds every joint with a velocity motor whose force is the joint's friction.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from core.errors import ChordError
from core.scene import Camera
from core.transforms import matrix_to_quat, pose_to_matrix, wxyz_to_xyzw, xyzw_to_wxyz

TABLE_SIZE = (3.0, 3.0, 0.05)  # m; the table top is centred on the world origin
TABLE_COLOR = (0.62, 0.47, 0.33, 1.0)  # RGBA, wood


def scaled_camera(cam: Camera, width: int, height: int) -> Camera:
    """The same camera at another resolution (intrinsics scaled per axis)."""
    sx, sy = width / cam.width, height / cam.height
    return Camera(
        cam.fx * sx, cam.fy * sy, cam.cx * sx, cam.cy * sy, cam.T_world_cam, width, height, cam.near, cam.far
    )


def project(cam: Camera, points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Pinhole projection of world points [..., 3] -> pixels [..., 2] (u right, v down) and depth [...] (m)."""
    T_cam_world = np.linalg.inv(cam.T_world_cam.matrix())
    p = np.asarray(points, dtype=float) @ T_cam_world[:3, :3].T + T_cam_world[:3, 3]
    z = p[..., 2]
    with np.errstate(divide="ignore", invalid="ignore"):
        uv = np.stack([cam.fx * p[..., 0] / z + cam.cx, cam.fy * p[..., 1] / z + cam.cy], axis=-1)
    return uv, z


def view_matrix(cam: Camera) -> np.ndarray:
    """[4, 4] OpenGL view matrix (world -> GL camera: x right, y up, z backwards)."""
    T_world_gl = cam.T_world_cam.matrix() @ np.diag([1.0, -1.0, -1.0, 1.0])
    return np.linalg.inv(T_world_gl)


def projection_matrix(cam: Camera) -> np.ndarray:
    """[4, 4] OpenGL projection matrix for the pinhole intrinsics, near and far planes."""
    W, H, n, f = cam.width, cam.height, cam.near, cam.far
    return np.array(
        [
            [2 * cam.fx / W, 0.0, 1.0 - 2 * cam.cx / W, 0.0],
            [0.0, 2 * cam.fy / H, 2 * cam.cy / H - 1.0, 0.0],
            [0.0, 0.0, -(f + n) / (f - n), -2 * f * n / (f - n)],
            [0.0, 0.0, -1.0, 0.0],
        ]
    )


def gl_list(M: np.ndarray) -> list[float]:
    """A [4, 4] matrix as PyBullet wants it: 16 floats, column-major."""
    return [float(v) for v in np.asarray(M).T.reshape(-1)]


def _tiny_renderer_alignment(cam: Camera) -> Camera:
    """The camera to hand TinyRenderer so its pixel (col, row) shows what chord's pinhole puts at
    (col + 0.5, row + 0.5).

    TinyRenderer samples pixel (col, row) at continuous image position (col, row + 1) rather than
    at its centre (measured: rendered sphere centroids sat +0.45 px right and -0.55 px up of
    :func:`project` before this shift), so the principal point moves by half a pixel.
    """
    return replace(cam, cx=cam.cx - 0.5, cy=cam.cy + 0.5)


def linear_depth(buffer: np.ndarray, cam: Camera) -> np.ndarray:
    """PyBullet's non-linear depth buffer [H, W] in [0, 1] -> distance along the optical axis (m)."""
    n, f = cam.near, cam.far
    return f * n / (f - (f - n) * np.asarray(buffer, dtype=float))


@dataclass(frozen=True)
class Frame:
    """One rendered camera frame."""

    rgb: np.ndarray  # [H, W, 3] uint8
    depth: np.ndarray  # [H, W] float64, metres along the optical axis
    segmentation: np.ndarray  # [H, W] int32, PyBullet body id, -1 for background


class World:
    """A DIRECT PyBullet client with gravity, a table whose top is at ``table_height``, and bodies."""

    def __init__(self, table_height: float = 0.0, gravity: float = 9.81, time_step: float = 1 / 240):
        import pybullet as p

        self.p = p
        self.client = p.connect(p.DIRECT)
        self.time_step = time_step
        p.setGravity(0, 0, -gravity, physicsClientId=self.client)
        p.setTimeStep(time_step, physicsClientId=self.client)
        half = [s / 2 for s in TABLE_SIZE]
        shape = p.createCollisionShape(p.GEOM_BOX, halfExtents=half, physicsClientId=self.client)
        visual = p.createVisualShape(
            p.GEOM_BOX, halfExtents=half, rgbaColor=TABLE_COLOR, physicsClientId=self.client
        )
        self.table = p.createMultiBody(
            0, shape, visual, [0, 0, table_height - half[2]], physicsClientId=self.client
        )
        p.changeDynamics(self.table, -1, lateralFriction=1.0, physicsClientId=self.client)
        self.bodies: dict[str, int] = {}
        self.joints: dict[str, dict[str, int]] = {}

    def __enter__(self) -> World:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if self.client is not None and self.p.isConnected(self.client):
            self.p.disconnect(self.client)
        self.client = None

    def add(self, name: str, urdf: str | Path, T_world_obj: np.ndarray, fixed: bool = False) -> int:
        """Load ``urdf`` with its object frame at T_world_obj [4, 4]; joints held by their friction."""
        p = self.p
        urdf = Path(urdf)
        if not urdf.is_file():
            raise ChordError(f"{urdf}: URDF not found")
        body = p.loadURDF(str(urdf), useFixedBase=fixed, physicsClientId=self.client)
        self.bodies[name] = body
        self.joints[name] = {}
        for j in range(p.getNumJoints(body, physicsClientId=self.client)):
            info = p.getJointInfo(body, j, physicsClientId=self.client)
            if info[2] == p.JOINT_FIXED:
                continue
            self.joints[name][info[1].decode()] = j
            p.setJointMotorControl2(
                body,
                j,
                p.VELOCITY_CONTROL,
                targetVelocity=0.0,
                force=float(info[7]),
                physicsClientId=self.client,
            )
        for link in range(-1, p.getNumJoints(body, physicsClientId=self.client)):
            p.changeDynamics(body, link, lateralFriction=0.8, physicsClientId=self.client)
        self.set_pose(name, T_world_obj)
        return body

    def set_pose(self, name: str, T_world_obj: np.ndarray) -> None:
        """Place object ``name`` so its URDF base frame is at T_world_obj [4, 4]; zero velocity."""
        p, body = self.p, self.bodies[name]
        info = p.getDynamicsInfo(body, -1, physicsClientId=self.client)
        T_link_inertial = pose_to_matrix(np.array(info[3]), xyzw_to_wxyz(np.array(info[4])))
        T = np.asarray(T_world_obj) @ T_link_inertial
        q = wxyz_to_xyzw(matrix_to_quat(T[:3, :3]))
        p.resetBasePositionAndOrientation(body, T[:3, 3].tolist(), q.tolist(), physicsClientId=self.client)
        p.resetBaseVelocity(body, [0, 0, 0], [0, 0, 0], physicsClientId=self.client)

    def pose(self, name: str) -> np.ndarray:
        """T_world_obj [4, 4] of object ``name`` (its URDF base frame)."""
        p, body = self.p, self.bodies[name]
        pos, orn = p.getBasePositionAndOrientation(body, physicsClientId=self.client)
        T_world_inertial = pose_to_matrix(np.array(pos), xyzw_to_wxyz(np.array(orn)))
        info = p.getDynamicsInfo(body, -1, physicsClientId=self.client)
        T_link_inertial = pose_to_matrix(np.array(info[3]), xyzw_to_wxyz(np.array(info[4])))
        return T_world_inertial @ np.linalg.inv(T_link_inertial)

    def set_joints(self, name: str, q: Mapping[str, float]) -> None:
        """Set joint values (rad or m, 0 = rest) of object ``name`` kinematically."""
        for joint, value in q.items():
            if joint not in self.joints[name]:
                raise KeyError(f"object {name!r} has no joint {joint!r}; it has {sorted(self.joints[name])}")
            self.p.resetJointState(
                self.bodies[name], self.joints[name][joint], float(value), 0.0, physicsClientId=self.client
            )

    def joint_values(self, name: str) -> dict[str, float]:
        body = self.bodies[name]
        return {
            j: float(self.p.getJointState(body, i, physicsClientId=self.client)[0])
            for j, i in self.joints[name].items()
        }

    def link_frame(self, name: str, link: str) -> np.ndarray:
        """T_world_link [4, 4] of a non-root link (its URDF link frame)."""
        p, body = self.p, self.bodies[name]
        for i in range(p.getNumJoints(body, physicsClientId=self.client)):
            if p.getJointInfo(body, i, physicsClientId=self.client)[12].decode() == link:
                s = p.getLinkState(body, i, computeForwardKinematics=True, physicsClientId=self.client)
                return pose_to_matrix(np.array(s[4]), xyzw_to_wxyz(np.array(s[5])))
        raise KeyError(f"object {name!r} has no child link {link!r}")

    def velocities(self, name: str) -> tuple[float, float]:
        """(linear m/s, angular rad/s) speed of the base of object ``name``."""
        lin, ang = self.p.getBaseVelocity(self.bodies[name], physicsClientId=self.client)
        return float(np.linalg.norm(lin)), float(np.linalg.norm(ang))

    def step(self, n: int = 1) -> None:
        for _ in range(n):
            self.p.stepSimulation(physicsClientId=self.client)

    def render(self, cam: Camera, light_direction: tuple[float, float, float] = (0.4, -0.6, 1.0)) -> Frame:
        """Render ``cam`` with PyBullet's TinyRenderer: RGB, metric depth and body-id segmentation."""
        p = self.p
        _, _, rgba, depth, seg = p.getCameraImage(
            cam.width,
            cam.height,
            viewMatrix=gl_list(view_matrix(cam)),
            projectionMatrix=gl_list(projection_matrix(_tiny_renderer_alignment(cam))),
            renderer=p.ER_TINY_RENDERER,
            lightDirection=list(light_direction),
            shadow=1,
            physicsClientId=self.client,
        )
        rgba = np.asarray(rgba, dtype=np.uint8).reshape(cam.height, cam.width, 4)
        depth = np.asarray(depth, dtype=float).reshape(cam.height, cam.width)
        seg = np.asarray(seg, dtype=np.int64).reshape(cam.height, cam.width)
        body = np.where(seg < 0, -1, seg & ((1 << 24) - 1)).astype(np.int32)
        return Frame(rgba[..., :3].copy(), linear_depth(depth, cam), body)


def settle(world: World, name: str, seconds: float = 2.0) -> dict[str, float]:
    """Simulate ``seconds`` and report how object ``name`` came to rest.

    Returns drift (m, base position change), tilt (rad, base rotation change), and the final
    linear (m/s) and angular (rad/s) speed.
    """
    T0 = world.pose(name)
    world.step(round(seconds / world.time_step))
    T1 = world.pose(name)
    lin, ang = world.velocities(name)
    cos = (np.trace(T0[:3, :3].T @ T1[:3, :3]) - 1) / 2
    return {
        "drift": float(np.linalg.norm(T1[:3, 3] - T0[:3, 3])),
        "tilt": float(math.acos(np.clip(cos, -1.0, 1.0))),
        "linear_speed": lin,
        "angular_speed": ang,
    }
