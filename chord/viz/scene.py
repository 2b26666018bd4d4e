"""The scene in a recording: object meshes at their poses, the table top and the camera."""

from __future__ import annotations

import logging

import numpy as np

from chord.viz.record import Recording, safe_name
from core.errors import ChordError
from core.transforms import wxyz_to_xyzw

log = logging.getLogger(__name__)


def log_scene(rec: Recording, scene, *, table_size: float = 1.2) -> list[str]:  # scene: core.scene.Scene
    """Log every object's mesh (world frame, vertex colours), the table top and the camera, statically.

    Entities: ``world/scene/<object>`` (Mesh3D), ``world/table`` (Boxes3D, ``table_size`` metres
    square, centred under the objects), ``world/camera`` (pinhole, OpenCV axes). Objects with no
    mesh file (cousin parameters only) are skipped with a warning. Returns the logged object names.
    """
    import rerun as rr

    from core.mesh import load_mesh, mesh_colors

    logged = []
    centres = []
    for obj in scene.objects:
        if obj.mesh is None:
            log.warning("object %r has no mesh file; not shown (build it with `chord assets`)", obj.name)
            continue
        try:
            mesh = load_mesh(obj.mesh, obj.units)
        except ChordError as e:
            log.warning("object %r: mesh not shown (%s)", obj.name, e)
            continue
        T = obj.pose.matrix()
        v = mesh.vertices @ T[:3, :3].T + T[:3, 3]
        vc = (255 * mesh_colors(mesh)).round().astype(np.uint8)
        rec.log(
            f"world/scene/{safe_name(obj.name)}",
            rr.Mesh3D(
                vertex_positions=v.astype(np.float32),
                triangle_indices=np.asarray(mesh.faces, np.uint32),
                vertex_normals=(np.asarray(mesh.vertex_normals) @ T[:3, :3].T).astype(np.float32),
                vertex_colors=vc,
            ),
            static=True,
        )
        centres.append(v.mean(0))
        logged.append(obj.name)
    c = np.mean(centres, 0) if centres else np.zeros(3)
    rec.log(
        "world/table",
        rr.Boxes3D(
            centers=[[c[0], c[1], scene.table_height - 0.005]],
            half_sizes=[[table_size / 2, table_size / 2, 0.005]],
            colors=[[200, 190, 170]],
            fill_mode="solid",
        ),
        static=True,
    )
    log_camera(rec, scene.camera)
    return logged


def log_camera(rec: Recording, camera, entity: str = "world/camera") -> None:  # camera: core.scene.Camera
    """Log the scene camera: its pose (T_world_cam, OpenCV axes) and pinhole intrinsics."""
    import rerun as rr

    p = camera.T_world_cam
    rec.log(
        entity,
        rr.Transform3D(translation=p.position, quaternion=wxyz_to_xyzw(np.asarray(p.quat_wxyz))),
        static=True,
    )
    rec.log(
        entity,
        rr.Pinhole(
            image_from_camera=camera.K(),
            resolution=[camera.width, camera.height],
            camera_xyz=rr.ViewCoordinates.RDF,
            image_plane_distance=0.1,
        ),
        static=True,
    )
