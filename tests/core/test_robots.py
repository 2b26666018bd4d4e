"""The robot registry: every entry loads in pinocchio and PyBullet alike, its gripper boxes bound its
fingers, and a user's YAML arm is read (and refused) as documented."""

from __future__ import annotations

import dataclasses
import math
import xml.etree.ElementTree as ET

import numpy as np
import pytest

from core import robots as R
from core.errors import ChordError
from core.robots import ROBOTS, RobotSpecError, load_robot_yaml, robot_spec


def _ur_model_installed() -> bool:
    try:
        R.example_robot_data_dir()
    except ChordError:
        return False
    return True


# The UR5's model is an extra (scripts/setup.sh installs it, so CI runs every entry).
NEEDS_UR_MODEL = pytest.mark.skipif(not _ur_model_installed(), reason="pip install 'chord[ur-model]'")
NAMES = [pytest.param(n, marks=NEEDS_UR_MODEL) if n == "ur5" else n for n in sorted(ROBOTS)]


def test_the_registry_holds_the_four_offline_arms():
    assert sorted(ROBOTS) == ["fr3", "panda", "ur5", "xarm6"]
    assert {n: ROBOTS[n].dof for n in ROBOTS} == {"fr3": 7, "panda": 7, "ur5": 6, "xarm6": 6}
    assert {n: ROBOTS[n].backend for n in ROBOTS} == {
        "fr3": "franka",
        "panda": "franka",
        "ur5": "ur",
        "xarm6": "xarm",
    }


@pytest.mark.parametrize("name", NAMES)
def test_each_entry_is_its_urdf_in_pinocchio(name):
    from planner.robot import Robot

    spec = ROBOTS[name]
    robot = Robot(spec)
    assert robot.joint_names == spec.arm_joints
    assert robot.name == name
    assert (robot.seed >= robot.lower).all() and (robot.seed <= robot.upper).all()
    T = robot.fk(robot.seed)
    # every ready posture holds the tool pointing down, in front of the base, above the table
    assert T[:3, 2] @ np.array([0.0, 0.0, -1.0]) > math.cos(math.radians(3))
    assert 0.25 < np.hypot(*T[:2, 3]) < 0.6 and 0.2 < T[2, 3] < 0.6
    assert len(robot.clearance_ids) == len(spec.body_links) and len(robot.body_ids) == len(spec.body_chain)
    assert robot.gripper is spec.gripper.geometry


def _axis_aligned_q(robot):
    """Joint values with the TCP at (0.4, 0, 0.3) in the base frame, tool z down, tool x along base x."""
    T = np.eye(4)
    T[:3, :3] = np.diag([1.0, -1.0, -1.0])
    T[:3, 3] = (0.4, 0.0, 0.3)
    res = robot.ik(T)
    assert res.success
    return res.q, T


@pytest.mark.parametrize("name", NAMES)
def test_pybullet_and_pinocchio_agree_on_the_tool_and_the_fingers_match_the_boxes(name, tmp_path):
    from planner.robot import Robot
    from sim.world import SimWorld
    from tests.sim.scaffold import box_scene

    spec = ROBOTS[name]
    robot = Robot(spec)
    rng = np.random.default_rng(3)
    # the arm is only posed here, never stepped: the box never meets it
    with SimWorld(box_scene(tmp_path), robot=spec, arm_joints=spec.arm_joints) as w:
        # the simulator drives the arm as its entry says, up to its torque limits
        assert w.arm_control == spec.arm_control and w.arm_forces == list(spec.torque_limits)
        assert w.finger_force == spec.gripper.geometry.grasp_force
        for j in w.finger_links:  # every gripper's pads: panda.urdf's contact model
            info = w.p.getDynamicsInfo(w.arm, j, physicsClientId=w.client)
            assert (info[1], info[7]) == pytest.approx((1.0, 0.1))  # lateral, spinning friction
        for _ in range(5):  # the same tool pose at random postures: one kinematic model in both
            q = rng.uniform(robot.lower, robot.upper)
            np.testing.assert_allclose(w.fk(q), robot.fk(q), atol=1e-6)
        q, T = _axis_aligned_q(robot)
        width = 0.05
        w.reset_arm(q, width)
        assert w.arm_state()[1] == pytest.approx(width, abs=1e-6)
        tcp = w.tcp_pose()
        np.testing.assert_allclose(tcp, T, atol=1e-4)
        boxes = spec.gripper.geometry.boxes(width)
        for k, j in enumerate(w.finger_links):
            lo, hi = (np.array(v) for v in w.p.getAABB(w.arm, j, physicsClientId=w.client))
            corners = np.array(
                [[x, y, z] for x in (lo[0], hi[0]) for y in (lo[1], hi[1]) for z in (lo[2], hi[2])]
            )
            local = (corners - tcp[:3, 3]) @ tcp[:3, :3]  # axis-aligned: bounds map to bounds
            f_lo, f_hi = local.min(0), local.max(0)
            # the collision shape lies within the planner's finger box (PyBullet pads an AABB by up
            # to 4 mm), and its inner face stands at half the opening
            b_lo, b_hi = boxes[k]
            assert (f_lo >= b_lo - 0.005).all() and (f_hi <= b_hi + 0.005).all(), (k, f_lo, f_hi, b_lo, b_hi)
            inner = f_lo[1] if b_lo[1] > 0 else -f_hi[1]
            assert inner == pytest.approx(width / 2, abs=0.005)
            # the fingertips stand finger_tip past the TCP
            assert f_hi[2] == pytest.approx(spec.gripper.geometry.finger_tip, abs=0.005)


