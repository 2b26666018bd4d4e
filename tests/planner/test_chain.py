"""Any articulation in the flow analysis: a kinematic tree of 1-DoF joints, the target part whose
path drives every moving joint, and a warning for joints the grasp cannot drive
(planner.analysis.kinematic_tree / choose_target)."""

from __future__ import annotations

import logging

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from planner import synthetic
from planner.analysis import analyse_flow
from planner.pipeline import PlannerConfig, plan_flow
from planner.rigid import apply


def _names(sf, seg) -> list[str]:
    """The true part name of each fitted part (majority of its points)."""
    out = []
    for p in seg.parts:
        lab = sf.part_of_point[p.indices]
        out.append(sf.part_names[int(np.bincount(lab[lab >= 0]).argmax())])
    return out


@pytest.mark.parametrize(("noise", "outliers"), [(0.0, 0.0), (0.002, 0.05)])
def test_a_chain_is_two_joints_and_the_target_is_the_distal_part(noise, outliers):
    sf = synthetic.two_joints(noise=noise, outliers=outliers, seed=1, elbow_deg=-30.0, head_deg=25.0)
    a = analyse_flow(sf.flow)
    seg, tree = a.objects[0], a.trees[0]
    name = _names(sf, seg)
    assert sorted(name) == ["arm", "base", "head"]
    # Root outwards: base -> arm (elbow), arm -> head; never base -> head (no 1-DoF joint fits it).
    assert [(name[j.parent], name[j.child], j.kind) for j in tree] == [
        ("base", "arm", "revolute"),
        ("arm", "head", "revolute"),
    ]
    for j, true_deg in zip(tree, (30.0, 25.0), strict=True):
        assert abs(float(j.axis[1])) > np.cos(np.radians(2.0))  # both hinges are about y
        assert np.degrees(np.ptp(j.values)) == pytest.approx(true_deg, abs=1.0)
    elbow_origin = tree[0].origin
    d = elbow_origin - np.array([0.5, 0.0, 0.10])
    assert np.linalg.norm(d - d[1] * np.array([0.0, 1.0, 0.0])) < 0.005
    # Holding the head drives both joints: it is the target, its joint's parent is the arm.
    assert name[a.target_part] == "head" and a.undriven == ()
    assert a.joint is tree[1] and name[a.joint.parent] == "arm"
    report = a.summary()
    assert report["target_part"] == a.target_part
    joints = report["objects"]["lamp"]["joints"]
    assert [(j["parent"], j["child"], j["kind"]) for j in joints] == [
        (j.parent, j.child, j.kind) for j in tree
    ]
    assert "undriven_joints" not in report


def test_joints_the_grasp_cannot_drive_are_reported(caplog):
    # The head hangs from the base on its own hinge: holding the arm cannot turn it, nor the reverse.
    sf = synthetic.two_joints(branch=True, elbow_deg=-30.0, head_deg=20.0)
    with caplog.at_level(logging.WARNING, logger="planner.analysis"):
        a = analyse_flow(sf.flow)
    name = _names(sf, a.objects[0])
    assert [(name[j.parent], name[j.child]) for j in a.trees[0]] == [("base", "arm"), ("base", "head")]
    # The arm's points travel farthest (25 cm arm): it is held; the head's joint is left undriven.
    assert name[a.target_part] == "arm"
    assert [name[k] for k in a.undriven] == ["head"]
    assert a.summary()["undriven_joints"] == list(a.undriven)
    assert "cannot drive" in caplog.text


def test_a_prismatic_joint_is_found_and_followed():
    sf = synthetic.drawer(travel=0.12, seed=2)
    result = plan_flow(sf.flow, None, PlannerConfig())
    a = result.analysis
    assert len(a.trees[0]) == 1 and a.joint is a.trees[0][0]
    j = a.joint
    assert j.kind == "prismatic"
    assert float(j.axis @ sf.joint["axis"]) > np.cos(np.radians(1.0))
    assert np.ptp(j.values) == pytest.approx(0.12, abs=0.002)
    assert result.report["analysis"]["joint"]["kind"] == "prismatic"
    # The plan follows the drawer: the tool moves 12 cm along the joint's axis while it is held,
    # and no further across it.
    ee = result.plan.ee_pose[:, :3]  # base frame; the base is not rotated about the motion
    T_base = np.eye(4)
    T_base[:3, 3] = result.plan.base_pose[:3]
    w, x, y, z = result.plan.base_pose[3:]
    T_base[:3, :3] = Rotation.from_quat([x, y, z, w]).as_matrix()
    ee_w = apply(np.broadcast_to(T_base, (1, 4, 4)), ee[None])[0]
    along = (ee_w - ee_w[0]) @ j.axis
    assert along.max() == pytest.approx(0.12, abs=0.01)
    assert result.report["tracking"]["waypoint_position_max_mm"] < 1.0
