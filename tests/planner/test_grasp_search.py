"""The grasp search on parts chord was not tuned on: door slabs, drawer handles, walls, loads."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import trimesh
from trimesh.sample import sample_surface

from core.errors import ChordError
from planner.articulation import Joint
from planner.grasp import GraspCandidate, GraspConfig, antipodal_candidates, gripper_collisions, with_load
from planner.load import grasp_utilisation, part_load, read_urdf


def _mesh_samples(mesh: trimesh.Trimesh, n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Uniform surface samples [n, 3] of a mesh and their face normals [n, 3]."""
    pts, face = sample_surface(mesh, n, seed=seed)
    return np.asarray(pts, float), np.asarray(mesh.face_normals, float)[face]


def _boxes(*spec: tuple[tuple[float, float, float], tuple[float, float, float]]) -> trimesh.Trimesh:
    """One mesh of axis-aligned boxes given as (extents, centre)."""
    return trimesh.util.concatenate(
        [
            trimesh.creation.box(extents=e, transform=trimesh.transformations.translation_matrix(c))
            for e, c in spec
        ]
    )


def _still(T: int, pos) -> np.ndarray:
    track = np.broadcast_to(np.eye(4), (T, 4, 4)).copy()
    track[:, :3, 3] = pos
    return track


# A door leaf 25 cm wide (y), 23 cm tall (z), 13 mm thick (x), standing with its foot 3 cm up.
DOOR = ((0.013, 0.25, 0.23), (0.0, 0.0, 0.03 + 0.115))


def test_door_slab_has_side_approaches():
    # 10,000 samples (~3 mm apart on the leaf): as many candidates as at 20,000 (the search's cap),
    # 1,540 side and 770 top of them, 175 and 100 free; half the collision checks' time.
    pts, normals = _mesh_samples(_boxes(DOOR), 10000, seed=0)
    cands = antipodal_candidates(pts, GraspConfig(), np.random.default_rng(0), normals)
    assert len(cands) > 1000  # thousands of candidates over the whole leaf
    across = [c for c in cands if abs(c.T_part_ee[0, 1]) > 0.95]  # closing across the thickness
    assert across and all(abs(c.width - 0.013) < 0.004 for c in across)
    # Side approaches: horizontal into the leaf's free vertical edges (along +-y), and from above.
    side = [c for c in across if abs(c.T_part_ee[1, 2]) > 0.95]
    top = [c for c in across if c.T_part_ee[2, 2] < -0.95]
    assert len(side) > 20 and len(top) > 20
    # The free ones straddle the free vertical edges (the fingers reach 5.4 cm in), or the top.
    track = _still(3, [0.0, 0.0, 0.0])
    traj = np.broadcast_to(pts, (3, *pts.shape))
    empty = np.zeros((3, 0, 3))
    free_side = [
        c for c, v in zip(side, gripper_collisions(side, track, traj, empty, 0.0), strict=True) if not v
    ]
    free_top = [
        c for c, v in zip(top, gripper_collisions(top, track, traj, empty, 0.0), strict=True) if not v
    ]
    assert free_side and all(abs(c.T_part_ee[1, 3]) > 0.125 - 0.054 for c in free_side)
    assert free_top and all(c.T_part_ee[2, 3] > 0.26 - 0.054 for c in free_top)


