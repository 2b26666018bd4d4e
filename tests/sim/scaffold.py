"""Test scaffolding: a box on the table, a ground-truth flow of it being lifted, and a plan for it.

The plan is made with PyBullet's IK (iterated to convergence): scaffolding that gives the
simulator a known-good plan independent of the product's planner.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import trimesh

from core.flow import ObjectFlow
from core.plan import Plan
from core.robots import PANDA
from core.scene import Camera, Pose, Scene, SceneObject
from core.transforms import matrix_to_quat, wxyz_to_xyzw

BOX = (0.04, 0.04, 0.06)  # m
BOX_XY = (0.5, 0.0)  # m on the table
BOX_MASS = 0.2  # kg
LIFT = 0.12  # m
PANDA_READY = PANDA.ready
ARM_JOINTS = tuple(f"panda_joint{i}" for i in range(1, 8))

URDF = """<?xml version="1.0"?>
<robot name="{name}">
  <link name="base">
    <inertial><origin xyz="0 0 0"/><mass value="{mass}"/>
      <inertia ixx="{ixx}" ixy="0" ixz="0" iyy="{iyy}" iyz="0" izz="{izz}"/></inertial>
    <visual><geometry><box size="{x} {y} {z}"/></geometry></visual>
    <collision><geometry><box size="{x} {y} {z}"/></geometry></collision>
  </link>
</robot>
"""


def write_box_urdf(path: Path, size=BOX, mass=BOX_MASS, name="box") -> Path:
    x, y, z = size
    path.write_text(
        URDF.format(
            name=name,
            mass=mass,
            x=x,
            y=y,
            z=z,
            ixx=mass * (y * y + z * z) / 12,
            iyy=mass * (x * x + z * z) / 12,
            izz=mass * (x * x + y * y) / 12,
        )
    )
    return path


def box_scene(folder: Path) -> Scene:
    """A scene with one movable box whose URDF frame is its centre."""
    urdf = write_box_urdf(folder / "box.urdf")
    mesh = folder / "box.obj"
    # The simulator reads the URDF; the planner's mesh geometry (the bench's default) reads this.
    trimesh.creation.box(extents=BOX).export(mesh)
    pose = Pose((BOX_XY[0], BOX_XY[1], BOX[2] / 2), (1.0, 0.0, 0.0, 0.0))
    cam = Camera.from_look_at((1.2, 0.0, 0.6), (0.5, 0.0, 0.05), width=208, height=116)
    return Scene(
        name="box_lift",
        prompt="pick up the box",
        objects=(SceneObject("box", pose, mesh=mesh, urdf=urdf),),
        camera=cam,
        frames=21,
        fps=16.0,
        path=folder / "scene.yaml",
    )


def min_jerk(s: np.ndarray) -> np.ndarray:
    s = np.clip(s, 0.0, 1.0)
    return s**3 * (10 - 15 * s + 6 * s * s)


def lift_flow(T: int = 21, fps: float = 16.0, lift: float = LIFT, n: int = 400, seed: int = 0) -> ObjectFlow:
    """The box's surface points lifted straight up by ``lift`` m over T frames (minimum jerk)."""
    rng = np.random.default_rng(seed)
    face = rng.integers(0, 3, n)
    pts = (rng.random((n, 3)) - 0.5) * BOX
    sign = rng.choice([-0.5, 0.5], n)
    pts[np.arange(n), face] = sign * np.asarray(BOX)[face]
    pts += [BOX_XY[0], BOX_XY[1], BOX[2] / 2]
    z = lift * min_jerk(np.linspace(0, 1, T))
    points = pts[None] + np.stack([np.zeros(T), np.zeros(T), z], axis=1)[:, None]
    return ObjectFlow(
        points=points.astype(np.float32),
        object_index=np.zeros(n, np.int32),
        times=(np.arange(T) / fps).astype(np.float32),
        object_names=("box",),
        fps=fps,
        prior="ground_truth",
        prompt="pick up the box",
    )


