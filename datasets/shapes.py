"""`shapes`: procedurally drawn images of six shape classes, rendered at any resolution (no download).

Each sample is a continuous scene: one shape (circle, square, triangle, cross, ring, star) at a
random position, scale and rotation, with random foreground and background colours and a
smooth sinusoidal background field. A pixel is the scene's average over its area (sub-sampled),
so the same samples rendered at 16 px and at 32 px are the same scenes seen at
two resolutions (the 16 px image is close to the 32 px image 2 x 2 average-pooled): the
cross-resolution protocol (train at 16 px, test at 32 px) runs without a download. Pixel noise
is added after rendering.

The scenes are fixed by `data_seed`, not by the run seed (every run sees the same problem);
the test scenes come from their own stream, so n_train does not change them.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from bench.base import UserError
from datasets import register_dataset
from datasets.base import Loaded
from datasets.tensors import tensor_dataset

CLASSES = ("circle", "square", "triangle", "cross", "ring", "star")
POINTS_PER_CHUNK = 2**20  # scene samples evaluated at once (keeps the work in cache-sized pieces)
SALTS = {"train": 1, "test": 2}


def scene_parameters(n: int, generator: torch.Generator) -> dict[str, torch.Tensor]:
    """Everything about n scenes that does not depend on the resolution."""
    labels = (torch.arange(n) % len(CLASSES))[torch.randperm(n, generator=generator)]
    scale = 0.4 + 0.35 * torch.rand(n, generator=generator)  # shape radius, in half-image units
    centre = (torch.rand(n, 2, generator=generator) * 2 - 1) * (1 - scale[:, None])
    angle = 2 * math.pi * torch.rand(n, generator=generator)
    foreground = 0.55 + 0.45 * torch.rand(n, 3, generator=generator)
    background = 0.45 * torch.rand(n, 3, generator=generator)
    wave = torch.rand(n, 4, generator=generator)  # amplitude, frequency x, frequency y, phase
    return {"labels": labels, "scale": scale, "centre": centre, "angle": angle,
            "foreground": foreground, "background": background, "wave": wave}  # fmt: skip


def inside(kind: str, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Whether shape-local points (x, y), in radius-1 units, lie inside a `kind` shape."""
    if kind == "square":
        return torch.maximum(x.abs(), y.abs()) <= 0.75
    if kind == "cross":
        ax, ay = x.abs(), y.abs()
        return ((ax <= 0.28) & (ay <= 0.9)) | ((ay <= 0.28) & (ax <= 0.9))
    if kind == "triangle":  # equilateral, circumradius 1: three half-planes at distance 0.5
        a = [2 * math.pi * k / 3 for k in range(3)]
        return torch.stack([x * math.cos(t) + y * math.sin(t) for t in a]).amax(0) <= 0.5
    r = torch.sqrt(x.square() + y.square())
    if kind == "circle":
        return r <= 0.85
    if kind == "ring":
        return (r >= 0.5) & (r <= 0.9)
    spikes = ((5 * torch.atan2(y, x) / (2 * math.pi)) % 1.0 - 0.5).abs() * 2  # star: 1 at the points, 0 between
    return r <= 0.4 + 0.6 * spikes


def render(params: dict[str, torch.Tensor], resolution: int) -> torch.Tensor:
    """(n, 3, resolution, resolution) images, roughly in [0, 1], without pixel noise.

    Each pixel averages sub x sub samples of the scene, with at least a 64 x 64 grid of samples
    over the image, so low resolutions are as well anti-aliased as high ones.
    """
    sub = max(2, math.ceil(64 / resolution))
    fine = resolution * sub
    coords = (torch.arange(fine, dtype=torch.float32) + 0.5) / fine * 2 - 1  # sample centres in [-1, 1]
    gy, gx = torch.meshgrid(coords, coords, indexing="ij")
    gx, gy = gx.reshape(1, -1), gy.reshape(1, -1)
    out, chunk = [], max(1, POINTS_PER_CHUNK // fine**2)
    for s in range(0, len(params["labels"]), chunk):
        p = {k: v[s : s + chunk] for k, v in params.items()}
        dx, dy = gx - p["centre"][:, :1], gy - p["centre"][:, 1:]
        cos, sin, scale = torch.cos(p["angle"])[:, None], torch.sin(p["angle"])[:, None], p["scale"][:, None]
        lx, ly = (cos * dx + sin * dy) / scale, (cos * dy - sin * dx) / scale  # shape-local coordinates
        mask = torch.empty_like(lx)
        for label, kind in enumerate(CLASSES):
            rows = (p["labels"] == label).nonzero().squeeze(1)
            mask[rows] = inside(kind, lx[rows], ly[rows]).float()
        amp, fx, fy, phase = (p["wave"][:, i : i + 1] for i in range(4))
        field = 0.15 * amp * torch.sin(math.pi * ((0.5 + fx) * gx + (0.5 + fy) * gy) + 2 * math.pi * phase)
        fg, bg = p["foreground"][:, :, None], p["background"][:, :, None]
        image = bg + (fg - bg) * mask[:, None] + field[:, None]  # (B, 3, fine * fine)
        out.append(F.avg_pool2d(image.view(-1, 3, fine, fine), sub))
    return torch.cat(out)


def make_split(split: str, n: int, resolution: int, noise: float, data_seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(1_000_003 * data_seed + SALTS[split])
    params = scene_parameters(n, gen)
    images = render(params, resolution)
    noise_gen = torch.Generator().manual_seed(1_000_003 * data_seed + 100 * SALTS[split] + resolution)
    return images + noise * torch.randn(images.shape, generator=noise_gen), params["labels"]


@register_dataset(
    "shapes",
    description="procedural shapes (6 classes, random pose and colours) drawn at any resolution (no download)",
    shape=(3, 32, 32),
    classes=len(CLASSES),
)
def shapes(
    *, seed, data_root, resolution: int = 32, n_train: int = 4000, n_test: int = 1000, noise: float = 0.05,
    data_seed: int = 0,
):  # fmt: skip
    if not isinstance(resolution, int) or not 4 <= resolution <= 256:
        raise UserError(f"dataset 'shapes': resolution must be an integer in [4, 256], got {resolution!r}")
    if n_train < 2 * len(CLASSES) or n_test < 1 or not 0 <= noise <= 1:
        raise UserError(f"dataset 'shapes' needs n_train >= 12, n_test >= 1, 0 <= noise <= 1; "
                        f"got {n_train}, {n_test}, {noise}")  # fmt: skip
    (xtr, ytr), (xte, yte) = (
        make_split(s, n, resolution, noise, data_seed) for s, n in (("train", n_train), ("test", n_test))
    )
    info = {"data_seed": data_seed, "resolution": resolution, "classes": list(CLASSES)}
    return Loaded(tensor_dataset(xtr, ytr), tensor_dataset(xte, yte), info=info, standardise=(0, 2, 3))
