"""Fixtures of the real/ tests: collision models, and a box-lift task that passes PyBullet and pre-flight.

The box task is the sim tests' scaffold (a 4 cm box on the table, its ground-truth lift flow)
planned by the product's planner: a plan that succeeds in PyBullet and, slowed down 2x, passes
every pre-flight rule; ``chord real`` re-simulates it against the same scene and flow.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

import pytest

from core.scene import Pose, Reference, Scene, SceneObject
from real.collision import collision_for
from real.limits import PANDA
from tests.real.plans import safe_plan
from tests.sim import scaffold as S


@dataclass(frozen=True)
class BoxTask:
    scene: Path  # scene.yaml: the box, with the lift flow as its reference
    flow: Path  # flow.npz: the box lifted 12 cm
    plan: Path  # plan.npz: planned from the flow, validated in PyBullet (its verdict written)
    folder: Path


@pytest.fixture(scope="session")
def box_task(tmp_path_factory) -> BoxTask:
    from planner.api import plan_file
    from sim.api import validate_plan

    d = tmp_path_factory.mktemp("box_task")
    flow_path = S.lift_flow().save(d / "flow.npz")
    scene = dataclasses.replace(S.box_scene(d), reference=Reference(flow=flow_path))
    scene_path = scene.save(d / "scene.yaml")
    plan_path = plan_file(flow_path, scene_path, d / "plan.npz").plan_path
    assert validate_plan(plan_path, scene_path, write_verdict=True).success
    return BoxTask(scene_path, flow_path, plan_path, d)


@pytest.fixture(scope="session")
def self_collision_model():
    """The Panda alone (self-collision only)."""
    with collision_for(PANDA) as model:
        yield model


@pytest.fixture(scope="session")
def box_collision_model(box_task):
    """The Panda with the box task's table and box (base at the plans' base pose, the origin)."""
    with collision_for(PANDA, scene=Scene.load(box_task.scene)) as model:
        yield model


@pytest.fixture(scope="session")
def post_collision_model(box_task, tmp_path_factory):
    """The box scene plus a fixed 6 cm post standing where the safe plan's tool passes at t = 1.5 s."""
    from real.kinematics import kinematics_for

    plan = safe_plan()
    tool = kinematics_for(PANDA).points(plan.q[150:151])[0, -1]
    d = tmp_path_factory.mktemp("post")
    urdf = S.write_box_urdf(d / "post.urdf", size=(0.06, 0.06, 0.06), name="post")
    scene = Scene.load(box_task.scene)
    post = SceneObject(
        "post", Pose(tuple(float(x) for x in tool), (1.0, 0.0, 0.0, 0.0)), urdf=urdf, movable=False
    )
    scene = dataclasses.replace(scene, objects=(*scene.objects, post), path=d / "scene.yaml")
    with collision_for(PANDA, scene=scene) as model:
        yield model