def ik_plan(
    flow: ObjectFlow, offset: tuple[float, float, float] = (0.0, 0.0, 0.0), grasp_depth: float = 0.02
) -> Plan:
    """Top-down pinch grasp of the box, then the box's flow followed with the grasp held rigid.

    ``offset`` (m, world) shifts every tool pose: a wrong plan for the same flow.
    """
    import pybullet as p

    c = p.connect(p.DIRECT)
    try:
        arm = p.loadURDF(str(PANDA.urdf_path()), useFixedBase=True, physicsClientId=c)
        names = {
            p.getJointInfo(arm, j, physicsClientId=c)[1].decode(): j
            for j in range(p.getNumJoints(arm, physicsClientId=c))
        }
        links = {
            p.getJointInfo(arm, j, physicsClientId=c)[12].decode(): j
            for j in range(p.getNumJoints(arm, physicsClientId=c))
        }
        tcp = links["panda_grasptarget"]
        movable = [
            j
            for j in range(p.getNumJoints(arm, physicsClientId=c))
            if p.getJointInfo(arm, j, physicsClientId=c)[2] != p.JOINT_FIXED
        ]
        arm_idx = [names[n] for n in ARM_JOINTS]
        for j, v in zip(arm_idx, PANDA_READY, strict=True):
            p.resetJointState(arm, j, v, physicsClientId=c)
        R_down = np.diag([1.0, -1.0, -1.0])  # tool z down, fingers closing along world y
        quat = wxyz_to_xyzw(matrix_to_quat(R_down)).tolist()
        centre = np.array([BOX_XY[0], BOX_XY[1], BOX[2] - grasp_depth]) + offset

        def solve(pos: np.ndarray) -> np.ndarray:
            sol = p.calculateInverseKinematics(
                arm, tcp, pos.tolist(), quat, maxNumIterations=1000, residualThreshold=1e-6, physicsClientId=c
            )
            q = np.array([sol[movable.index(j)] for j in arm_idx])
            for j, v in zip(arm_idx, q, strict=True):
                p.resetJointState(arm, j, v, physicsClientId=c)
            return q

        ts, qs, gs, ee = [], [], [], []

        def add(t: float, pos: np.ndarray, width: float) -> None:
            q = solve(pos)
            s = p.getLinkState(arm, tcp, computeForwardKinematics=True, physicsClientId=c)
            ts.append(t)
            qs.append(q)
            gs.append(width)
            ee.append([*s[4], s[5][3], *s[5][:3]])

        t = 0.0
        approach = np.linspace(0, 1, 11)
        for s in approach:
            add(t, centre + np.array([0.0, 0.0, 0.10 * (1 - s)]), 0.08)
            t += 0.1
        close_start = t - 0.1
        for s in np.linspace(0, 1, 6)[1:]:
            add(t, centre, 0.08 + s * (0.03 - 0.08))
            t += 0.1
        follow_start = t
        frame_times = []
        flow_dt = float(flow.times[1] - flow.times[0])
        track = flow.points.mean(axis=1) - flow.points[0].mean(axis=0)  # translation-only flow
        for k in range(flow.num_frames):
            frame_times.append(t)
            add(t, centre + track[k], 0.03)
            t += 2 * flow_dt  # half the flow's speed: a slow lift holds the grasp (docs/design.md)
        T_part_ee = np.eye(4)
        T_part_ee[:3, :3] = R_down
        T_part_ee[:3, 3] = centre - np.array([BOX_XY[0], BOX_XY[1], BOX[2] / 2])
        report = {
            "grasp": {"kind": "grasp", "T_part_ee": T_part_ee.tolist()},
            "phases_s": {
                "approach": [0.0, close_start],
                "close": [close_start, follow_start],
                "follow": [follow_start, frame_times[-1]],
            },
            "frame_times_s": frame_times,
            "planner": "tests.sim.scaffold (PyBullet IK)",
        }
        return Plan(
            t=np.array(ts),
            q=np.array(qs),
            gripper=np.array(gs),
            ee_pose=np.array(ee),
            robot="panda",
            joint_names=ARM_JOINTS,
            base_pose=(0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0),
            task="pick up the box",
            flow_sha256=flow.content_hash(),
            report=report,
        )
    finally:
        p.disconnect(c)


LID = {
    "D": 0.22,
    "W": 0.30,
    "hb": 0.02,
    "hl": 0.01,
    "open_deg": 100.0,
}  # planner.synthetic.hinged_lid's laptop

LID_URDF = """<?xml version="1.0"?>
<robot name="laptop">
  <link name="base">
    <inertial><origin xyz="0 0 {cb}"/><mass value="1.0"/><inertia ixx="0.01" ixy="0" ixz="0" iyy="0.01" iyz="0" izz="0.01"/></inertial>
    <collision><origin xyz="0 0 {cb}"/><geometry><box size="{D} {W} {hb}"/></geometry></collision>
  </link>
  <link name="lid">
    <inertial><origin xyz="{lx} 0 {lz}"/><mass value="0.3"/><inertia ixx="0.002" ixy="0" ixz="0" iyy="0.002" iyz="0" izz="0.002"/></inertial>
    <collision><origin xyz="{lx} 0 {lz}" rpy="0 {pitch} 0"/><geometry><box size="{D} {W} {hl}"/></geometry></collision>
  </link>
  <joint name="hinge" type="revolute">
    <parent link="base"/><child link="lid"/><origin xyz="{hx} 0 {hb}"/><axis xyz="0 1 0"/>
    <limit lower="-2.0" upper="0.2" effort="10" velocity="2"/><dynamics friction="0.5"/>
  </joint>
</robot>
"""


def lid_scene(folder: Path, position=(0.45, 0.0)) -> Scene:
    """A laptop-like base with its lid open at 100 degrees (joint 0), as planner.synthetic.hinged_lid."""
    D, W, hb, hl, a = LID["D"], LID["W"], LID["hb"], LID["hl"], np.radians(LID["open_deg"])
    # The closed lid's centre relative to the hinge, rotated open about +y.
    c = np.array([-D / 2, 0.0, hl / 2])
    R = np.array([[np.cos(a), 0, np.sin(a)], [0, 1, 0], [-np.sin(a), 0, np.cos(a)]])
    lx, _, lz = R @ c
    urdf = folder / "laptop.urdf"
    urdf.write_text(LID_URDF.format(cb=hb / 2, D=D, W=W, hb=hb, hl=hl, lx=lx, lz=lz, pitch=a, hx=D / 2))
    mesh = folder / "laptop.obj"
    mesh.write_text("v 0 0 0\n")
    pose = Pose((position[0], position[1], 0.0), (1.0, 0.0, 0.0, 0.0))
    cam = Camera.from_look_at((1.2, 0.0, 0.6), (0.5, 0.0, 0.05), width=208, height=116)
    return Scene(
        "close_lid", "close the laptop", (SceneObject("laptop", pose, mesh=mesh, urdf=urdf),), cam, 21, 16.0
    )