def test_drawer_handle_bar_is_grasped_from_the_front():
    # A 10 cm bar, 28 mm deep (x) and 16 mm tall (z), on a drawer's front panel (x < 0).
    panel = ((0.015, 0.3, 0.2), (-0.0075, 0.0, 0.15))
    bar = ((0.028, 0.10, 0.016), (0.014, 0.0, 0.15))
    pts, normals = _mesh_samples(_boxes(panel, bar), 20000, seed=1)
    cands = antipodal_candidates(pts, GraspConfig(), np.random.default_rng(1), normals)
    on_bar = [c for c in cands if c.T_part_ee[0, 3] > 0.003 and abs(c.T_part_ee[2, 1]) > 0.95]
    assert on_bar and all(abs(c.width - 0.016) < 0.004 for c in on_bar)
    # From the front: the tool's z points into the panel (-x), its fingers above and below the bar.
    front = [c for c in on_bar if c.T_part_ee[0, 2] < -0.95]
    assert front
    # The hand (+-0.104 m along the closing axis) clears a table 12 cm below the bar.
    track = _still(3, [0.0, 0.0, 0.0])
    traj = np.broadcast_to(pts, (3, *pts.shape))
    empty = np.zeros((3, 0, 3))
    verdicts = gripper_collisions(front, track, traj, empty, table_height=0.15 - 0.12)
    assert any(v is None for v in verdicts)
    # The same bar 6 cm above the table: the hand's body would pass through it. Rejected, as table.
    low = gripper_collisions(front, track, traj, empty, table_height=0.15 - 0.06)
    assert all(v is not None and v.startswith("table") for v in low)


@pytest.mark.parametrize("geometry", ["mesh", "flow"])
def test_two_samplings_of_one_part_both_give_grasps(geometry):
    # A 3 x 6 x 12 cm block on the table: different point sets must both give collision-free
    # grasps across its 3 cm (and its 6 cm) - the search does not hinge on where points lie.
    mesh = _boxes(((0.03, 0.06, 0.12), (0.0, 0.0, 0.06)))
    track = _still(5, [0.4, 0.0, 0.0])
    for seed in (0, 1):
        if geometry == "mesh":
            # 1,500 and 2,250 samples: ~10,000 candidates either way (the search's cap), ~2,050
            # free, 1,120+ across the 3 cm; 3,000 and 4,500 took twice the collision checks' time.
            pts, normals = _mesh_samples(mesh, 1500 + 750 * seed, seed)
        else:  # fewer, noisy points, normals estimated
            rng = np.random.default_rng(seed)
            pts, normals = _mesh_samples(mesh, 1500 + 500 * seed, seed + 10)
            pts = pts + rng.normal(0, 0.0005, pts.shape)
            normals = None
        cands = antipodal_candidates(pts, GraspConfig(), np.random.default_rng(seed), normals)
        world = pts + track[0, :3, 3]
        verdicts = gripper_collisions(
            cands, track, np.broadcast_to(world, (5, *world.shape)), np.zeros((5, 0, 3)), 0.0
        )
        free = [c for c, v in zip(cands, verdicts, strict=True) if v is None]
        assert len(free) > 50
        # Across the narrow 3 cm side among them.
        assert any(abs(c.T_part_ee[0, 1]) > 0.95 and abs(c.width - 0.03) < 0.004 for c in free)


def test_palm_through_a_wall_next_to_the_part_is_rejected():
    # A 3 cm cube, a wall 6 cm from its centre along +y. A top-down grasp closing along y puts
    # the hand (+-10.4 cm along y) through the wall; its fingers (out to 4.9 cm) would clear it.
    # Closing along x turns the hand parallel to the wall: free.
    cube = _boxes(((0.03, 0.03, 0.03), (0.0, 0.0, 0.015)))
    pts, normals = _mesh_samples(cube, 4000, 0)
    cands = antipodal_candidates(pts, GraspConfig(), np.random.default_rng(0), normals)
    top = [c for c in cands if c.T_part_ee[2, 2] < -0.99 and c.T_part_ee[2, 3] > 0.012]
    along_y = [c for c in top if abs(c.T_part_ee[1, 1]) > 0.99]
    along_x = [
        c for c in top if abs(c.T_part_ee[0, 1]) > 0.99 and abs(c.T_part_ee[1, 3]) < 0.005
    ]  # wrist: 4.4 cm
    assert along_y and along_x
    gy, gz = np.meshgrid(np.linspace(-0.2, 0.2, 81), np.linspace(0.0, 0.3, 61))
    wall = np.stack([gy.ravel(), np.full(gy.size, 0.06), gz.ravel()], axis=1)  # plane y = 6 cm
    track = _still(3, [0.0, 0.0, 0.0])
    part = np.broadcast_to(pts, (3, *pts.shape))
    other = np.broadcast_to(wall, (3, *wall.shape))
    empty = np.zeros((3, 0, 3))
    # Grasps the table and the part alone allow ...
    ok_y = [
        c for c, v in zip(along_y, gripper_collisions(along_y, track, part, empty, 0.0), strict=True) if not v
    ]
    ok_x = [
        c for c, v in zip(along_x, gripper_collisions(along_x, track, part, empty, 0.0), strict=True) if not v
    ]
    assert ok_y and ok_x
    # ... the wall rejects when the hand is across it, and not when the hand is along it.
    assert all(
        v is not None and v.startswith("scene") for v in gripper_collisions(ok_y, track, part, other, 0.0)
    )
    assert all(v is None for v in gripper_collisions(ok_x, track, part, other, 0.0))