def _rx(a: float) -> np.ndarray:
    return np.array([[1, 0, 0], [0, math.cos(a), -math.sin(a)], [0, math.sin(a), math.cos(a)]])


def test_the_xarm_gripper_boxes_bound_its_meshes_over_the_whole_stroke():
    """The xArm Gripper's numbers in the registry, measured again from pybullet_data's meshes."""
    import trimesh

    d = R._pybullet_data() / "xarm" / "xarm_gripper" / "meshes"
    g = ROBOTS["xarm6"].gripper.geometry
    lo, hi = np.full(3, np.inf), np.full(3, -np.inf)
    for theta in np.linspace(0.0, 0.85, 18):  # the drive joint's range
        for name, origin, side in (
            ("left_outer_knuckle", (0, 0.035, 0.059098), 1),
            ("left_inner_knuckle", (0, 0.02, 0.074098), 1),
            ("right_outer_knuckle", (0, -0.035, 0.059098), -1),
            ("right_inner_knuckle", (0, -0.02, 0.074098), -1),
        ):
            v = trimesh.load(d / f"{name}.STL").vertices @ _rx(side * theta).T + np.array(origin)
            lo, hi = np.minimum(lo, v.min(0)), np.maximum(hi, v.max(0))
    base = trimesh.load(d / "base_link.STL").vertices
    lo, hi = np.minimum(lo, base.min(0)), np.maximum(hi, base.max(0))
    lo[2] -= R.XARM_TCP_Z
    hi[2] -= R.XARM_TCP_Z
    assert (np.abs(lo[:2]) <= np.array(g.palm_half) + 1e-4).all() and (
        hi[:2] <= np.array(g.palm_half) + 1e-4
    ).all()
    assert g.palm_z[0] <= lo[2] + 1e-4 and hi[2] <= g.palm_z[1] + 1e-4
    # The finger at the composed pose: its inner face where the composer puts it, its tip finger_tip
    # past the TCP, its size the finger box's.
    a = R.XARM_FINGER_THETA
    pos = np.array((0, 0.035, 0.059098)) + _rx(a) @ np.array((0, 0.035465, 0.042039))
    v = trimesh.load(d / "left_finger.STL").vertices + pos  # the finger stays parallel
    assert v[:, 1].min() == pytest.approx(R.XARM_INNER_FACE_AT_THETA, abs=2e-4)
    assert v[:, 2].max() - R.XARM_TCP_Z == pytest.approx(g.finger_tip, abs=5e-4)
    assert v[:, 2].max() - v[:, 2].min() <= g.finger_length + 5e-4
    assert v[:, 1].max() - v[:, 1].min() <= g.finger_thickness + 5e-4
    assert v[:, 0].max() - v[:, 0].min() <= g.finger_width + 5e-4


def test_fr3_is_the_panda_renamed_with_the_fr3_limits():
    root = ET.parse(ROBOTS["fr3"].urdf_path()).getroot()
    names = [j.get("name") for j in root.iter("joint")]
    assert not [n for n in names if "panda" in n]
    limits = {j.get("name"): j.find("limit") for j in root.iter("joint") if j.find("limit") is not None}
    for i in range(7):
        lim = limits[f"fr3_joint{i + 1}"]
        assert float(lim.get("lower")) == pytest.approx(R.FR3_LOWER[i])
        assert float(lim.get("upper")) == pytest.approx(R.FR3_UPPER[i])
        assert float(lim.get("velocity")) == pytest.approx(R.FR3_VELOCITY[i])
    for mesh in root.iter("mesh"):  # composed files name their meshes by absolute path
        assert mesh.get("filename").startswith("/")


