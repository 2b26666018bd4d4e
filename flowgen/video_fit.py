"""The video-fit prior: 4D reconstruction of a given video (the seed's reconstruction of generated videos).

The rendered frames are pulled towards the video's frames (L1) and, when object masks are given,
each object's rendered coverage towards its mask (L1). With depth maps and the camera, each
object's observed surface, back-projected to 3D, and its deformed Gaussians are pulled together
(a robust two-sided chamfer), the term that reaches across large rotations. With the same
regularisers as the distillation, it lets a user bring a video made elsewhere, and it tests the
whole optimisation on a CPU against known motion.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from core.errors import ChordError
from core.rgbd import load_video
from core.scene import Camera, Scene
from flowgen.prior import PriorContext, PriorLoss

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class VideoFitConfig:
    """Weights of the video-fit losses."""

    photometric_weight: float = 1.0  # L1 on RGB in [0, 1], mean over pixels and pyramid levels
    mask_weight: float = 1.0  # L1 on per-object coverage in [0, 1], mean over pixels, objects, levels
    # Each L1 is also taken on 2x, 4x, ... average-pooled images: a silhouette that has moved off
    # its target still overlaps it at a coarse level, so the loss keeps pulling.
    pyramid_levels: int = 4
    # Squared distance between each object's rendered and true mask centroids (image coordinates
    # divided by the larger image side): a pull that reaches any distance.
    centroid_weight: float = 1.0
    # L1 on depth (metres) where the video's masks show an object and the render covers it. A
    # single view cannot tell "moved away" from "moved sideways and shrank"; depth (an RGB-D
    # video) can, and it is what pins rotations the silhouette hardly shows (a lamp head's 30 deg
    # turn: 8.6 deg off at weight 1, 0.8 deg at 10; banana 8.1 -> 4.1 mm; 30 overshoots on the
    # banana, 23 mm at the last frame). Used only when depth maps are given.
    depth_weight: float = 10.0
    # 3D term (needs depth, masks and the camera): each object's depth pixels back-projected to
    # world points, pulled to the nearest of its deformed Gaussians, and its Gaussians that the
    # render shows pulled to the nearest observed point; robust distance, metres, the mean of the
    # two directions. Per-pixel image losses see nothing of a target the render does not overlap
    # (a laptop lid that must turn 95 deg); nearest points in 3D do. 0 turns it off.
    point_weight: float = 3.0
    # Robust distance sqrt(d^2 + s^2) - s, metres: quadratic within s, then every point pulls
    # equally hard however far (a flying pixel or a mask error cannot dominate).
    point_scale: float = 0.005
    # Observed points per object and frame (a fixed random subset of its depth pixels).
    points_per_object: int = 256
    # Softness of the 3D correspondences, metres: each point is pulled to the mean of the other
    # side's points weighted by exp(-d^2 / (2 r^2)), r falling linearly from point_reach at the
    # start to 0 (the nearest point) at progress point_reach_until. The nearest observed point of
    # a laptop lid standing open behind its hinge is on the hinge: that pull cannot turn it; the
    # closed lid's points a few cm further can. Coarse to fine, like the image pyramid.
    point_reach: float = 0.1
    point_reach_until: float = 0.5  # fraction of the run, in (0, 1]
    # Before the first step, set every joint (revolute or prismatic, in chains too) to the value
    # per frame that best explains the back-projected depth points (flowgen.joint_init): a laptop
    # lid's 95 deg close has a barrier in the per-pixel depth loss that the optimisation alone
    # does not cross (73 -> 0.2 deg off), and a drawer's body hidden in its cabinet is seen by no
    # per-pixel loss. Every joint is written, whatever the size of its motion; an object whose
    # joint values the depth explains within point_scale is held there for the fit (a drawer
    # found within 2 mm ended the fit 15-25 mm off: its steps only moved it, flowgen.joint_init).
    joint_init: bool = True
    # Observed depth points per object and frame that search draws from; each joint's search
    # keeps at most 1,500 of those its part can reach (a small lever gets as many as a door).
    joint_points_per_object: int = 4096
    # A jointed object's root part (a cabinet, a door frame) is held at rest for the whole fit when
    # the depth video shows it move less than this, metres: the 3D term's own noise scale
    # (point_scale), within which a distance is depth noise rather than motion.
    root_still_m: float = 0.005
    # Before the first step, move every movable object without joints rigidly, frame by frame,
    # to where its depth points show it (flowgen.pose_init, tracked from the previous frame): a
    # box turned 74 deg was fitted 90 deg off from rest (20 mm mean error), as the 3D term pulls
    # each frame towards the nearest observed points, those of the rest pose; tracked, 0.1 mm.
    # A track the depth explains within point_scale is held for the fit (flowgen.pose_init).
    rigid_init: bool = True

    def __post_init__(self) -> None:
        for name in ("photometric_weight", "mask_weight", "centroid_weight", "depth_weight", "point_weight"):
            v = getattr(self, name)
            if not (isinstance(v, (int, float)) and np.isfinite(v) and v >= 0):
                raise ChordError(f"VideoFitConfig.{name} is {v!r}, expected a finite number >= 0")
        for name in ("point_scale", "point_reach", "root_still_m"):
            v = getattr(self, name)
            if not (isinstance(v, (int, float)) and np.isfinite(v) and 0 <= v <= 1):
                raise ChordError(f"VideoFitConfig.{name} is {v!r}, expected metres in [0, 1]")
        for name in ("pyramid_levels", "points_per_object", "joint_points_per_object"):
            v = getattr(self, name)
            if not (isinstance(v, int) and v >= 1):
                raise ChordError(f"VideoFitConfig.{name} is {v!r}, expected an integer >= 1")
        u = self.point_reach_until
        if not (isinstance(u, (int, float)) and 0 < u <= 1):
            raise ChordError(f"VideoFitConfig.point_reach_until is {u!r}, expected a fraction in (0, 1]")


class VideoFitPrior:
    """Fits the rendered video to a given one; implements flowgen.prior.MotionPrior.

    The scene's Gaussians model the objects, not the table or the room behind them: they are
    rendered over black and composited over a background plate (the video's per-pixel median over
    time), so the background neither pulls nor pushes them.
    """

    name = "video"
    render_background = (0.0, 0.0, 0.0)  # RGB the loop renders over; the plate replaces it

    def __init__(
        self,
        frames: np.ndarray,  # [T, H, W, 3] uint8, the video to fit
        masks: np.ndarray | None = None,  # [T, H, W] int labels: 0 background, i+1 = object i
        num_objects: int | None = None,  # O, objects in scene order (needed with masks)
        config: VideoFitConfig = VideoFitConfig(),
        depth: np.ndarray | None = None,  # [T, H, W] float metres along the optical axis (RGB-D)
        camera: Camera | None = None,  # the camera the video was taken with (any resolution)
        movable: list[bool]
        | None = None,  # [O] objects the 3D term applies to (None: all); chord flow: movable rigid ones
    ):
        if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
            raise ChordError(f"video frames must be uint8 [T, H, W, 3], got {frames.dtype} {frames.shape}")
        if masks is not None:
            if masks.shape != frames.shape[:3]:
                raise ChordError(
                    f"masks have shape {masks.shape}, expected {frames.shape[:3]} to match the video"
                )
            if num_objects is None:
                raise ValueError("num_objects is required with masks")
            labels = np.unique(masks)
            if labels.min() < 0 or labels.max() > num_objects:
                raise ChordError(f"mask labels {labels.tolist()} outside 0..{num_objects} (0 = background)")
            for i in range(num_objects):
                if not (masks == i + 1).any():
                    log.warning(
                        "object %d never appears in the masks: its mask loss only pushes it out of view", i
                    )
        if depth is not None:
            if depth.shape != frames.shape[:3]:
                raise ChordError(
                    f"depth has shape {depth.shape}, expected {frames.shape[:3]} to match the video"
                )
            if masks is None:
                raise ChordError("depth maps need object masks too: depth is compared on the objects only")
            if not np.isfinite(depth[masks > 0]).all():
                raise ChordError("depth maps hold non-finite values on the objects")
        self.frames_np, self.masks_np, self.num_objects, self.config = frames, masks, num_objects, config
        self.depth_np, self.camera = depth, camera
        if movable is not None and num_objects is not None and len(movable) != num_objects:
            raise ValueError(f"movable has {len(movable)} entries, expected one per object ({num_objects})")
        self.movable = list(movable) if movable is not None else None
        self.observed: torch.Tensor | None = None  # [T, O, M, 3] back-projected points, world metres
        self.observed_valid: torch.Tensor | None = None  # [T, O, M] bool
        self.target_labels: torch.Tensor | None = None  # [T, H, W] long: object or -1, render resolution
        self.render_camera: Camera | None = None  # the camera at the render resolution
        self.target_depth: torch.Tensor | None = None  # [T, H, W, 1] metres, NaN off the objects
        self.target: torch.Tensor | None = None  # [T, H, W, 3] float at the render resolution
        self.target_masks: torch.Tensor | None = None  # [T, H, W, O] float
        self.plate: torch.Tensor | None = None  # [H, W, 3] the static background estimate
        self.inputs: dict[str, str | None] = {}  # the files it was made from (for_scene), for the run record

    @classmethod
    def from_files(
        cls,
        video: str | Path,
        masks: str | Path | None,
        object_names: list[str],
        depth: str | Path | None = None,
        camera: Camera | None = None,
        movable: list[bool] | None = None,
    ) -> VideoFitPrior:
        """Load a video (MP4 or PNG folder), optional masks (``chord.masks``) and depth (``chord.depth``).

        ``object_names`` are the scene's objects in order; mask labels are matched by name, and
        objects the masks do not name get no mask loss term of their own. ``camera`` (the scene's)
        turns on the 3D term when depth is given; ``movable`` (one per object) spares it the static ones.
        """
        from core.rgbd import load_depth, load_masks

        frames = load_video(video)
        labels = None
        if masks is not None:
            raw, names = load_masks(masks)
            unknown = [n for n in names if n not in object_names]
            if unknown:
                raise ChordError(
                    f"masks {str(masks)!r} name objects {unknown} that the scene lacks ({object_names})"
                )
            # chord.masks: -1 background, i = names[i]; ours: 0 background, j + 1 = scene object j.
            lookup = np.array([object_names.index(n) + 1 for n in names] + [0], dtype=np.int64)
            labels = lookup[raw.astype(np.int64)]  # -1 indexes the trailing 0
        depth_maps = None if depth is None else load_depth(depth)
        return cls(frames, labels, len(object_names), depth=depth_maps, camera=camera, movable=movable)

    @classmethod
    def for_scene(
        cls,
        scene: Scene,
        video: str | Path | None = None,  # None: the scene's reference video (its frames/ folder if any)
        masks: str | Path | None = None,  # None with video None: the reference's masks.npz, if any
        depth: str | Path | None = None,  # None with video None: the reference's depth.npz, if any
        use_depth: bool = True,  # False: an RGB (+ masks) fit even when depth maps exist
    ) -> VideoFitPrior:
        """The video fit of ``scene``: its reference RGB-D video unless another video is given.

        The 3D term is applied to every movable object, rigid or jointed (static ones never move).
        ``inputs`` on the result records the files used. Raises
        ChordError for a missing file, or no video given to a scene without a reference video.
        """
        if video is None:
            if scene.reference is None or scene.reference.video is None:
                raise ChordError(
                    f"--prior video needs --video PATH: scene {scene.name!r} has no reference video"
                )
            ref = scene.reference.video.parent
            video = ref / "frames" if (ref / "frames").is_dir() else scene.reference.video
            masks = masks or ((ref / "masks.npz") if (ref / "masks.npz").exists() else None)
            depth = depth or ((ref / "depth.npz") if (ref / "depth.npz").exists() else None)
        if not use_depth:
            depth = None
        for what, path in (("--video", video), ("--masks", masks), ("--depth", depth)):
            if path is not None and not Path(path).exists():
                raise ChordError(f"{what} {str(path)!r} does not exist")
        log.info("video fit: %s%s%s", video, " + masks" if masks else "", " + depth" if depth else "")
        movable = [o.movable for o in scene.objects]
        prior = cls.from_files(
            video, masks, scene.object_names, depth=depth, camera=scene.camera, movable=movable
        )
        prior.inputs = {
            "video": str(video),
            "masks": None if masks is None else str(masks),
            "depth": None if depth is None else str(depth),
        }
        return prior

    @property
    def wants_points(self) -> bool:
        """Whether loss() needs the deformed Gaussian means (the 3D term is on)."""
        return (
            self.config.point_weight > 0
            and self.depth_np is not None
            and self.masks_np is not None
            and self.camera is not None
        )

    @property
    def size(self) -> tuple[int, int]:
        """(width, height) of the video, pixels."""
        return int(self.frames_np.shape[2]), int(self.frames_np.shape[1])

    def check(self, num_frames: int, width: int, height: int) -> None:
        """Raise ChordError unless the video has ``num_frames`` frames and the render's aspect ratio."""
        T, H, W = self.frames_np.shape[:3]
        if T != num_frames:
            raise ChordError(
                f"the video has {T} frames, but the scene asks for {num_frames} (scene `frames`)"
            )
        if abs(W / H - width / height) > 0.02 * (width / height):
            raise ChordError(
                f"the video is {W}x{H} pixels (aspect {W / H:.3f}) but the run renders "
                f"{width}x{height} (aspect {width / height:.3f})"
            )

    def prepare(self, context: PriorContext) -> None:
        """Check the video against the run and resample it to the render resolution."""
        W, H = self.size
        self.check(context.num_frames, context.width, context.height)
        device = context.first_frame.device
        video = torch.from_numpy(self.frames_np).to(device=device, dtype=torch.float32) / 255.0
        self.target = _resize(video, context.height, context.width)
        self.plate = self.target.median(dim=0).values
        if self.masks_np is not None:
            labels = torch.from_numpy(self.masks_np).to(device)
            onehot = F.one_hot(labels, self.num_objects + 1)[..., 1:].to(torch.float32)
            self.target_masks = _resize(onehot, context.height, context.width)
            empty = (self.target_masks.sum(dim=(0, 1, 2)) == 0).nonzero().flatten().tolist()
            if len(empty) == self.num_objects:
                raise ChordError("the masks are empty: no object appears in any frame")
        if self.depth_np is not None:
            # Resample by nearest neighbour: averaging depth across an object's edge invents
            # surfaces in between. Pixels off the objects become NaN (no supervision there).
            d = torch.from_numpy(np.where(self.masks_np > 0, self.depth_np, np.nan)).to(device)[:, None]
            d = F.interpolate(d.float(), size=(context.height, context.width), mode="nearest")
            self.target_depth = d[:, 0, :, :, None]
        if self.wants_points:
            assert self.masks_np is not None and self.depth_np is not None and self.camera is not None
            self.observed, self.observed_valid = observed_points(
                self.depth_np, self.masks_np, self.num_objects, self.camera.resized(W, H),
                self.config.points_per_object,
            )  # fmt: skip
            self.observed, self.observed_valid = self.observed.to(device), self.observed_valid.to(device)
            tm = self.target_masks
            self.target_labels = torch.where(tm.sum(dim=-1) > 0.5, tm.argmax(dim=-1), -1)
            self.render_camera = self.camera.resized(context.width, context.height)
            counts = self.observed_valid.sum(dim=-1).float().mean(dim=0).tolist()
            log.info(
                "video fit: 3D term on, observed points per frame by object %s", [round(c) for c in counts]
            )
        elif self.depth_np is not None and self.camera is None:
            log.info("video fit: no camera given, so no 3D term (depth is compared per pixel only)")
        if (W, H) != (context.width, context.height):
            log.info(
                "video fit: resampled the video from %dx%d to %dx%d", W, H, context.width, context.height
            )

    def initialise(self, model) -> dict:
        """Start every joint of ``model`` (a Scene4D) at the values the depth video shows, and hold
        each jointed object's root part the video shows still (``joint_init``), and move every
        movable object without joints along the rigid track its depth points show
        (``rigid_init``, logged); both need depth, masks and the camera. Returns {(object, joint
        name): values [T], deg or mm}."""
        cfg = self.config
        if self.depth_np is None or self.masks_np is None or self.camera is None:
            return {}
        jointed = cfg.joint_init and any(p is not None and p.joints for p in model.parts)
        rigid = cfg.rigid_init and any(
            m and (p is None or not p.joints) for m, p in zip(model.movable, model.parts, strict=True)
        )
        if not (jointed or rigid):
            return {}
        H, W = self.depth_np.shape[1:3]
        observed, valid = observed_points(
            self.depth_np, self.masks_np, self.num_objects, self.camera.resized(W, H), cfg.joint_points_per_object
        )  # fmt: skip
        found: dict = {}
        if jointed:
            from flowgen.joint_init import initialise_joints

            depth = torch.from_numpy(np.asarray(self.depth_np, dtype=np.float32))
            camera = self.camera.resized(W, H)
            found.update(
                initialise_joints(
                    model, observed, valid, cfg.root_still_m, depth, camera, noise=cfg.point_scale
                )
            )
        if rigid:
            from flowgen.pose_init import initialise_rigid

            initialise_rigid(model, observed, valid, cfg.point_scale)
        return found

    def loss(
        self,
        video: torch.Tensor,  # [B, T', H, W, 3] rendered
        *,
        progress: float,
        generator: torch.Generator,
        masks: torch.Tensor | None = None,  # [B, T', H, W, O] rendered per-object coverage
        frame_indices: torch.Tensor | None = None,  # [B, T'] which frames of the video were rendered
        depth: torch.Tensor | None = None,  # [B, T', H, W, 1] rendered expected depth, metres
        points: torch.Tensor | None = None,  # [B, T', N, 3] deformed Gaussian means, world metres
        point_object: torch.Tensor | None = None,  # [N] long: object of each Gaussian
    ) -> PriorLoss:
        if self.target is None:
            raise RuntimeError("VideoFitPrior.prepare() must run before loss()")
        idx = _frames(frame_indices, video)
        if masks is None:
            raise ValueError(
                "the video fit needs the rendered object masks (their sum is the alpha to composite with)"
            )
        cfg = self.config
        composite = video + (1.0 - masks.sum(dim=-1, keepdim=True)) * self.plate
        photometric = _pyramid_l1(composite, self.target[idx], cfg.pyramid_levels)
        loss = cfg.photometric_weight * photometric
        logs = {"photometric": float(photometric.detach())}
        if self.target_masks is not None:
            target_masks = self.target_masks[idx]
            mask_l1 = _pyramid_l1(masks, target_masks, cfg.pyramid_levels)
            centroid = _centroid_loss(masks, target_masks)
            loss = loss + cfg.mask_weight * mask_l1 + cfg.centroid_weight * centroid
            logs["mask"] = float(mask_l1.detach())
            logs["centroid"] = float(centroid.detach())
        if self.target_depth is not None and depth is not None:
            target = self.target_depth[idx]
            seen = torch.isfinite(target) & (masks.sum(dim=-1, keepdim=True) > 0.5)
            if bool(seen.any()):
                depth_l1 = (depth[seen] - target[seen]).abs().mean()
                loss = loss + cfg.depth_weight * depth_l1
                logs["depth"] = float(depth_l1.detach())
        if (
            self.observed is not None
            and points is not None
            and point_object is not None
            and depth is not None
        ):
            until = max(cfg.point_reach_until, 1e-6)
            reach = cfg.point_reach * max(0.0, 1.0 - progress / until)
            point = self._point_loss(points, point_object, idx, depth, reach)
            if point is not None:
                loss = loss + cfg.point_weight * point
                logs["points"] = float(point.detach())
                logs["point_reach"] = reach
        return PriorLoss(loss, logs)

    def _point_loss(
        self,
        points: torch.Tensor,  # [B, T', N, 3] world metres
        point_object: torch.Tensor,  # [N] long
        idx: torch.Tensor,  # [B, T'] frame of each rendered image
        depth: torch.Tensor,  # [B, T', H, W, 1] rendered expected depth, metres
        reach: float,  # metres, chamfer()'s
    ) -> torch.Tensor | None:
        """Mean over (image, movable object) pairs of the two-sided robust chamfer; None if no pair has
        points. Static objects are skipped: their Gaussians never move, so the term could only cost time."""
        assert self.observed is not None and self.observed_valid is not None
        assert self.render_camera is not None and self.target_labels is not None
        assert self.target_depth is not None
        if points.shape[:2] != idx.shape or points.shape[2] != point_object.shape[0]:
            raise ValueError(
                f"points {tuple(points.shape)} and point_object {tuple(point_object.shape)} do not match "
                f"the rendered frames {tuple(idx.shape)}"
            )
        groups = [(point_object == o).nonzero().flatten() for o in range(self.num_objects)]
        terms = []
        for b, t in np.ndindex(*idx.shape):
            f = int(idx[b, t])
            for o, sel in enumerate(groups):
                if self.movable is not None and not self.movable[o]:
                    continue
                observed = self.observed[f, o][self.observed_valid[f, o]]
                if len(observed) < _MIN_OBSERVED or len(sel) == 0:
                    continue
                model = points[b, t, sel]
                seen = visible_points(
                    model.detach(), depth[b, t, ..., 0], self.render_camera,
                    self.target_labels[f], self.target_depth[f, ..., 0], o,
                )  # fmt: skip
                terms.append(chamfer(model, observed, seen, self.config.point_scale, reach))
        if not terms:
            return None
        return torch.stack(terms).mean()


_MIN_OBSERVED = 8  # an object seen in fewer depth pixels of a frame gets no 3D term there
_VISIBLE_TOLERANCE = 0.01  # m: a Gaussian this far behind the rendered depth still counts as seen


def backproject(
    depth: np.ndarray,  # [H, W] metres along the optical axis
    camera: Camera,  # at the depth map's resolution (OpenCV axes, pixel centres at +0.5)
) -> np.ndarray:
    """[H, W, 3] world points of every pixel of a depth map (NaN where the depth is NaN).

    Raises ValueError when the camera's size is not the depth map's.
    """
    H, W = depth.shape
    if (camera.width, camera.height) != (W, H):
        raise ValueError(
            f"camera is {camera.width}x{camera.height} pixels, the depth map {W}x{H}: resize the camera"
        )
    z = np.asarray(depth, dtype=np.float64)
    x = (np.arange(W) + 0.5 - camera.cx)[None, :] / camera.fx * z
    y = (np.arange(H) + 0.5 - camera.cy)[:, None] / camera.fy * z
    T = camera.T_world_cam.matrix()
    return np.stack([x, y, z], axis=-1) @ T[:3, :3].T + T[:3, 3]


def observed_points(
    depth: np.ndarray,  # [T, H, W] metres along the optical axis
    masks: np.ndarray,  # [T, H, W] int labels: 0 background, i+1 = object i
    num_objects: int,  # O
    camera: Camera,  # at the depth maps' resolution
    per_object: int,  # M: at most this many points per object and frame
    seed: int = 0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Each object's depth pixels per frame as world points: ([T, O, M, 3] float, [T, O, M] bool valid).

    An object seen in more than M pixels of a frame keeps a seeded random subset of them.
    """
    T = depth.shape[0]
    rng = np.random.default_rng(seed)
    out = np.zeros((T, num_objects, per_object, 3), np.float32)
    valid = np.zeros((T, num_objects, per_object), bool)
    for t in range(T):
        world = backproject(depth[t], camera)
        ok = np.isfinite(depth[t]) & (depth[t] > 0)
        for o in range(num_objects):
            pix = np.flatnonzero(ok & (masks[t] == o + 1))
            if len(pix) > per_object:
                pix = np.sort(rng.choice(pix, per_object, replace=False))
            out[t, o, : len(pix)] = world.reshape(-1, 3)[pix]
            valid[t, o, : len(pix)] = True
    return torch.from_numpy(out), torch.from_numpy(valid)


def visible_points(
    points: torch.Tensor,  # [N, 3] world metres, one object's
    rendered_depth: torch.Tensor,  # [H, W] metres: the render's expected depth
    camera: Camera,  # at the render's resolution
    labels: torch.Tensor,  # [H, W] long: the object the video shows at each pixel, -1 none
    observed_depth: torch.Tensor,  # [H, W] metres, NaN off the objects
    obj: int,  # the object the points belong to
    tolerance: float = _VISIBLE_TOLERANCE,  # metres
) -> torch.Tensor:
    """[N] bool: the point is in the image, on the render's front surface, and the video does not
    show another object in front of it there (an occluder the model need not explain)."""
    T = torch.as_tensor(camera.T_world_cam.matrix(), dtype=points.dtype, device=points.device)
    p = (points - T[:3, 3]) @ T[:3, :3]  # world -> camera: R^T (x - t)
    z = p[:, 2]
    H, W = rendered_depth.shape
    zs = z.clamp_min(1e-6)
    col = torch.floor(camera.fx * p[:, 0] / zs + camera.cx).long()
    row = torch.floor(camera.fy * p[:, 1] / zs + camera.cy).long()
    inside = (z > camera.near) & (col >= 0) & (col < W) & (row >= 0) & (row < H)
    r, c = row.clamp(0, H - 1), col.clamp(0, W - 1)
    front = z <= rendered_depth[r, c] + tolerance
    other = labels[r, c]
    occluded = (other >= 0) & (other != obj) & (observed_depth[r, c] < z - tolerance)
    return inside & front & ~occluded


def chamfer(
    model: torch.Tensor,  # [N, 3] deformed Gaussian means of one object, world metres, differentiable
    observed: torch.Tensor,  # [M, 3] its observed points, world metres
    model_seen: torch.Tensor,  # [N] bool: model points the camera sees (pulled towards the observation)
    scale: float,  # metres, robust distance's transition
    reach: float = 0.0,  # metres: softness of the correspondence (0: the nearest point)
) -> torch.Tensor:
    """Robust two-sided chamfer: mean of (observed -> model) and (seen model -> observed) robust
    distances sqrt(d^2 + s^2) - s from each point to its correspondence.

    With ``reach`` 0 the correspondence is the nearest point on the other side; otherwise it is
    the mean of the other side's points weighted by exp(-d^2 / (2 reach^2)), which sees past the
    nearest point: a lid standing open behind its hinge is pulled only towards the hinge by the
    nearest observed points (no turn), but forwards by the closed lid's points a few cm beyond.
    Correspondences are found without gradient.
    """

    def robust(d2: torch.Tensor) -> torch.Tensor:
        return (d2 + scale * scale).sqrt() - scale

    def correspond(query: torch.Tensor, target: torch.Tensor) -> torch.Tensor:  # [n, 3]
        with torch.no_grad():
            d = torch.cdist(query.detach(), target.detach())
            if reach <= 0:
                nearest = d.argmin(dim=1)
            else:
                w = torch.softmax(-(d * d) / (2 * reach * reach), dim=1)
        return target[nearest] if reach <= 0 else w @ target

    to_model = robust(((observed - correspond(observed, model)) ** 2).sum(dim=-1)).mean()
    seen = model[model_seen]
    if len(seen) == 0:
        return to_model
    to_observed = robust(((seen - correspond(seen, observed)) ** 2).sum(dim=-1)).mean()
    return 0.5 * (to_model + to_observed)


def _pyramid_l1(x: torch.Tensor, y: torch.Tensor, levels: int) -> torch.Tensor:
    """Mean over levels of the mean L1 between [..., H, W, C] images, pooled 1x, 2x, 4x, ..."""
    shape = x.shape
    x = x.reshape(-1, *shape[-3:]).permute(0, 3, 1, 2)
    y = y.reshape(-1, *shape[-3:]).permute(0, 3, 1, 2)
    total = (x - y).abs().mean()
    used = 1
    for _ in range(1, levels):
        if min(x.shape[-2:]) < 4:
            break
        x, y = F.avg_pool2d(x, 2, ceil_mode=True), F.avg_pool2d(y, 2, ceil_mode=True)
        total = total + (x - y).abs().mean()
        used += 1
    return total / used


def _centroid_loss(masks: torch.Tensor, target: torch.Tensor, min_pixels: float = 3.0) -> torch.Tensor:
    """Mean squared distance of rendered vs true mask centroids, over (image, object) pairs.

    masks, target: [..., H, W, O] coverage. Pairs where either mask holds under ``min_pixels``
    of coverage (object out of view) are left out.
    """
    H, W = masks.shape[-3:-1]
    m = masks.reshape(-1, H, W, masks.shape[-1])
    t = target.reshape(-1, H, W, target.shape[-1])
    scale = float(max(H, W))
    ys = (torch.arange(H, dtype=m.dtype, device=m.device) + 0.5) / scale
    xs = (torch.arange(W, dtype=m.dtype, device=m.device) + 0.5) / scale

    def centroid(c: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mass = c.sum(dim=(1, 2))  # [n, O]
        cy = (c * ys[None, :, None, None]).sum(dim=(1, 2)) / mass.clamp_min(1e-6)
        cx = (c * xs[None, None, :, None]).sum(dim=(1, 2)) / mass.clamp_min(1e-6)
        return torch.stack([cx, cy], dim=-1), mass

    c_r, mass_r = centroid(m)
    c_t, mass_t = centroid(t)
    ok = (mass_r > min_pixels) & (mass_t > min_pixels)
    if not bool(ok.any()):
        return masks.new_zeros(())
    return ((c_r - c_t) ** 2).sum(dim=-1)[ok].mean()


def _frames(frame_indices: torch.Tensor | None, video: torch.Tensor) -> torch.Tensor:
    B, T = video.shape[:2]
    if frame_indices is None:
        return torch.arange(T, device=video.device).expand(B, T)
    if frame_indices.shape != (B, T):
        raise ValueError(f"frame_indices has shape {tuple(frame_indices.shape)}, expected {(B, T)}")
    return frame_indices


def _resize(x: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """[T, h, w, C] -> [T, height, width, C] by area averaging (downsampling) or bilinear (up)."""
    if x.shape[1:3] == (height, width):
        return x
    chw = x.permute(0, 3, 1, 2)
    mode = "area" if height <= x.shape[1] else "bilinear"
    out = F.interpolate(chw, size=(height, width), mode=mode)
    return out.permute(0, 2, 3, 1).contiguous()
