"""The optimised 4D scene: Gaussians bound to control points deformed by the Fenwick-tree sequence.

``Scene4D`` gathers what ``chord flow`` optimises and renders: each object's mesh and pose, its
surface Gaussians, its control points (with the near-surface set S_i), one ``Deformation`` over
all control points, and the skinning bindings. Only movable objects get the seed's control points
(and move); a static object gets one control point whose deformation stays zero, so it renders
and exports but never moves.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import torch
import trimesh
from torch import Tensor

from core.errors import ChordError
from core.flow import ObjectFlow
from core.mesh import object_mesh
from core.scene import Camera, Scene
from flowgen.config import FlowConfig, ScheduleConfig
from flowgen.control_points import (
    ControlPointConfig,
    ObjectControlPoints,
    control_points_from_mesh,
    split_by_part,
)
from flowgen.export import export_flow
from flowgen.fenwick import Deformation
from flowgen.gaussians import Gaussians, gaussians_from_meshes
from flowgen.kinematics import JointKinematics
from flowgen.parts import ObjectParts, object_parts
from flowgen.regularizers import (
    ground_penetration,
    knn_edges,
    part_edge_weights,
    spatial_rigidity,
    temporal_smoothness,
)
from flowgen.render import RenderOutput, render
from flowgen.skinning import bind, blend, skin, skin_weights

log = logging.getLogger(__name__)

_PARAMS = ("rot_nodes", "trans_nodes", "cov_log_scales", "cov_quats")


class Scene4D:
    """Gaussians, control points and their deformation for every object of a scene."""

    def __init__(
        self,
        meshes: list[trimesh.Trimesh],
        poses: np.ndarray,  # [O, 4, 4] T_world_obj
        movable: list[bool],  # [O]
        gaussians: Gaussians,
        control_points: list[ObjectControlPoints],  # one per object, world frame
        num_frames: int,
        table_height: float,
        device: torch.device,
        seed: int = 0,
        skin_neighbors: int = 4,
        parts: list[ObjectParts | None] | None = None,  # [O] rigid parts per object (None: one part)
        cross_part_rigidity: float = 0.0,  # rigidity weight of control-point edges across parts
    ):
        self.meshes, self.poses, self.movable = meshes, np.asarray(poses), list(movable)
        self.parts = list(parts) if parts is not None else [None] * len(meshes)
        # Global part ids: object o's part p is part_offset[o] + p; an object without parts is one part.
        counts = [1 if pt is None else pt.count for pt in self.parts]
        self.part_offset = np.concatenate([[0], np.cumsum(counts)[:-1]]).astype(np.int64)
        self.device, self.seed, self.table_height = device, seed, float(table_height)
        self.gaussians = gaussians.to(device)
        self.control_points = control_points
        self.deformation = Deformation.from_control_points(control_points, num_frames).to(device)
        d = self.deformation
        # Static objects' control points never move: their gradients are masked to zero, and Adam
        # leaves a parameter whose gradient is always zero exactly where it started.
        moving_cp = torch.tensor(
            [self.movable[i] for i in d.object_index.tolist()], dtype=d.rot_nodes.dtype, device=device
        )
        self._cp_mask = moving_cp[None, :, None]
        for p in (d.rot_nodes, d.trans_nodes):
            p.register_hook(lambda g: g * self._cp_mask)
        self.control_part = torch.as_tensor(
            np.concatenate(
                [
                    self.part_offset[i] + (np.zeros(len(c.positions), np.int64) if c.part is None else c.part)
                    for i, c in enumerate(control_points)
                ]
            ),
            device=device,
        )
        # Jointed objects move only through their root pose and joint values (flowgen.kinematics):
        # their control points' transforms come from there, so a part cannot leave its joint.
        self.kinematics: JointKinematics | None = None
        if any(m and pt is not None and pt.joints and pt.rest_frames is not None
               for m, pt in zip(self.movable, self.parts, strict=True)):  # fmt: skip
            self.kinematics = JointKinematics(
                self.parts, self.poses, self.movable, self.control_part, self.part_offset, num_frames
            ).to(device)
            d.kinematics = self.kinematics
        g = self.gaussians
        self.gaussian_binding = bind(
            g.means, g.object_index, d.positions, d.object_index, skin_neighbors,
            self._point_parts(g.means, g.object_index), self.control_part,
        )  # fmt: skip
        # S_i of the movable objects: the points the temporal and ground regularisers move.
        near = [torch.as_tensor(c.near_surface, dtype=torch.float32) for c in control_points]
        near_obj = [torch.full((len(n),), i, dtype=torch.long) for i, n in enumerate(near)]
        keep = [i for i, m in enumerate(self.movable) if m and len(near[i])]
        self.near_rest = torch.cat([near[i] for i in keep]).to(device)
        near_index = torch.cat([near_obj[i] for i in keep]).to(device)
        self.near_binding = bind(
            self.near_rest, near_index, d.positions, d.object_index, skin_neighbors,
            self._point_parts(self.near_rest, near_index), self.control_part,
        )  # fmt: skip
        # Rigidity edges: the k nearest within each part, plus the whole object's kNN edges that
        # cross a part boundary, weighted cross_part_rigidity (a joint lies between).
        within = knn_edges(d.positions, self.control_part)
        across = knn_edges(d.positions, d.object_index)
        across = across[self.control_part[across[:, 0]] != self.control_part[across[:, 1]]]
        self.edges = torch.cat([within, across])
        self.edge_weights = part_edge_weights(self.edges, self.control_part, cross_part_rigidity).to(device)
        # Joints: anchor points bound once to the parent part and once to the child part. A
        # revolute joint's anchors lie on its axis and must move together; a prismatic joint's
        # (its child's centre, a point along the axis, two off it) may only slide together along
        # the axis the parent carries (joint_attachment in regularisers()).
        self.joint_bindings = None
        anchors, sides, joint_of, kinds = [], ([], []), [], []
        for o, pt in enumerate(self.parts):
            for j in () if pt is None else pt.joints:
                anchors.append(torch.as_tensor(j.anchors, dtype=torch.float32))
                joint_of.append(torch.full((len(j.anchors),), len(kinds), dtype=torch.long))
                kinds.append(j.kind)
                for side, part in zip(sides, (j.parent, j.child), strict=True):
                    side.append(
                        torch.full((len(j.anchors),), int(self.part_offset[o]) + part, dtype=torch.long)
                    )
        self.joint_kinds = kinds
        self.joint_anchor_joint = torch.cat(joint_of).to(device) if joint_of else None
        if anchors:
            a = torch.cat(anchors).to(device)
            obj = self.control_part.new_tensor(
                [int(d.object_index[self.control_part == int(s_)][0]) for s_ in torch.cat(sides[0]).tolist()]
            )
            self.joint_bindings = tuple(
                bind(a, obj, d.positions, d.object_index, skin_neighbors, torch.cat(side).to(device),
                     self.control_part)
                for side in sides
            )  # fmt: skip
        # Control points a joint start placed frame by frame (the split leaves them be), and those
        # held at rest for the whole fit (a jointed object's root part the video shows still).
        self.placed = torch.zeros(len(self.control_part), dtype=torch.bool, device=device)
        self.held = torch.zeros(len(self.control_part), dtype=torch.bool, device=device)

    # -- construction -----------------------------------------------------------------------
    @classmethod
    def build(cls, scene: Scene, config: FlowConfig, device: torch.device | str = "cpu") -> Scene4D:
        """Load the scene's meshes and build Gaussians and control points (seed A.1).

        Raises ChordError for unreadable or implausible meshes (core.mesh) and for objects too
        small for the requested number of control points.
        """
        device = torch.device(device)
        meshes = [object_mesh(o) for o in scene.objects]
        poses = np.stack([o.pose.matrix() for o in scene.objects])
        parts: list[ObjectParts | None] = []
        for i, obj in enumerate(scene.objects):
            try:
                pt = object_parts(obj, seed=config.seed + i) if obj.movable and config.uses_parts else None
            except ChordError as e:
                raise ChordError(f"object {obj.name!r}: {e}") from e
            parts.append(pt)
            if pt is not None:
                # Every part's full geometry, hidden surfaces included (a drawer's body inside its
                # cabinet): a scene mesh may have been merged or cleaned, and what it lacks could
                # be neither seen moving nor held still.
                meshes[i] = pt.mesh()
        gaussians = gaussians_from_meshes(meshes, poses, config.gaussians_per_object, seed=config.seed)
        cp_config = ControlPointConfig(
            num_control_points=config.num_control_points, target_near_surface=config.near_surface_target
        )
        control_points: list[ObjectControlPoints] = []
        for i, (obj, mesh, pose, pt) in enumerate(zip(scene.objects, meshes, poses, parts, strict=True)):
            if obj.movable:
                log.info("control points for %s (K=%d)", obj.name, cp_config.num_control_points)
                try:
                    cps = control_points_from_mesh(mesh, pose, cp_config, seed=config.seed + i)
                    if pt is not None:
                        cps = split_by_part(cps, pt.label, cp_config.num_control_points, seed=config.seed + i)
                except ChordError as e:
                    raise ChordError(f"object {obj.name!r}: {e}") from e
                control_points.append(cps)
            else:
                control_points.append(_static_control_point(mesh, pose))
        return cls(meshes, poses, [o.movable for o in scene.objects], gaussians, control_points,
                   scene.frames, scene.table_height, device, seed=config.seed, parts=parts,
                   cross_part_rigidity=config.cross_part_rigidity)  # fmt: skip

    def _point_parts(self, points: Tensor, object_index: Tensor) -> Tensor:
        """[N] long global part id of each rest point [N, 3] of object ``object_index`` [N]."""
        out = torch.as_tensor(self.part_offset, device=points.device)[object_index.to(points.device)]
        for o, pt in enumerate(self.parts):
            if pt is None:
                continue
            sel = (object_index == o).nonzero().flatten().to(points.device)
            labels = pt.label(points[sel].detach().cpu().numpy())
            out[sel] = out[sel] + torch.as_tensor(labels, device=points.device)
        return out

    def part_of(self, points: np.ndarray, obj: int) -> np.ndarray:
        """[n] global part ids of world points [n, 3] of object ``obj`` (for the flow export)."""
        pt = self.parts[obj]
        base = int(self.part_offset[obj])
        return base + (np.zeros(len(points), np.int64) if pt is None else pt.label(points))

    # -- optimisation -----------------------------------------------------------------------
    @property
    def num_frames(self) -> int:
        return self.deformation.num_frames

    @property
    def num_objects(self) -> int:
        return len(self.meshes)

    def param_groups(self, schedule: ScheduleConfig) -> list[dict[str, Any]]:
        d = self.deformation
        kin = [] if self.kinematics is None else list(self.kinematics.parameters())
        return [
            {
                "name": "deformation",
                "params": [d.rot_nodes, d.trans_nodes, *kin],
                "lr": schedule.deformation_lr.start,
            },
            {"name": "control_scale", "params": [d.cov_log_scales], "lr": schedule.control_scale_lr.start},
            {"name": "control_rotation", "params": [d.cov_quats], "lr": schedule.control_rotation_lr.start},
        ]

    def set_learning_rates(
        self, optimizer: torch.optim.Optimizer, schedule: ScheduleConfig, progress: float
    ) -> dict[str, float]:
        """Set each group's learning rate for ``progress``; returns them for logging."""
        decays = {
            "deformation": schedule.deformation_lr,
            "control_scale": schedule.control_scale_lr,
            "control_rotation": schedule.control_rotation_lr,
        }
        out = {}
        for group in optimizer.param_groups:
            group["lr"] = decays[group["name"]].at(progress)
            out[f"lr_{group['name']}"] = group["lr"]
        return out

    def split(self, frame: int, optimizer: torch.optim.Optimizer | None = None) -> None:
        """Every frame after ``frame`` takes its deformation, except on control points a joint
        start placed frame by frame (``mark_placed``: their later frames were read from the
        video, not left unfitted); the nodes' Adam moments restart."""
        d = self.deformation
        with torch.no_grad():
            if not bool(self.placed.any()):
                d.split(frame)
            else:
                if not 0 <= frame < d.num_frames:
                    raise ValueError(f"split frame must be in 0..{d.num_frames - 1}, got {frame}")
                omega, trans = d.frame_vectors()
                free = ~self.placed
                omega[frame + 1 :, free] = omega[frame, free]
                trans[frame + 1 :, free] = trans[frame, free]
                d.set_frames(omega, trans)
            if self.kinematics is not None:
                self.kinematics.split(frame)
        if optimizer is not None:
            kin = [] if self.kinematics is None else list(self.kinematics.parameters())
            for p in (d.rot_nodes, d.trans_nodes, *kin):
                optimizer.state.pop(p, None)

    def hold_part(self, part: int) -> None:
        """Hold global part ``part``'s control points where they are for the rest of the fit: their
        deformation gradients are masked to zero (as a static object's)."""
        sel = self.control_part == part
        self.held |= sel
        self._cp_mask[0, sel.to(self._cp_mask.device), 0] = 0.0
        obj = int(np.searchsorted(self.part_offset, part, side="right")) - 1
        if self.kinematics is not None and self.kinematics.covers(obj) and part == self.part_offset[obj]:
            self.kinematics.hold_root(obj)

    def motion_held(self) -> bool:
        """Whether no step can change any movable object's motion: each is held where a start put
        it (every control point held, or, moved through its joints, its root and joints held)."""
        kin = self.kinematics
        obj = self.deformation.object_index.to(self.held.device)
        for o, movable in enumerate(self.movable):
            if not movable:
                continue
            if kin is not None and kin.covers(o):
                if o not in kin.held_objects() or not kin.joints_held(o):
                    return False
            elif not bool(self.held[obj == o].all()):
                return False
        return any(self.movable)

    def mark_placed(self, found_objects: set[int]) -> None:
        """Mark the control points of objects ``found_objects`` as placed frame by frame (``split``)."""
        for o in found_objects:
            self.placed |= self.deformation.object_index.to(self.placed.device) == o
        if self.kinematics is not None:
            self.kinematics.placed |= set(found_objects)

    def deformed_gaussians(self, frames: Tensor) -> tuple[Tensor, Tensor]:
        """Means [F, N, 3] and rotations [F, N, 4] (wxyz) of the Gaussians at ``frames`` [F]."""
        means, quats = skin(
            self.deformation, self.gaussian_binding, self.gaussians.quats, frames.to(self.device)
        )
        return means, quats

    def render_frames(
        self,
        frames: Tensor,
        camera: Camera,
        background: tuple[float, float, float] = (1.0, 1.0, 1.0),
        deformed: tuple[Tensor, Tensor] | None = None,  # deformed_gaussians(frames), if already made
    ) -> RenderOutput:
        """Render ``frames`` [F] (long) of the deforming scene: RGB, alpha, depth, object masks."""
        means, quats = self.deformed_gaussians(frames) if deformed is None else deformed
        g = self.gaussians
        return render(means, quats, g.scales, g.opacities, g.colors, g.object_index, self.num_objects,
                      camera, background=background)  # fmt: skip

    def render_rest(
        self, camera: Camera, background: tuple[float, float, float] = (1.0, 1.0, 1.0)
    ) -> RenderOutput:
        """The static snapshot: frame 0 is the rest pose by construction (it has no parameters)."""
        return self.render_frames(torch.zeros(1, dtype=torch.long), camera, background)

    def regularisers(self) -> dict[str, Tensor]:
        """Temporal smoothness and ground penetration on S_i, local rigidity on the control points.

        With parts, "spatial" also holds the joint attachment (logged alone as "joint"): the mean
        squared distance, metres^2, between each joint-axis point carried by the parent part and
        by the child part; zero for any turn about the joint's axis.
        """
        d = self.deformation
        motion = d()
        near, _ = skin(d, self.near_binding)
        out = {
            "temporal": temporal_smoothness(near),
            "spatial": spatial_rigidity(d.positions, motion, self.edges, self.edge_weights),
            "ground": ground_penetration(near, self.table_height, rest=self.near_rest),
        }
        if self.joint_bindings is not None:
            w = skin_weights
            parent, child = (
                blend(b, w(b, d.positions, d.cov_log_scales, d.cov_quats), motion, d.positions)[0]
                for b in self.joint_bindings
            )
            joint = joint_attachment(parent, child, self.joint_anchor_joint, self.joint_kinds)
            out["spatial"] = out["spatial"] + joint
            out["joint"] = joint
        return out

    # -- checkpoint state -------------------------------------------------------------------
    def state_tensors(self) -> dict[str, Tensor]:
        out = {k: getattr(self.deformation, k).detach().cpu() for k in _PARAMS}
        # What the joint start decided (it runs once, before the first step): a resumed run keeps it.
        out["placed"], out["held"] = self.placed.cpu(), self.held.cpu()
        if self.kinematics is not None:
            out.update({f"kinematics.{k}": v.detach().cpu() for k, v in self.kinematics.named_parameters()})
            out["kinematics.joint_free"] = self.kinematics.joint_free.detach().cpu().clone()
        return out

    def load_state_tensors(self, tensors: dict[str, Tensor]) -> None:
        missing = [k for k in _PARAMS if k not in tensors]
        if missing:
            raise ChordError(f"checkpoint lacks {missing}: it was written by another kind of run")
        with torch.no_grad():
            for k in _PARAMS:
                p = getattr(self.deformation, k)
                if tensors[k].shape != p.shape:
                    raise ChordError(
                        f"checkpoint {k} has shape {list(tensors[k].shape)}, this run {list(p.shape)}: "
                        "the scene or config changed since the checkpoint"
                    )
                p.copy_(tensors[k].to(p))
            if self.kinematics is not None:
                for k, p in self.kinematics.named_parameters():
                    v = tensors.get(f"kinematics.{k}")
                    if v is None or v.shape != p.shape:
                        raise ChordError(
                            f"checkpoint lacks kinematics.{k} of this run's shape: the scene or code changed"
                        )
                    p.copy_(v.to(p))
        if "placed" in tensors and tensors["placed"].shape == self.placed.shape:
            self.placed = tensors["placed"].to(self.placed)
            if self.kinematics is not None:
                placed_obj = self.deformation.object_index[
                    self.placed.to(self.deformation.object_index.device)
                ]
                self.kinematics.placed = set(torch.unique(placed_obj).tolist())
        if "held" in tensors and tensors["held"].shape == self.held.shape:
            for part in torch.unique(self.control_part[tensors["held"].to(self.held.device)]).tolist():
                self.hold_part(int(part))
        free = tensors.get("kinematics.joint_free")
        if (
            self.kinematics is not None
            and free is not None
            and free.shape == self.kinematics.joint_free.shape
        ):
            if not bool(((free == 0) | (free == 1)).all()):  # a gradient mask: NaN or 0.5 would scale steps
                raise ChordError(
                    f"checkpoint kinematics.joint_free is {free.tolist()}, expected 0 (held) or 1 (free) per joint"
                )
            self.kinematics.joint_free.copy_(free.to(self.kinematics.joint_free))

    # -- outputs ----------------------------------------------------------------------------
    def export_flow(
        self,
        scene: Scene,
        prior: str,
        points_per_object: int,
        provenance: dict[str, Any],
        min_points_per_part: int = 0,
    ) -> ObjectFlow:
        with torch.no_grad():
            return export_flow(
                self.meshes, self.poses, self.deformation, scene.object_names, scene.fps, prior,
                points_per_object=points_per_object, prompt=scene.prompt,
                camera=scene.camera.to_dict(), provenance=provenance, seed=self.seed,
                part_of=self.part_of, control_part=self.control_part,
                min_points_per_part=min_points_per_part,
            )  # fmt: skip

    def write_preview(self, path: str | Path, camera: Camera, fps: float) -> Path:
        """The static snapshot, then the motion, as an MP4 (GIF without an encoder)."""
        from flowgen.preview import render_preview

        g = self.gaussians
        with torch.no_grad():
            means, quats = self.deformed_gaussians(torch.arange(self.num_frames))
            return render_preview(path, means, quats, g.means, g.quats, g.scales, g.opacities, g.colors,
                                  g.object_index, self.num_objects, camera, fps=fps)  # fmt: skip


