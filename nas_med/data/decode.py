"""Image files -> one uint8 (N, C, H, W) tensor, decoded once (resized while decoding) and cached on disk.

PNG and JPEG always; DICOM (``.dcm``) when pydicom is importable. 16-bit, integer and float images are scaled
min-max to 0..255. Colour images whose three channels are equal count as grayscale. With ``channels=None`` the
result has 1 channel if every image is grayscale, else 3. Files that cannot be read are reported, not raised.
"""
from __future__ import annotations

import importlib.util
import logging
import os
import warnings
from collections import Counter
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from . import cache

log = logging.getLogger(__name__)

DECODER_VERSION = 1
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg")
DICOM_EXTENSIONS = (".dcm", ".dicom")
_GRAY_MODES = {"1", "L", "LA", "La"}
_DEEP_MODES = {"I", "F", "I;16", "I;16B", "I;16L", "I;16N"}


def have_dicom() -> bool:
    """Whether pydicom is importable (DICOM files are then read too)."""
    return importlib.util.find_spec("pydicom") is not None


def extensions() -> tuple[str, ...]:
    """File name suffixes (lower case) read as images."""
    return IMAGE_EXTENSIONS + (DICOM_EXTENSIONS if have_dicom() else ())


def is_image_file(path: Path, suffixes: Sequence[str] | None = None) -> bool:
    """True for a visible file whose suffix is one of ``suffixes`` (default: ``extensions()``)."""
    return not path.name.startswith(".") and path.suffix.lower() in (suffixes or extensions())


def _scaled(values: np.ndarray) -> Image.Image:
    """A min-max scaled 8-bit grayscale (or RGB for (H, W, 3)) image from any numeric array."""
    values = values.astype(np.float32)
    bad = int(values.size - np.isfinite(values).sum())
    if bad:  # min-max scaling would turn them into arbitrary grey levels
        raise ValueError(f"it holds {bad:,} non-finite pixel value(s) (NaN or infinity)")
    lo, hi = float(values.min()), float(values.max())
    scaled = (values - lo) * (255.0 / (hi - lo)) if hi > lo else np.zeros_like(values)
    return Image.fromarray(scaled.round().clip(0, 255).astype(np.uint8))


