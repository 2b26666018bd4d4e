"""URDFs load in PyBullet, settle on the table without jitter, and agree with our kinematics."""

from __future__ import annotations

import math
import xml.etree.ElementTree as ET

import numpy as np
import pytest

from assets.bullet import World, settle
from assets.urdf import write_asset
from core.asset import read_record, rotation, translation
from core.cousin_params import BananaParams, BoxParams, CylinderParams, LampParams, LaptopParams
from core.cousins import build_cousin
from core.errors import ChordError

COUSINS = {
    "banana": BananaParams(),
    "lamp": LampParams(),
    "laptop": LaptopParams(),
    "box": BoxParams(),
    "cylinder": CylinderParams(),
}


@pytest.mark.parametrize("kind", sorted(COUSINS))
def test_settles_on_table_without_jitter(tmp_path, kind):
    asset = build_cousin(COUSINS[kind], kind)
    files = write_asset(asset, tmp_path / kind)
    T = translation((0.1, -0.05, 0.0)) @ rotation((0, 0, 1), 0.4)
    with World() as world:
        world.add(kind, files.urdf, T)
        q0 = world.joint_values(kind)
        assert q0 == {j.name: 0.0 for j in asset.joints}
        report = settle(world, kind, seconds=2.0)  # 480 steps at 240 Hz
        q1 = world.joint_values(kind)
    assert report["linear_speed"] < 2e-3, report  # m/s
    assert report["angular_speed"] < 2e-2, report  # rad/s
    assert report["drift"] < 3e-3, report  # m: contact settling only, no sliding or toppling
    assert report["tilt"] < 0.01, report  # rad
    for j in q0:  # joint friction holds the rest pose against gravity
        assert abs(q1[j] - q0[j]) < math.radians(0.5), (j, q1[j])


def test_without_joint_friction_the_lamp_sags(tmp_path):
    """Guards the test above: the friction it relies on is what holds the lamp up."""
    files = write_asset(build_cousin(LampParams(friction=0.0)), tmp_path / "lamp")
    with World() as world:
        world.add("lamp", files.urdf, np.eye(4))
        world.step(240)
        q = world.joint_values("lamp")
    assert max(abs(v) for v in q.values()) > math.radians(2)


def test_mass_and_inertia_from_volume_and_density(tmp_path):
    size, rho = (0.2, 0.1, 0.05), 600.0
    files = write_asset(build_cousin(BoxParams(size=size, density=rho)), tmp_path / "box")
    link = ET.parse(files.urdf).getroot().find("link")
    mass = float(link.find("inertial/mass").get("value"))
    m = rho * size[0] * size[1] * size[2]
    assert mass == pytest.approx(m, rel=1e-6)
    inertia = link.find("inertial/inertia")
    x, y, z = size
    assert float(inertia.get("ixx")) == pytest.approx(m * (y * y + z * z) / 12, rel=1e-6)
    assert float(inertia.get("izz")) == pytest.approx(m * (x * x + y * y) / 12, rel=1e-6)
    com = [float(v) for v in link.find("inertial/origin").get("xyz").split()]
    np.testing.assert_allclose(com, [0, 0, z / 2], atol=1e-9)
    assert read_record(files.folder)["mass"] == pytest.approx(m, rel=1e-6)


def test_banana_mass_is_sane(tmp_path):
    rec = read_record(write_asset(build_cousin(BananaParams()), tmp_path / "banana").folder)
    assert 0.08 < rec["mass"] < 0.2  # kg: a real banana weighs 100-150 g
    assert rec["links"][0]["collision_pieces"] == 8


@pytest.mark.parametrize("kind", ["lamp", "laptop"])
def test_kinematics_match_pybullet(tmp_path, kind):
    asset = build_cousin(COUSINS[kind], kind)
    files = write_asset(asset, tmp_path / kind)
    rng = np.random.default_rng(3)
    T = translation((0.05, 0.1, 0.0)) @ rotation((0, 0, 1), -0.7)
    with World() as world:
        world.add(kind, files.urdf, T)
        np.testing.assert_allclose(world.pose(kind), T, atol=1e-6)
        for _ in range(3):
            q = {j.name: float(rng.uniform(j.lower, j.upper)) for j in asset.joints}
            world.set_joints(kind, q)
            ours = asset.link_transforms(q)
            for lk in asset.links[1:]:
                np.testing.assert_allclose(world.link_frame(kind, lk.name), T @ ours[lk.name], atol=1e-5)


def test_urdf_joint_limits_are_relative_to_rest(tmp_path):
    files = write_asset(build_cousin(LaptopParams(opening_deg=100, lid_limits_deg=(0, 135))), tmp_path / "l")
    limit = ET.parse(files.urdf).getroot().find("joint/limit")
    assert float(limit.get("lower")) == pytest.approx(math.radians(-100))
    assert float(limit.get("upper")) == pytest.approx(math.radians(35))
    rec = read_record(files.folder)
    np.testing.assert_allclose(rec["joints"][0]["limits_deg_absolute"], [0, 135])


def test_refuses_to_overwrite_a_folder_that_is_not_an_asset(tmp_path):
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep me")
    with pytest.raises(ChordError, match="not an asset folder"):
        write_asset(build_cousin(BoxParams()), tmp_path / "mine")
    assert (tmp_path / "mine" / "notes.txt").read_text() == "keep me"
    # An asset folder is replaced whole.
    write_asset(build_cousin(BoxParams()), tmp_path / "a")
    write_asset(build_cousin(CylinderParams()), tmp_path / "a")
    assert read_record(tmp_path / "a")["params"]["kind"] == "cylinder"
