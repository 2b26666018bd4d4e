"""flowgen.render on CPU (the pure-PyTorch path): known renders, a brute-force reference, gradients."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from core.scene import Camera, Pose
from flowgen import raster_torch
from flowgen.render import check_resolution, render

F = 100.0  # focal length of the test camera, pixels
W, H = 48, 40


def camera(width: int = W, height: int = H, pose: Pose | None = None) -> Camera:
    """Pinhole at the world origin looking along +z (OpenCV axes = world axes)."""
    return Camera(F, F, width / 2, height / 2, pose or Pose(), width, height)


def one(
    x: float, y: float, z: float, s: float, op: float, color=(1.0, 0.2, 0.1), dtype=torch.float64
) -> dict:
    """A single isotropic Gaussian of std ``s`` metres at (x, y, z) in camera coordinates."""
    return dict(
        means=torch.tensor([[[x, y, z]]], dtype=dtype),
        quats=torch.tensor([[1.0, 0.0, 0.0, 0.0]], dtype=dtype),
        scales=torch.full((1, 3), s, dtype=dtype),
        opacities=torch.tensor([op], dtype=dtype),
        colors=torch.tensor([color], dtype=dtype),
        object_index=torch.zeros(1, dtype=torch.long),
    )


def draw(g: dict, num_objects: int = 1, cam=None, **kw):
    return render(
        g["means"], g["quats"], g["scales"], g["opacities"], g["colors"], g["object_index"],
        num_objects, cam if cam is not None else camera(), backend="torch", **kw,
    )  # fmt: skip


def test_single_gaussian_centre_footprint_colour_depth_mask():
    # Centre projects to u = F x / z + cx = 30.5, v = F y / z + cy = 14.5: the centre of pixel
    # (30, 14). Projected std: F s / z = 2 px, plus the 0.3 px^2 dilation.
    z, s, op = 2.0, 0.04, 0.8
    x, y = (30.5 - W / 2) * z / F, (14.5 - H / 2) * z / F
    out = draw(one(x, y, z, s, op), num_objects=2)
    a = out.alpha[0, ..., 0]
    row, col = divmod(int(a.argmax()), W)
    assert (col, row) == (30, 14)
    # EWA: J s^2 I J^T = (F s / z)^2 [[1 + u^2, u v], [u v, 1 + v^2]] with u = x/z, v = y/z,
    # plus 0.3 px^2 on the diagonal; alpha = op exp(-d^T cov^-1 d / 2).
    u, v = x / z, y / z
    cov = (F * s / z) ** 2 * np.array([[1 + u * u, u * v], [u * v, 1 + v * v]]) + 0.3 * np.eye(2)
    conic = np.linalg.inv(cov)
    for d in range(0, 6):  # along x and along y
        for (dx, dy), (r, c) in (((d, 0), (14, 30 + d)), ((0, -d), (14 - d, 30))):
            want = op * math.exp(-0.5 * (conic[0, 0] * dx * dx + conic[1, 1] * dy * dy))
            assert a[r, c].item() == pytest.approx(want if want >= 1 / 255 else 0.0, abs=1e-9)
    # one projected sigma away: alpha ~ op exp(-1/2)
    sigma = math.sqrt(cov[0, 0])
    assert op * math.exp(-0.5) == pytest.approx(
        float(np.interp(sigma, np.arange(6), a[14, 30:36].numpy())), rel=0.06
    )
    assert a[14, 30 + 7].item() == 0.0  # op exp(-49 / 8.6) < 1/255: outside the footprint
    # colour over the white background, depth = z wherever covered, mask = coverage of object 0
    rgb = out.rgb[0, 14, 30]
    want_rgb = torch.tensor([1.0, 0.2, 0.1], dtype=torch.float64) * op + (1 - op)
    torch.testing.assert_close(rgb, want_rgb, atol=1e-9, rtol=0)
    covered = a > 0
    torch.testing.assert_close(out.depth[0, ..., 0][covered], torch.full_like(a[covered], z))
    assert out.depth[0, ..., 0][~covered].abs().max() == 0
    torch.testing.assert_close(out.object_masks[0, ..., 0], a)
    assert out.object_masks[0, ..., 1].abs().max() == 0


def test_front_gaussian_occludes_back_whatever_the_input_order():
    near, far = one(0, 0, 1.0, 0.02, 0.9, (1, 0, 0)), one(0, 0, 2.0, 0.04, 0.9, (0, 0, 1))
    pair = {k: torch.cat([far[k], near[k]], dim=1 if k == "means" else 0) for k in near}
    pair["object_index"] = torch.tensor([1, 0])
    flipped = {k: v.flip(1 if k == "means" else 0) for k, v in pair.items()}
    for g in (pair, flipped):
        out = draw(g, num_objects=2)
        # pixel (23, 19) centre is 0.5 px from the principal point (24, 20)
        a1 = 0.9 * math.exp(-0.5 * 0.5 / ((F * 0.02 / 1.0) ** 2 + 0.3))
        a2 = 0.9 * math.exp(-0.5 * 0.5 / ((F * 0.04 / 2.0) ** 2 + 0.3))
        rgb = out.rgb[0, 19, 23]
        want = [a1 + (1 - a1) * (1 - a2), (1 - a1) * (1 - a2), (1 - a1) * a2 + (1 - a1) * (1 - a2)]
        torch.testing.assert_close(rgb, torch.tensor(want, dtype=torch.float64), atol=1e-9, rtol=0)
        alpha = 1 - (1 - a1) * (1 - a2)
        assert out.alpha[0, 19, 23, 0].item() == pytest.approx(alpha, abs=1e-9)
        depth = (a1 * 1.0 + (1 - a1) * a2 * 2.0) / alpha
        assert out.depth[0, 19, 23, 0].item() == pytest.approx(depth, abs=1e-9)
        masks = out.object_masks[0, 19, 23]
        torch.testing.assert_close(masks, torch.tensor([a1, (1 - a1) * a2], dtype=torch.float64))


def test_background_colour_where_nothing_is_drawn():
    out = draw(one(0, 0, 2.0, 0.01, 0.9), background=(0.2, 0.4, 0.6))
    torch.testing.assert_close(out.rgb[0, 0, 0], torch.tensor([0.2, 0.4, 0.6], dtype=torch.float64))
    assert out.alpha[0, 0, 0, 0] == 0 and out.depth[0, 0, 0, 0] == 0
    # at the centre the background shows through by exactly 1 - alpha
    a = out.alpha[0, 20, 24, 0]
    torch.testing.assert_close(out.rgb[0, 20, 24, 1], 0.2 * a + 0.4 * (1 - a))


def random_gaussians(n: int, seed: int, dtype=torch.float64) -> dict:
    """Scattered Gaussians (some out of view, some behind the camera) plus an opaque stack."""
    g = torch.Generator().manual_seed(seed)
    means = torch.empty(n, 3, dtype=dtype)
    means[:, 0].uniform_(-0.5, 0.1, generator=g)  # some fall outside the 48 x 40 view
    means[:, 1].uniform_(-0.4, 0.1, generator=g)
    means[:, 2].uniform_(-0.3, 3.0, generator=g)  # some are behind the camera or too near
    scales = torch.exp(torch.empty(n, 3, dtype=dtype).uniform_(-6.0, -3.5, generator=g))
    opacities = torch.empty(n, dtype=dtype).uniform_(0.05, 0.99, generator=g)
    # a fifth of them stacked in front of each other: pixels there reach T <= 1e-4 and stop early
    k = n // 5
    means[:k] = torch.tensor([-0.05, -0.05, 1.0], dtype=dtype) + 0.02 * torch.randn(
        k, 3, generator=g, dtype=dtype
    )
    scales[:k] = torch.empty(k, 3, dtype=dtype).uniform_(0.01, 0.03, generator=g)
    opacities[:k] = torch.empty(k, dtype=dtype).uniform_(0.9, 0.99, generator=g)
    return dict(
        means=means[None],
        quats=torch.randn(n, 4, generator=g, dtype=dtype),  # not normalised: both paths normalise
        scales=scales,
        opacities=opacities,
        colors=torch.rand(n, 3, generator=g, dtype=dtype),
        object_index=torch.randint(0, 3, (n,), generator=g),
    )


def brute_force(g: dict, cam: Camera, bg=(1.0, 1.0, 1.0)):
    """Every Gaussian at every pixel, in depth order, one Gaussian at a time (gsplat's rules).

    The projection is gsplat's own PyTorch reference (an independent implementation).
    """
    from gsplat.cuda._torch_impl import _fully_fused_projection, _quat_scale_to_covar_preci

    means = g["means"][0]
    covars, _ = _quat_scale_to_covar_preci(g["quats"], g["scales"], compute_preci=False)
    view = torch.as_tensor(np.linalg.inv(cam.T_world_cam.matrix()), dtype=means.dtype)
    K = torch.as_tensor(cam.K(), dtype=means.dtype)
    radii, m2d, depths, conics, _ = _fully_fused_projection(
        means, covars, view[None], K[None], cam.width, cam.height, eps2d=0.3,
        near_plane=cam.near, far_plane=cam.far,
    )  # fmt: skip
    radii, m2d, depths, conics = radii[0], m2d[0], depths[0], conics[0]
    ys, xs = torch.meshgrid(torch.arange(cam.height), torch.arange(cam.width), indexing="ij")
    px, py = xs.to(means.dtype) + 0.5, ys.to(means.dtype) + 0.5
    T = torch.ones(cam.height, cam.width, dtype=means.dtype)
    done = torch.zeros_like(T, dtype=torch.bool)
    K_obj = int(g["object_index"].max()) + 1
    feats = torch.cat([g["colors"], torch.nn.functional.one_hot(g["object_index"], K_obj)], 1)
    acc = torch.zeros(cam.height, cam.width, feats.shape[1] + 1, dtype=means.dtype)
    for i in torch.argsort(depths).tolist():
        if (radii[i] == 0).all():
            continue
        dx, dy = m2d[i, 0] - px, m2d[i, 1] - py
        c = conics[i]
        sigma = 0.5 * (c[0] * dx * dx + c[2] * dy * dy) + c[1] * dx * dy
        alpha = torch.clamp_max(g["opacities"][i] * torch.exp(-sigma), 0.999)
        use = (alpha >= 1 / 255) & (sigma >= 0) & ~done
        next_t = T * (1 - alpha)
        stop = use & (next_t <= 1e-4)
        done |= stop
        use &= ~stop
        w = torch.where(use, alpha * T, 0)
        acc += w[..., None] * torch.cat([feats[i], depths[i : i + 1]])
        T = torch.where(use, next_t, T)
    rgb = acc[..., :3] + T[..., None] * torch.tensor(bg, dtype=means.dtype)
    alpha = 1 - T
    depth = acc[..., -1] / alpha.clamp_min(1e-10)
    return rgb, alpha, depth, acc[..., 3:-1], done


@pytest.mark.parametrize(("seed", "pairs_per_slice"), [(0, None), (1, None), (2, 200)])
def test_matches_brute_force_reference(seed, pairs_per_slice, monkeypatch):
    if pairs_per_slice is not None:  # many front-to-back slices, pixels finishing in between
        monkeypatch.setattr(raster_torch, "PAIRS_PER_SLICE", pairs_per_slice)
    g = random_gaussians(400, seed)
    pose = Pose.from_matrix(np.array([[1, 0, 0, 0.05], [0, 1, 0, -0.02], [0, 0, 1, -0.1], [0, 0, 0, 1.0]]))
    cam = camera(pose=pose)
    out = draw(g, num_objects=3, cam=cam, background=(0.1, 0.5, 0.9))
    rgb, alpha, depth, masks, done = brute_force(g, cam, bg=(0.1, 0.5, 0.9))
    # the case covers pixels that stop early, partly covered pixels and empty ones
    assert done.sum() > 20 and (alpha == 0).sum() > 20 and ((alpha > 0.1) & (alpha < 0.9)).any()
    torch.testing.assert_close(out.alpha[0, ..., 0], alpha, atol=1e-9, rtol=0)
    torch.testing.assert_close(out.rgb[0], rgb, atol=1e-9, rtol=0)
    torch.testing.assert_close(out.depth[0, ..., 0], depth, atol=1e-7, rtol=0)
    torch.testing.assert_close(out.object_masks[0], masks, atol=1e-9, rtol=0)


def test_float32_agrees_with_float64():
    g = random_gaussians(400, 3)
    g32 = {k: v.float() if v.is_floating_point() else v for k, v in g.items()}
    a, b = draw(g, num_objects=3), draw(g32, num_objects=3)
    assert b.rgb.dtype == torch.float32
    assert (a.rgb - b.rgb.double()).abs().max() < 1e-4


def test_gradients_match_finite_differences():
    g = torch.Generator().manual_seed(5)
    n = 4
    means = torch.tensor([[-0.05, 0.02, 1.0], [0.03, -0.01, 1.2], [0.0, 0.04, 0.9], [0.06, 0.05, 1.5]])
    means = means.double()[None].requires_grad_(True)
    quats = torch.randn(n, 4, generator=g, dtype=torch.float64).requires_grad_(True)
    scales = torch.empty(n, 3, dtype=torch.float64).uniform_(0.005, 0.02, generator=g).requires_grad_(True)
    opac = torch.empty(n, dtype=torch.float64).uniform_(0.3, 0.8, generator=g).requires_grad_(True)
    colors = torch.rand(n, 3, generator=g, dtype=torch.float64).requires_grad_(True)
    idx = torch.tensor([0, 1, 0, 1])
    cam = Camera(40.0, 40.0, 8.0, 7.0, Pose(), 16, 14)
    weights = torch.rand(1, 14, 16, 3 + 1 + 1 + 2, generator=g, dtype=torch.float64)

    def f(means, quats, scales, opac, colors):
        out = render(means, quats, scales, opac, colors, idx, 2, cam, backend="torch")
        cat = torch.cat([out.rgb, out.alpha, out.depth, out.object_masks], dim=-1)
        return (cat * weights).sum()

    assert torch.autograd.gradcheck(f, (means, quats, scales, opac, colors), eps=1e-6, atol=1e-6)


def test_multi_view_batch_equals_separate_renders():
    g = random_gaussians(300, 7)
    cams = [camera(), camera(pose=Pose((0.1, 0.0, 0.0), (0.9990482, 0.0, -0.0436194, 0.0)))]
    means2 = g["means"].expand(2, -1, -1)
    both = render(
        means2, g["quats"], g["scales"], g["opacities"], g["colors"], g["object_index"], 3, cams,
        backend="torch",
    )  # fmt: skip
    for i, cam in enumerate(cams):
        single = draw(g, num_objects=3, cam=cam)
        torch.testing.assert_close(both.rgb[i], single.rgb[0], atol=1e-9, rtol=0)
        torch.testing.assert_close(both.depth[i], single.depth[0], atol=1e-9, rtol=0)
    assert (both.rgb[0] - both.rgb[1]).abs().max() > 0.1  # the two views really differ


def test_frame_out_of_view_is_background_not_an_error():
    g = one(0, 0, 2.0, 0.04, 0.9)
    g["means"] = torch.cat([g["means"], g["means"] + torch.tensor([0.0, 0.0, -5.0])])  # behind
    out = draw(g)
    assert out.alpha[0].max() > 0.8
    assert out.alpha[1].max() == 0
    assert (out.rgb[1] == 1).all()


def test_render_resolution_scales_intrinsics():
    g = one((30.5 - W / 2) * 2.0 / F, (14.5 - H / 2) * 2.0 / F, 2.0, 0.04, 0.8)
    out = draw(g, width=W // 2, height=H // 2)
    assert out.rgb.shape == (1, H // 2, W // 2, 3)
    row, col = divmod(int(out.alpha[0, ..., 0].argmax()), W // 2)
    assert (col, row) == (15, 7)  # (30.5, 14.5) / 2 = (15.25, 7.25): inside pixel (15, 7)
    cam = camera().resized(W // 2, H // 2)
    assert (cam.fx, cam.cx, cam.cy, cam.width) == (F / 2, W / 4, H / 4, W // 2)


# -- bad input ----------------------------------------------------------------------------
def test_zero_gaussians():
    g = one(0, 0, 2, 0.04, 0.8)
    with pytest.raises(ValueError, match="zero Gaussians"):
        render(g["means"][:, :0], g["quats"][:0], g["scales"][:0], g["opacities"][:0],
               g["colors"][:0], g["object_index"][:0], 1, camera(), backend="torch")  # fmt: skip


def test_camera_looking_away_from_everything():
    g = random_gaussians(50, 2)
    g["means"] = g["means"].clone()
    g["means"][..., 2] = -g["means"][..., 2].abs() - 0.5  # all behind the camera
    with pytest.raises(ValueError, match=r"no Gaussian is visible in any of the 1 image.*0 .*in front"):
        draw(g, num_objects=3)


@pytest.mark.parametrize("name", ["means", "quats", "scales", "opacities", "colors"])
def test_nan_parameters_are_named(name):
    g = random_gaussians(20, 0)
    g[name] = g[name].clone()
    g[name].view(-1)[4] = float("nan")
    with pytest.raises(ValueError, match=rf"{name}\[.*\] is nan"):
        draw(g, num_objects=3)


def test_mismatched_shapes_are_named():
    g = random_gaussians(20, 0)
    with pytest.raises(ValueError, match=r"scales has shape \[19, 3\], expected \[20, 3\]"):
        draw({**g, "scales": g["scales"][:19]}, num_objects=3)
    with pytest.raises(ValueError, match=r"opacities has shape \[20, 1\]"):
        draw({**g, "opacities": g["opacities"][:, None]}, num_objects=3)
    with pytest.raises(ValueError, match=r"object_index has values in \[0, 2\], expected \[0, 1\]"):
        draw(g, num_objects=2)
    with pytest.raises(ValueError, match="list of 2 items, expected one Camera or a list of B=1"):
        draw(g, num_objects=3, cam=[camera(), camera()])
    with pytest.raises(ValueError, match="opacities span"):
        draw({**g, "opacities": g["opacities"] + 1}, num_objects=3)
    with pytest.raises(ValueError, match="backend is 'cuda'"):
        render(g["means"], g["quats"], g["scales"], g["opacities"], g["colors"], g["object_index"],
               3, camera(), backend="cuda")  # fmt: skip
    with pytest.raises(ValueError, match="backend 'gsplat' needs CUDA tensors"):
        render(g["means"], g["quats"], g["scales"], g["opacities"], g["colors"], g["object_index"],
               3, camera(), backend="gsplat")  # fmt: skip


def test_resolution_multiple():
    check_resolution(832, 464, 16)
    with pytest.raises(ValueError, match=r"width is 830, expected a multiple of 16 \(e.g. 816 or 832\)"):
        check_resolution(830, 464, 16)
    with pytest.raises(ValueError, match="height is 0"):
        check_resolution(832, 0, 16)
    with pytest.raises(ValueError, match="height is 40, expected a multiple of 16"):
        draw(one(0, 0, 2, 0.04, 0.8), require_multiple=16)  # the test camera is 48 x 40
    out = draw(one(0, 0, 2, 0.04, 0.8), width=32, height=16, require_multiple=16)
    assert out.rgb.shape == (1, 16, 32, 3)