def test_load_rejects_a_weak_grasp_on_a_heavy_part_and_keeps_it_on_a_light_one():
    # A 4 cm cube lifted 10 cm: a top-down grasp across it carries the weight by friction,
    # 2 mu f = 2 x 0.6 x 70 = 84 N: 8.6 kg at most.
    cube = _boxes(((0.04, 0.04, 0.04), (0.0, 0.0, 0.02)))
    pts, normals = _mesh_samples(cube, 4000, 0)
    cfg = GraspConfig()
    cands = antipodal_candidates(pts, cfg, np.random.default_rng(0), normals)
    T = 21
    track = _still(T, [0.4, 0.0, 0.0])
    track[:, 2, 3] = np.linspace(0.0, 0.1, T)  # slow: 10 cm over 21 frames at 10 fps
    vol = 0.04**3
    light = part_load(track, pts, 10.0, density=0.2 / vol)  # 0.2 kg
    heavy = part_load(track, pts, 10.0, density=20.0 / vol)  # 20 kg
    assert light.mass == pytest.approx(0.2, rel=0.02) and heavy.mass == pytest.approx(20.0, rel=0.02)
    kept, weak = with_load(cands, light, cfg)
    assert weak == 0 and len(kept) == len(cands)
    # Held straight down through the centre of mass: the weight against 84 N of friction.
    centred = np.eye(4)
    centred[:3, :3] = [[0, 1, 0], [1, 0, 0], [0, 0, -1]]  # closing along x, approach down
    centred[:3, 3] = light.com
    u = grasp_utilisation(light, centred[None], np.array([0.04]), 0.6, 70.0, 0.005)
    assert 1.0 / u[0] == pytest.approx(84.0 / (0.2 * 9.81), rel=1e-3)
    margins = np.array([c.load_margin for c in kept])
    assert (margins > 1.0).all()
    # The strongest hold closes vertically (from the side): the lower finger's normal bears the
    # weight, up to 2 f = 140 N (planner.load), not friction's 84 N.
    best = kept[int(np.argmax(margins))]
    assert abs(best.T_part_ee[2, 1]) > 0.95
    assert margins.max() == pytest.approx(140.0 / (0.2 * 9.81), rel=0.1) and margins.max() > 1.0 / u[0]
    kept, weak = with_load(cands, heavy, cfg)
    assert weak == len(cands) and kept == []


def test_joint_load_at_the_lever_arm():
    # A door on a vertical hinge: the grasp drives the hinge's friction, gravity has no torque
    # about a vertical axis. Grasped 20 cm from the axis the force is friction / 0.2 m.
    pts, _ = _mesh_samples(_boxes(DOOR), 4000, 0)
    T = 11
    joint = Joint(
        "revolute", np.array([0.0, 0.0, 1.0]), np.array([0.0, 0.125, 0.0]), np.linspace(0, 1.0, T), 0.0, 0, 1
    )
    load = part_load(_still(T, [0.0, 0.0, 0.0]), pts, 10.0, 700.0, joint=joint)
    assert load.joint_kind == "revolute" and load.joint_effort == pytest.approx(0.0, abs=1e-9)  # no URDF
    grasp = np.eye(4)
    grasp[:3, :3] = [[0, 1, 0], [0, 0, 1], [1, 0, 0]]  # closing along x (across the leaf), z down y
    grasp[:3, 3] = [0.0, -0.075, 0.2]  # 20 cm from the hinge line
    stiff = replace(load, joint_effort=2.0)  # N m
    u = grasp_utilisation(stiff, grasp[None], np.array([0.013]), 0.6, 70.0, 0.005)
    # The force 2 / 0.2 = 10 N is along the closing axis (normal to the leaf): borne by normal
    # force, up to 2 f = 140 N before the other finger unloads.
    assert u[0] == pytest.approx(10.0 / 140.0, rel=1e-6)


