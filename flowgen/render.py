"""Differentiable rendering of 3D Gaussians: the one entry point every prior uses.

``render`` draws a batch of images (frames x views, flattened) of the (deformed) Gaussians and
returns RGB, alpha, expected depth and per-object coverage masks. On CUDA tensors it calls
gsplat's ``rasterization``; on CPU tensors it runs :mod:`flowgen.raster_torch`, a pure-PyTorch
twin of the same kernels, so both give the same images (docs/rendering.md states the bounds).

Conventions (gsplat's): world metres; the camera is ``core.scene.Camera`` with OpenCV axes
(x right, y down, z forward), view matrix ``inv(T_world_cam)``; pixel centres at +0.5; quaternions
wxyz (normalised inside); 0.3 px^2 EWA dilation; depth = camera-space z.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from core.errors import MissingDependencyError
from core.scene import Camera
from flowgen import raster_torch

log = logging.getLogger(__name__)

BACKENDS = ("auto", "gsplat", "torch")


@dataclass
class RenderOutput:
    """What ``render`` returns; B = frames x views, flattened as the inputs were."""

    rgb: Tensor  # [B, H, W, 3] in [0, 1], background composited
    alpha: Tensor  # [B, H, W, 1] accumulated opacity
    depth: Tensor  # [B, H, W, 1] expected camera-space z, metres (0 where alpha is 0)
    object_masks: Tensor  # [B, H, W, num_objects] alpha-composited coverage of each object


def check_resolution(width: int, height: int, multiple: int) -> None:
    """Raise ValueError unless ``width`` and ``height`` are positive multiples of ``multiple``.

    The video prior needs multiples of 16 (Wan's VAE and patching); it calls this before rendering.
    """
    for key, v in (("width", width), ("height", height)):
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise ValueError(f"render resolution: {key} is {v!r}, expected a positive integer (pixels)")
        if v % multiple:
            lo, hi = (v // multiple) * multiple, (v // multiple + 1) * multiple
            near = f"{lo} or {hi}" if lo else str(hi)
            raise ValueError(
                f"render resolution: {key} is {v}, expected a multiple of {multiple} "
                f"(e.g. {near}); got {width}x{height}"
            )


def render(
    means: Tensor,  # [B, N, 3] world metres (or [N, 3] for one image)
    quats: Tensor,  # [B, N, 4] or [N, 4], wxyz (normalised inside)
    scales: Tensor,  # [N, 3] or [B, N, 3], metres
    opacities: Tensor,  # [N] in [0, 1]
    colors: Tensor,  # [N, 3] or [B, N, 3], in [0, 1]
    object_index: Tensor,  # [N] long, in [0, num_objects)
    num_objects: int,
    camera: Camera | Sequence[Camera],  # one, or one per image (B)
    width: int | None = None,  # render size, pixels; intrinsics are scaled from the camera's
    height: int | None = None,
    backend: str = "auto",  # "auto" (gsplat on CUDA tensors, torch on CPU), "gsplat", "torch"
    background: Sequence[float] = (1.0, 1.0, 1.0),  # RGB in [0, 1]
    require_multiple: int | None = None,  # if set, width and height must be multiples of it
) -> RenderOutput:
    """Render B images of N Gaussians; differentiable w.r.t. means, quats, scales, opacities, colors.

    Shapes as annotated; H, W are ``height``/``width`` (default: the camera's). Images in which no
    Gaussian is visible come out as background; ValueError if that holds for EVERY image (a camera
    looking away from everything), for zero Gaussians, non-finite parameters, mismatched shapes,
    an unknown backend or a resolution that breaks ``require_multiple``. MissingDependencyError if
    the gsplat backend is asked for and its CUDA extension cannot be built or loaded.
    """
    if backend not in BACKENDS:
        raise ValueError(f"render: backend is {backend!r}, expected one of {list(BACKENDS)}")
    if not isinstance(means, Tensor):
        raise ValueError(f"render: means is {type(means).__name__}, expected a torch.Tensor [B, N, 3]")
    if means.dim() == 2:
        means = means[None]
    if means.dim() != 3 or means.shape[-1] != 3:
        raise ValueError(f"render: means has shape {list(means.shape)}, expected [B, N, 3]")
    B, N = means.shape[:2]
    if N == 0:
        raise ValueError("render: zero Gaussians (means has shape [B, 0, 3]); nothing to render")
    if B == 0:
        raise ValueError("render: zero images (means has shape [0, N, 3])")
    quats = _batched("quats", quats, B, N, 4, means)
    scales = _batched("scales", scales, B, N, 3, means)
    colors = _batched("colors", colors, B, N, 3, means)
    opacities = _per_gaussian("opacities", opacities, N, means)
    object_index = _object_index(object_index, N, num_objects, means.device)
    _check_finite(means=means, quats=quats, scales=scales, opacities=opacities, colors=colors)
    cams = _cameras(camera, B)
    W = cams[0].width if width is None else width
    H = cams[0].height if height is None else height
    check_resolution(W, H, 1 if require_multiple is None else require_multiple)
    cams = [c if (c.width, c.height) == (W, H) else c.resized(W, H) for c in cams]
    near, far = cams[0].near, cams[0].far
    if any((c.near, c.far) != (near, far) for c in cams):
        raise ValueError(
            "render: cameras differ in near/far clipping "
            f"({sorted({(c.near, c.far) for c in cams})}); give all views the same near and far"
        )
    bg = [float(v) for v in background]
    if len(bg) != 3 or not all(np.isfinite(bg)):
        raise ValueError(f"render: background is {background!r}, expected 3 finite numbers (RGB)")

    use_gsplat = backend == "gsplat" or (backend == "auto" and means.is_cuda)
    if use_gsplat and not means.is_cuda:
        raise ValueError(
            f"render: backend 'gsplat' needs CUDA tensors, got means on {means.device}; "
            "use backend='torch' (or 'auto') on CPU"
        )
    dtype = means.dtype if not use_gsplat else torch.float32
    viewmats, Ks = _camera_matrices(cams, dtype, means.device)
    onehot = torch.nn.functional.one_hot(object_index, num_objects).to(dtype)  # [N, K]
    feats = torch.cat([colors.to(dtype), onehot.expand(B, N, num_objects)], dim=-1)  # [B, N, 3+K]
    bgs = torch.tensor(bg + [0.0] * num_objects, dtype=dtype, device=means.device).expand(B, -1)
    args = (means.to(dtype), quats.to(dtype), scales.to(dtype), opacities.to(dtype))
    if use_gsplat:
        feat_img, depth_sum, alpha = _render_gsplat(*args, feats, viewmats, Ks, W, H, near, far, bgs)
    else:
        feat_img, depth_sum, alpha = _render_torch(*args, feats, viewmats, Ks, W, H, near, far, bgs)

    if not bool((alpha > 0).any()):
        raise ValueError(_nothing_visible(means, cams, W, H))
    depth = depth_sum / alpha.clamp_min(1e-10)
    out_dtype = means.dtype
    return RenderOutput(
        rgb=feat_img[..., :3].to(out_dtype),
        alpha=alpha.to(out_dtype),
        depth=depth.to(out_dtype),
        object_masks=feat_img[..., 3:].to(out_dtype),
    )


# -- backends -----------------------------------------------------------------------------
def _render_torch(means, quats, scales, opacities, feats, viewmats, Ks, W, H, near, far, bgs):
    """CPU path: returns (features [B,H,W,D], depth sum [B,H,W,1], alpha [B,H,W,1])."""
    B, N = means.shape[:2]
    opac = opacities.expand(B, N)
    proj = raster_torch.project(means, quats, scales, opac, viewmats, Ks, W, H, near, far)
    feats = torch.cat([feats, proj.depths[..., None]], dim=-1)
    bgs = torch.cat([bgs, bgs.new_zeros(B, 1)], dim=-1)
    img, alpha = raster_torch.rasterize(proj, opac, feats, W, H, bgs)
    return img[..., :-1], img[..., -1:], alpha


def _render_gsplat(means, quats, scales, opacities, feats, viewmats, Ks, W, H, near, far, bgs):
    """CUDA path through gsplat; same return as ``_render_torch``."""
    _require_gsplat_cuda()
    from gsplat import rasterization

    B, N = means.shape[:2]
    renders, alpha, _ = rasterization(
        means,
        quats,
        scales,
        opacities.expand(B, N).contiguous(),  # gsplat views it as [B, N]
        feats,
        viewmats[:, None],  # [B, 1, 4, 4]: one camera per batch entry
        Ks[:, None],
        W,
        H,
        near_plane=near,
        far_plane=far,
        eps2d=raster_torch.EPS2D,
        backgrounds=bgs[:, None],
        render_mode="RGB+D",  # accumulated depth; divided by alpha by the caller, as "ED" would
        rasterize_mode="classic",
        # gsplat 1.5.3's packed mode reads the image batch shape off the packed [nnz, 2] means,
        # so batched backgrounds fail its shape check; dense mode is fine at our sizes.
        packed=False,
    )
    renders, alpha = renders[:, 0], alpha[:, 0]
    return renders[..., :-1], renders[..., -1:], alpha


def _require_gsplat_cuda() -> None:
    """Load (building on first use) gsplat's CUDA extension, or say why it is unavailable."""
    try:
        from gsplat.cuda._backend import _C
    except ImportError as e:
        raise MissingDependencyError(f"gsplat is not importable ({e}); pip install gsplat") from e
    except (RuntimeError, OSError) as e:
        raise MissingDependencyError(
            f"gsplat's CUDA extension failed to build or load: {e}. It compiles with nvcc on first "
            "use (set MAX_JOBS and TORCH_CUDA_ARCH_LIST, e.g. 9.0 for H100/H200); "
            "backend='torch' renders without it"
        ) from e
    if _C is None:
        raise MissingDependencyError(
            "gsplat's CUDA extension is unavailable: no CUDA toolkit (nvcc/CUDA_HOME) was found to "
            "build it; install the CUDA toolkit or render with backend='torch'"
        )


# -- input checks -------------------------------------------------------------------------
def _batched(name: str, t: Tensor, B: int, N: int, last: int, means: Tensor) -> Tensor:
    """Accept [N, last] (shared by all images) or [B, N, last]; return [B, N, last]."""
    if not isinstance(t, Tensor):
        raise ValueError(f"render: {name} is {type(t).__name__}, expected a torch.Tensor [N, {last}]")
    if t.device != means.device:
        raise ValueError(f"render: {name} is on {t.device}, means on {means.device}; use one device")
    if t.dim() == 2 and t.shape == (N, last):
        return t.expand(B, N, last)
    if t.dim() == 3 and t.shape == (B, N, last):
        return t
    raise ValueError(
        f"render: {name} has shape {list(t.shape)}, expected [{N}, {last}] or [{B}, {N}, {last}] "
        f"(means is [{B}, {N}, 3])"
    )


def _per_gaussian(name: str, t: Tensor, N: int, means: Tensor) -> Tensor:
    if not isinstance(t, Tensor) or t.shape != (N,):
        shape = list(t.shape) if isinstance(t, Tensor) else type(t).__name__
        raise ValueError(f"render: {name} has shape {shape}, expected [{N}]")
    if t.device != means.device:
        raise ValueError(f"render: {name} is on {t.device}, means on {means.device}; use one device")
    return t


def _object_index(t: Tensor, N: int, num_objects: int, device: torch.device) -> Tensor:
    if isinstance(num_objects, bool) or not isinstance(num_objects, int) or num_objects < 1:
        raise ValueError(f"render: num_objects is {num_objects!r}, expected a positive integer")
    if not isinstance(t, Tensor) or t.shape != (N,):
        shape = list(t.shape) if isinstance(t, Tensor) else type(t).__name__
        raise ValueError(f"render: object_index has shape {shape}, expected [{N}]")
    if t.dtype.is_floating_point or t.dtype == torch.bool:
        raise ValueError(f"render: object_index has dtype {t.dtype}, expected an integer (long) tensor")
    lo, hi = int(t.min()), int(t.max())
    if lo < 0 or hi >= num_objects:
        raise ValueError(
            f"render: object_index has values in [{lo}, {hi}], expected [0, {num_objects - 1}] "
            f"(num_objects={num_objects})"
        )
    return t.to(device=device, dtype=torch.long)


def _check_finite(**tensors: Tensor) -> None:
    """One device sync for all checks; the slow path only runs to name the culprit."""
    for name, t in tensors.items():
        if not t.dtype.is_floating_point:
            raise ValueError(f"render: {name} has dtype {t.dtype}, expected floating point")
    ok = torch.stack([torch.isfinite(t).all() for t in tensors.values()]).tolist()
    for (name, t), good in zip(tensors.items(), ok, strict=True):
        if not good:
            bad = (~torch.isfinite(t)).nonzero()[0].tolist()
            value = t.detach()[tuple(bad)].item()
            raise ValueError(f"render: {name}{bad} is {value}, expected finite values (NaN/inf found)")
    op = tensors["opacities"].detach()
    lo, hi = float(op.min()), float(op.max())
    if lo < 0 or hi > 1:
        raise ValueError(f"render: opacities span [{lo:.4g}, {hi:.4g}], expected values in [0, 1]")
    qn = tensors["quats"].detach().norm(dim=-1)
    if bool((qn < 1e-12).any()):
        bad = (qn < 1e-12).nonzero()[0].tolist()
        raise ValueError(f"render: quats{bad} has zero norm, expected a (unit) quaternion wxyz")


def _cameras(camera: Camera | Sequence[Camera], B: int) -> list[Camera]:
    if isinstance(camera, Camera):
        return [camera] * B
    cams = list(camera)
    if len(cams) != B or not all(isinstance(c, Camera) for c in cams):
        raise ValueError(
            f"render: camera is a list of {len(cams)} items, expected one Camera or a list of B={B} "
            "Cameras (one per image)"
        )
    return cams


def _camera_matrices(cams: list[Camera], dtype: torch.dtype, device: torch.device) -> tuple[Tensor, Tensor]:
    """viewmats [B, 4, 4] (world-to-camera = inv(T_world_cam)) and Ks [B, 3, 3]."""
    T = np.stack([c.T_world_cam.matrix() for c in cams])
    view = np.linalg.inv(T)
    Ks = np.stack([c.K() for c in cams])
    return (
        torch.as_tensor(view, dtype=dtype, device=device),
        torch.as_tensor(Ks, dtype=dtype, device=device),
    )


def _nothing_visible(means: Tensor, cams: list[Camera], W: int, H: int) -> str:
    """Explain why no Gaussian reached any pixel, with the first camera's numbers."""
    with torch.no_grad():
        viewmats, Ks = _camera_matrices(cams, torch.float64, means.device)
        m = means.detach().to(torch.float64)
        p = (viewmats[:, None, :3, :3] @ m[..., None])[..., 0] + viewmats[:, None, :3, 3]
        z = p[..., 2]
        front = z > cams[0].near
        u = Ks[:, None, 0, 0] * p[..., 0] / z + Ks[:, None, 0, 2]
        v = Ks[:, None, 1, 1] * p[..., 1] / z + Ks[:, None, 1, 2]
        in_img = front & (u >= 0) & (u < W) & (v >= 0) & (v < H)
    c = cams[0]
    B, N = means.shape[:2]
    return (
        f"render: no Gaussian is visible in any of the {B} image(s) ({W}x{H}): of {N} Gaussians, "
        f"{int(front.sum())} (over all images) are in front of the camera (z > near={c.near} m) "
        f"and {int(in_img.sum())} project inside the image; camera at "
        f"{[round(x, 3) for x in c.T_world_cam.position]} looking along "
        f"{np.round(c.T_world_cam.matrix()[:3, 2], 3).tolist()}, Gaussians centred near "
        f"{np.round(means.detach().double().mean((0, 1)).cpu().numpy(), 3).tolist()}"
    )