def joint_attachment(
    parent: Tensor,  # [T, A, 3] anchor points carried by their joint's parent part, world metres
    child: Tensor,  # [T, A, 3] the same anchors carried by the child part
    anchor_joint: Tensor,  # [A] long: the joint of each anchor
    kinds: list[str],  # [J] "revolute" or "prismatic"
) -> Tensor:
    """Mean over anchors and frames of the squared violation of each anchor's joint, metres^2.

    Revolute: the anchors lie on the axis, so parent and child carry them to the same place (zero
    for any turn about the axis). Prismatic: the child's offsets d_k = child_k - parent_k must all
    be equal (no turn) and parallel to the axis the parent carries (from its first two anchors,
    which lie along the axis): zero for any slide along the axis.
    """
    diff = child - parent  # [T, A, 3]
    residual = diff.pow(2).sum(dim=-1)  # [T, A]: revolute
    for j, kind in enumerate(kinds):
        if kind != "prismatic":
            continue
        sel = (anchor_joint == j).nonzero().flatten()
        dj = diff[:, sel]  # [T, k, 3]
        mean = dj.mean(dim=1, keepdim=True)
        axis = parent[:, sel[1]] - parent[:, sel[0]]
        axis = axis / axis.norm(dim=-1, keepdim=True).clamp_min(1e-9)  # [T, 3]
        off_axis = mean[:, 0] - (mean[:, 0] * axis).sum(dim=-1, keepdim=True) * axis  # [T, 3]
        r = (dj - mean).pow(2).sum(dim=-1) + off_axis.pow(2).sum(dim=-1, keepdim=True)
        residual = residual.index_copy(1, sel, r)
    return residual.mean()


def _static_control_point(mesh: trimesh.Trimesh, pose: np.ndarray) -> ObjectControlPoints:
    """One control point at the object's centre: enough to bind a static object's points."""
    centre = pose[:3, :3] @ np.asarray(mesh.bounds.mean(axis=0)) + pose[:3, 3]
    extent = float(np.ptp(mesh.vertices, axis=0).max())
    empty = np.zeros((0, 3))
    return ObjectControlPoints(centre[None], np.array([max(extent, 1e-3)]), empty, empty, 0.0)