def test_a_pulled_drawer_handle_is_held_by_the_normals_not_by_friction():
    """A drawer pulled out along x against 60 N of friction (a stuck drawer): pinched front and
    back, the rear finger's normal bears the pull (60 N of 2 f = 140 N); pinched top and bottom,
    friction alone holds it (60 N of 2 mu f = 84 N). The first is the better grasp."""
    pts, _ = _mesh_samples(_boxes(((0.02, 0.10, 0.02), (0.0, 0.0, 0.0))), 2000, 0)  # the handle bar
    T = 11
    track = _still(T, [0.5, 0.0, 0.2])
    track[:, 0, 3] += np.linspace(0.0, 0.15, T)
    joint = Joint("prismatic", np.array([1.0, 0.0, 0.0]), np.zeros(3), np.linspace(0, 0.15, T), 0.0, 0, 1)
    load = replace(part_load(track, pts, 10.0, 700.0, joint=joint), joint_effort=60.0)  # N
    front_back = np.eye(4)
    front_back[:3, :3] = [[0, 1, 0], [1, 0, 0], [0, 0, -1]]  # closing along x (the pull), approach down
    top_bottom = np.eye(4)
    top_bottom[:3, :3] = [[0, 0, 1], [1, 0, 0], [0, 1, 0]]  # closing along z, approach along x
    u = grasp_utilisation(load, np.stack([front_back, top_bottom]), np.array([0.02, 0.02]), 0.6, 70.0, 0.005)
    assert u[0] == pytest.approx(60.0 / 140.0, rel=1e-6)
    assert u[1] == pytest.approx(60.0 / 84.0, rel=1e-6)
    kept, weak = with_load(
        [
            GraspCandidate(front_back, 0.02, "grasp", 1.0, 1.0, np.zeros((2, 3))),
            GraspCandidate(top_bottom, 0.02, "grasp", 1.0, 1.0, np.zeros((2, 3))),
        ],
        load,
        GraspConfig(),
    )
    assert weak == 0 and kept[0].T_part_ee[0, 1] == 1.0  # the front-and-back pinch ranks first
    assert kept[0].load_margin == pytest.approx(140.0 / 60.0) and kept[1].load_margin == pytest.approx(
        84.0 / 60.0
    )


URDF = """<?xml version="1.0"?>
<robot name="box_on_hinge">
  <link name="base">
    <inertial><origin xyz="0 0 0.05"/><mass value="3.0"/><inertia ixx="1" iyy="1" izz="1" ixy="0" ixz="0" iyz="0"/></inertial>
  </link>
  <link name="lid">
    <inertial><origin xyz="0.1 0 0"/><mass value="0.75"/><inertia ixx="1" iyy="1" izz="1" ixy="0" ixz="0" iyz="0"/></inertial>
  </link>
  <joint name="hinge" type="revolute">
    <parent link="base"/><child link="lid"/>
    <origin xyz="0 0 0.1" rpy="0 0 0"/><axis xyz="0 1 0"/>
    <limit lower="0" upper="2" effort="5" velocity="1"/>
    <dynamics damping="0.2" friction="0.3"/>
  </joint>
</robot>
"""