def _open_dicom(path: Path) -> Image.Image:
    import pydicom

    ds = pydicom.dcmread(str(path))
    pixels = ds.pixel_array
    if pixels.ndim == 3 and pixels.shape[-1] != 3:  # multi-frame: the middle frame
        pixels = pixels[pixels.shape[0] // 2]
    if getattr(ds, "PhotometricInterpretation", "") == "MONOCHROME1":
        pixels = pixels.max() - pixels
    return _scaled(pixels)


def read_image(path: Path, size: int | None = None, channels: int | None = None) -> np.ndarray:
    """One image as a (C, H, W) uint8 array, resized to ``size`` x ``size`` when given. Raises when unreadable."""
    if path.suffix.lower() in DICOM_EXTENSIONS:
        img = _open_dicom(path)
    else:
        img = _open_checked(path)
        if size is not None and img.format == "JPEG":
            img.draft("L" if channels == 1 else "RGB", (size, size))  # decode at a reduced scale
        img.load()
    if img.mode in _DEEP_MODES:
        img = _scaled(np.asarray(img))
    gray = img.mode in _GRAY_MODES
    img = img.convert("L" if gray else "RGB")
    if channels is not None and channels != (1 if gray else 3):
        img = img.convert("L" if channels == 1 else "RGB")
    if size is not None and img.size != (size, size):
        img = img.resize((size, size), Image.Resampling.BILINEAR)  # antialiased when shrinking
    arr = np.asarray(img)
    if arr.ndim == 2:
        return arr[None]
    arr = arr.transpose(2, 0, 1)
    if channels is None and (arr[0] == arr[1]).all() and (arr[0] == arr[2]).all():
        return arr[:1]
    return arr


def _open_checked(path: Path) -> Image.Image:
    """``Image.open`` with Pillow's decompression-bomb guard in plain words: above its limit a warning naming
    the file, above twice the limit a ValueError (the file is refused)."""
    warnings.filterwarnings("ignore", category=Image.DecompressionBombWarning)  # (idempotent; replaced below)
    try:
        img = Image.open(path)
    except Image.DecompressionBombError:
        raise ValueError(f"image '{path}' has more than {2 * (Image.MAX_IMAGE_PIXELS or 0):,} pixels, "
                         f"refused as a possible decompression bomb") from None
    pixels = img.width * img.height
    if Image.MAX_IMAGE_PIXELS and pixels > Image.MAX_IMAGE_PIXELS:
        log.warning("image '%s' is %dx%d px (%s pixels, above Pillow's decompression-bomb limit of %s); decoded "
                    "anyway, which needs about %d MB", path, img.width, img.height, f"{pixels:,}",
                    f"{Image.MAX_IMAGE_PIXELS:,}", pixels * len(img.getbands()) // 2**20)
    return img


def _try_read(path: Path, size: int | None, channels: int | None) -> np.ndarray | None:
    try:
        return read_image(path, size, channels)
    except Exception as exc:  # noqa: BLE001 - any failure makes the file unreadable, counted by the caller
        log.debug("cannot read '%s': %s", path, exc)
        return None


def _resize_array(arr: np.ndarray, hw: tuple[int, int]) -> np.ndarray:
    """(C, H, W) uint8 -> (C, *hw) uint8."""
    planes = [np.asarray(Image.fromarray(p).resize((hw[1], hw[0]), Image.Resampling.BILINEAR)) for p in arr]
    return np.stack(planes)


def decode_files(paths: Sequence[Path], size: int | None = None, channels: int | None = None,
                 workers: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Decode ``paths``: (images (K, C, H, W) uint8 of the K readable files, readable flags (N,) bool).

    With ``size`` the images go straight into one preallocated array; without, every image is brought to the
    most common (H, W) of the set.
    """
    workers = workers or min(8, os.cpu_count() or 1)
    ok = np.zeros(len(paths), dtype=bool)
    out: np.ndarray | None = None
    arrays: list[np.ndarray] = []
    n_ok = 0
    with ThreadPoolExecutor(max_workers=workers) as pool:
        for i, arr in enumerate(pool.map(lambda p: _try_read(Path(p), size, channels), paths)):
            if arr is None:
                continue
            if size is None:
                arrays.append(arr)
            elif out is None:
                out = np.empty((len(paths), arr.shape[0], size, size), dtype=np.uint8)
            elif arr.shape[0] > out.shape[1]:  # the first colour image of a grayscale set so far
                out = np.repeat(out, arr.shape[0], axis=1)
            if out is not None:
                out[n_ok] = arr  # a 1-channel image broadcasts to 3 channels
            ok[i] = True
            n_ok += 1
    if size is not None:
        if out is None:
            return np.zeros((0, channels or 1, size, size), np.uint8), ok
        return (out if n_ok == len(out) else out[:n_ok].copy()), ok  # a copy frees the unused rows
    if not arrays:
        return np.zeros((0, channels or 1, 1, 1), dtype=np.uint8), ok
    hw = Counter(a.shape[1:] for a in arrays).most_common(1)[0][0]
    out = np.empty((n_ok, max(a.shape[0] for a in arrays), *hw), dtype=np.uint8)
    for i, arr in enumerate(arrays):
        out[i] = arr if arr.shape[1:] == hw else _resize_array(arr, hw)
    return out, ok


def decode_cached(paths: Sequence[Path], *, size: int | None, channels: int | None,
                  cache_dir: str | Path | None, kind: str) -> tuple[torch.Tensor, torch.Tensor]:
    """``decode_files`` through the on-disk cache, keyed by the files (path, size, mtime), ``size`` and ``channels``.

    Returns (images (K, C, H, W) uint8 tensor, readable flags (N,) bool tensor).
    """
    paths = [Path(os.path.abspath(p)) for p in paths]
    key = cache.make_key(kind=kind, decoder=DECODER_VERSION, size=size, channels=channels,
                         files=cache.file_fingerprint(paths))

    def compute() -> dict:
        log.info("decoding %d image files", len(paths))
        images, ok = decode_files(paths, size, channels)
        return {"images": torch.from_numpy(images), "ok": torch.from_numpy(ok)}

    payload = cache.cached(key, kind, cache_dir, compute)
    return payload["images"], payload["ok"]
