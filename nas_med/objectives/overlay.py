"""CAM overlays as pictures: one overlay, and a grid of images over their overlays (numpy and PIL only)."""
from __future__ import annotations

import numpy as np
from PIL import Image

__all__ = ["cam_grid", "cam_overlay", "class_captions", "grid_factor"]


def cam_overlay(image: np.ndarray, cam: np.ndarray) -> np.ndarray:
    """(H, W, 3) uint8 heat-map overlay of ``cam`` in [0, 1] on a uint8 (C, H, W) image."""
    from matplotlib import colormaps

    gray = image.astype(np.float32).mean(0) / 255 if image.shape[0] != 3 else image.transpose(1, 2, 0) / 255
    rgb = np.repeat(gray[..., None], 3, axis=2) if gray.ndim == 2 else gray
    heat = colormaps["jet"](np.clip(cam, 0, 1))[..., :3]
    return (np.clip(0.55 * rgb + 0.45 * heat, 0, 1) * 255).astype(np.uint8)


def class_captions(classes: list[str], labels, predicted, probs=None) -> list[str]:
    """One caption per image for ``cam_grid``: its true class (several for a multi-label row), the predicted class
    (the one its CAM explains) and, with ``probs`` (N, classes), that class's probability."""
    out = []
    for i, (label, pred) in enumerate(zip(labels, predicted)):
        label = np.asarray(label)
        true = (", ".join(classes[j] for j in np.flatnonzero(label)) or "none") if label.ndim else classes[int(label)]
        text = f"true: {true}\npred: {classes[int(pred)]}"
        out.append(text if probs is None else f"{text}\np = {float(probs[i][int(pred)]):.2f}")
    return out


def grid_factor(size: int, min_tile: int = 128) -> int:
    """The integer upscaling that makes a ``size``-pixel image at least ``min_tile`` pixels wide (1 for large)."""
    return max(1, -(-min_tile // max(size, 1)))


def _caption(grid: Image.Image, captions: list[str], columns: int, tile_w: int, tile_h: int) -> Image.Image:
    """Each caption in a white band above its image column pair (true / predicted class, probability)."""
    from PIL import ImageDraw, ImageFont

    size = max(10, min(16, tile_w // 12))
    try:
        font = ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1: the fixed bitmap font
        font = ImageFont.load_default()
    band = int(size * 1.25 * max(t.count("\n") + 1 for t in captions)) + 4
    rows = -(-len(captions) // columns)
    out = Image.new("RGB", (grid.width, grid.height + rows * band), "white")
    draw = ImageDraw.Draw(out)
    for r in range(rows):
        out.paste(grid.crop((0, 2 * r * tile_h, grid.width, 2 * (r + 1) * tile_h)), (0, r * (2 * tile_h + band) + band))
    for i, text in enumerate(captions):
        r, c = divmod(i, columns)
        draw.multiline_text((c * tile_w + 3, r * (2 * tile_h + band) + 2), text, fill="black", font=font, spacing=1)
    return out


def cam_grid(images: np.ndarray, cams: np.ndarray, columns: int = 8, min_tile: int = 128,
             captions: list[str] | None = None) -> Image.Image:
    """Rows of up to ``columns`` images, each over the row of their CAM overlays, as one RGB PIL image.

    ``images`` uint8 (N, C, H, W), ``cams`` (N, H, W) in [0, 1]; small images are upscaled (nearest) to tiles
    of at least ``min_tile`` pixels. With ``k = min(columns, N)`` and ``f = grid_factor(H, min_tile)`` the result
    is ``2 * ceil(N / k) * H * f`` pixels high and ``k * W * f`` wide; ``captions`` (one short text per image,
    lines split by newlines) add a band above each row of images.
    """
    if images.ndim != 4 or cams.shape != (images.shape[0], *images.shape[2:]):
        raise ValueError(f"need images (N, C, H, W) and cams (N, H, W), got {images.shape} and {cams.shape}")
    n, _, h, w = images.shape
    columns = max(1, min(columns, n))
    rows = []
    for start in range(0, n, columns):
        chunk = range(start, min(n, start + columns))
        plain = [np.repeat(images[i].mean(0, keepdims=True).transpose(1, 2, 0), 3, 2).astype(np.uint8)
                 if images.shape[1] != 3 else images[i].transpose(1, 2, 0) for i in chunk]
        over = [cam_overlay(images[i], cams[i]) for i in chunk]
        pad = [np.zeros((h, w, 3), np.uint8)] * (columns - len(plain))
        rows += [np.concatenate(plain + pad, 1), np.concatenate(over + pad, 1)]
    grid = Image.fromarray(np.concatenate(rows, 0))
    factor = grid_factor(h, min_tile)
    grid = grid.resize((grid.width * factor, grid.height * factor), Image.NEAREST)
    if captions:
        grid = _caption(grid, list(captions), columns, w * factor, h * factor)
    return grid