def test_an_impossible_inertia_is_made_physical_and_a_possible_one_left_alone():
    root = ET.fromstring(
        '<robot><link name="a"><inertial><inertia ixx="0.0248674" ixy="-0.00430651" ixz="-0.00067797" '
        'iyy="0.00485548" iyz="0.00457245" izz="0.02387827"/></inertial></link>'
        '<link name="b"><inertial><inertia ixx="0.002" ixy="0" ixz="0" iyy="0.003" iyz="0" izz="0.004"/>'
        "</inertial></link></robot>"
    )
    R._physical_inertias(root)
    a, b = root.iter("inertia")
    keys = ("ixx", "ixy", "ixz", "iyy", "iyz", "izz")
    va = [float(a.get(k)) for k in keys]
    tensor = np.array([[va[0], va[1], va[2]], [va[1], va[3], va[4]], [va[2], va[4], va[5]]])
    lam = np.linalg.eigvalsh(tensor)
    assert lam[0] + lam[1] >= lam[2] > 0  # the original breaks this by 0.2 g m^2
    assert [float(b.get(k)) for k in keys] == [0.002, 0.0, 0.0, 0.003, 0.0, 0.004]


def test_a_composed_urdf_is_rewritten_when_its_cache_file_was_changed():
    path = ROBOTS["xarm6"].urdf_path()
    good = path.read_text()
    path.write_text(good.replace("xarm_grasptarget", "elsewhere"))
    assert ROBOTS["xarm6"].urdf_path() == path and path.read_text() == good


def _yaml_doc(tmp_path, **change):
    """A YAML description of the Panda as a user's arm, with its URDF copied beside the file."""
    import shutil

    import yaml

    src = ROBOTS["panda"].urdf_path().parent
    shutil.copytree(src, tmp_path / "arm")
    doc = {
        "name": "my_arm",
        "urdf": "arm/panda.urdf",
        "tcp_frame": "panda_grasptarget",
        "arm_joints": [f"panda_joint{i}" for i in range(1, 8)],
        "ready": list(R.PANDA_READY),
        "accel_limits": [5.0] * 7,
        "jerk_limits": [1000.0] * 7,
        "torque_limits": [80.0] * 4 + [10.0] * 3,
        "body_links": ["panda_link5", "panda_hand"],
        "gripper": {
            "model": "franka_hand",
            "finger_joints": ["panda_finger_joint1", "panda_finger_joint2"],
            "geometry": {"max_width": 0.08, "grasp_force": 40.0},
        },
    }
    doc.update(change)
    path = tmp_path / "my_arm.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


def test_a_users_arm_is_read_from_yaml_and_planned_with(tmp_path):
    from planner.robot import Robot

    path = _yaml_doc(tmp_path)
    spec = robot_spec(str(path))
    assert spec.name == "my_arm" and spec.arm_control == "position" and spec.joint_stiffness == ()
    assert spec.urdf_path() == (tmp_path / "arm" / "panda.urdf").resolve()  # relative to the YAML file
    assert spec.gripper.geometry.grasp_force == 40.0 and spec.base_distances == R.PANDA_BASE_DISTANCES
    robot = Robot(spec)
    assert robot.dof == 7 and (robot.accel_limits == 5.0).all()
    # --robot-urdf replaces the file, not the description
    other = robot_spec(str(path), urdf=ROBOTS["panda"].urdf_path())
    assert other.name == "my_arm" and other.urdf_path() == ROBOTS["panda"].urdf_path()


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"colour": "red"}, r"unknown field\(s\) \['colour'\]"),
        ({"name": "../etc/passwd"}, "robot name is '../etc/passwd'"),
        ({"ready": [0.0] * 6}, "ready is .*expected 7 finite numbers"),
        ({"accel_limits": [float("nan")] * 7}, "accel_limits is .*expected 7 finite numbers > 0"),
        ({"urdf": "pybullet_data:franka_panda/panda.urdf"}, "expected a file path"),
        ({"backend": "kuka"}, "backend is 'kuka'"),
        ({"gripper": {"model": "x", "finger_joints": ["a"]}}, "finger_joints is"),
        (
            {"gripper": {"model": "x", "finger_joints": ["a", "b"], "geometry": {"max_width": -1}}},
            "max_width is -1",
        ),
    ],
)
def test_a_bad_yaml_arm_is_refused_naming_the_field(tmp_path, change, message):
    with pytest.raises(RobotSpecError, match=message):
        load_robot_yaml(_yaml_doc(tmp_path, **change))


def test_missing_fields_and_unknown_names_are_refused(tmp_path):
    import yaml

    path = tmp_path / "arm.yaml"
    path.write_text(yaml.safe_dump({"name": "x"}))
    with pytest.raises(RobotSpecError, match=r"missing field\(s\) \['urdf', 'tcp_frame'"):
        robot_spec(str(path))
    with pytest.raises(
        RobotSpecError,
        match=r"'kuka' is not a known robot: expected one of \['fr3', 'panda', 'ur5', 'xarm6'\]",
    ):
        robot_spec("kuka")
    with pytest.raises(ChordError, match="does not exist"):
        robot_spec("panda", urdf=tmp_path / "missing.urdf")
    with pytest.raises(ChordError, match="URDF .* does not exist"):
        dataclasses.replace(ROBOTS["panda"], urdf=str(tmp_path / "gone.urdf")).urdf_path()