def test_mass_and_joint_friction_come_from_the_urdf(tmp_path):
    path = tmp_path / "model.urdf"
    path.write_text(URDF)
    links, joints = read_urdf(path)
    assert links["lid"].mass == 0.75 and links["base"].mass == 3.0
    np.testing.assert_allclose(links["lid"].com, [0.1, 0, 0])
    (hinge,) = joints
    assert (hinge.friction, hinge.damping, hinge.parent, hinge.child) == (0.3, 0.2, "base", "lid")
    # The lid: 20 cm along x from a hinge along y at z = 0.1, lying flat, turned 0.5 rad over
    # 11 frames at 10 fps (0.5 rad/s at most... 0.05 rad per frame).
    T = 11
    lid = np.stack(np.meshgrid(np.linspace(0, 0.2, 21), np.linspace(-0.1, 0.1, 21), [0.1]), -1).reshape(-1, 3)
    track = _still(T, [0.0, 0.0, 0.0])
    joint = Joint(
        "revolute", np.array([0.0, 1.0, 0.0]), np.array([0.0, 0.0, 0.1]), np.linspace(0, 0.5, T), 0.0, 0, 1
    )
    load = part_load(track, lid, 10.0, 700.0, joint=joint, urdf=path, T_world_object=np.eye(4))
    assert load.mass == 0.75 and "lid" in load.mass_source and "hinge" in load.joint_source
    # Gravity's torque at the flat lid (0.75 kg x 9.81 x 0.1 m) + friction + damping x 0.5 rad/s.
    assert load.joint_effort == pytest.approx(0.75 * 9.81 * 0.1 + 0.3 + 0.2 * 0.5, rel=1e-6)
    # No joint in the flow: a free part, the massive link nearest its points.
    free = part_load(track, lid, 10.0, 700.0, urdf=path, T_world_object=np.eye(4))
    assert free.mass == 0.75 and free.joint_kind == ""
    bad = tmp_path / "bad.urdf"
    bad.write_text(URDF.replace('value="0.75"', 'value="nan"'))
    with pytest.raises(ChordError, match="mass nan"):
        read_urdf(bad)


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"friction": float("nan")}, "GraspConfig.friction"),
        ({"friction": 0.0}, "GraspConfig.friction"),
        ({"density": -1.0}, "GraspConfig.density"),
        ({"anchors": 0}, "GraspConfig.anchors"),
        ({"collision_margin": 0.04}, "GraspConfig.collision_margin"),  # no width left to grasp
    ],
)
def test_grasp_config_names_the_bad_field(kwargs, field):
    with pytest.raises(ChordError, match=field):
        GraspConfig(**kwargs)


def test_joint_load_includes_the_part_inertia():
    """A 0.5 kg drawer pulled at 2 m/s^2 along a level axis: no gravity along it, no URDF
    friction, so the grasp must supply m a = 1 N; a hinged part swung at 4 rad/s^2 with its mass
    10 cm from the axis asks m r^2 alpha = 0.02 N m."""
    pts, _ = _mesh_samples(_boxes(((0.1, 0.1, 0.1), (0.0, 0.0, 0.0))), 2000, 0)
    T, fps = 11, 10.0
    t = np.arange(T) / fps
    vol = 0.1**3
    drawer = Joint("prismatic", np.array([1.0, 0.0, 0.0]), np.zeros(3), 0.5 * 2.0 * t**2, 0.0, 0, 1)
    load = part_load(_still(T, [0.5, 0.0, 0.2]), pts, fps, 0.5 / vol, joint=drawer)
    assert load.mass == pytest.approx(0.5, rel=0.02)
    assert load.joint_effort == pytest.approx(load.mass * 2.0, rel=1e-6)
    hinge = Joint(
        "revolute", np.array([0.0, 0.0, 1.0]), np.array([0.1, 0.0, 0.0]), 0.5 * 4.0 * t**2, 0.0, 0, 1
    )
    load = part_load(_still(T, [0.0, 0.0, 0.0]), pts, fps, 0.5 / vol, joint=hinge)
    r2 = float(np.sum((load.com - np.array([0.1, 0.0, 0.0]))[:2] ** 2))
    assert r2 == pytest.approx(0.01, rel=0.05)
    assert load.joint_effort == pytest.approx(load.mass * r2 * 4.0, rel=1e-6)  # gravity: no torque about z
