"""MedMNIST 2D datasets: names, labels, task and URLs/MD5s from the ``medmnist`` package's catalog.

Files are read from ``data_root`` (``<name>.npz`` or ``<name>_<size>.npz``) or from ``<cache>/medmnist``, and
downloaded there when missing (temp file, MD5 checked, then moved into place; files already present are
trusted, as a re-saved copy differs from the catalog MD5). Any ``size`` is accepted: the first file present among
the catalog sizes (28/64/128/224) equal to or above it, in order (224 for a size above 224); when none is present,
the first of those is downloaded; the preprocessing step then resizes. Without ``size`` the order starts at 28.
"""
from __future__ import annotations

import hashlib
import logging
import urllib.error
import urllib.request
import zipfile
from pathlib import Path

import numpy as np
import torch

from ..errors import UserError
from . import cache
from .types import Dataset, DatasetInfo, Split, Task
from .validate import images_to_uint8, labels_to_tensor

log = logging.getLogger(__name__)

SIZES = (28, 64, 128, 224)
TASKS: dict[str, Task] = {"binary-class": "binary", "multi-class": "multiclass",
                          "ordinal-regression": "multiclass", "multi-label, binary-class": "multilabel"}
SPLITS = ("train", "val", "test")
TIMEOUT_S = 60


def catalog() -> dict[str, dict]:
    """The medmnist package's INFO dict (all datasets, 2D and 3D)."""
    from medmnist.info import INFO

    return INFO


def names() -> list[str]:
    """The 2D datasets of the catalog, in catalog order."""
    return [name for name, info in catalog().items() if not _is_3d(name, info)]


def _is_3d(name: str, info: dict) -> bool:
    return name.endswith("3d") or str(info.get("python_class", "")).endswith("3D")


def info(name: str) -> dict:
    """The catalog entry of a 2D dataset; UserError for a 3D one."""
    entry = catalog()[name]
    if _is_3d(name, entry):
        raise UserError(f"'{name}' is a 3D MedMNIST dataset; nas-med handles 2D images only "
                        f"(2D: {', '.join(names())}).")
    return entry


def task_of(name: str) -> Task:
    """The nas-med task of a MedMNIST dataset (ordinal regression is treated as multi-class)."""
    raw = info(name)["task"]
    if raw not in TASKS:
        raise UserError(f"MedMNIST task '{raw}' of '{name}' is not supported.")
    return TASKS[raw]


def url_md5(name: str, size: int) -> tuple[str, str]:
    """The download URL and MD5 of ``name`` at ``size`` px (keys ``url``/``MD5`` for 28, ``url_S``/``MD5_S``)."""
    entry = info(name)
    suffix = "" if size == 28 else f"_{size}"
    if f"url{suffix}" not in entry:
        raise UserError(f"the medmnist catalog has no {size} px file for '{name}'.")
    return entry[f"url{suffix}"], entry[f"MD5{suffix}"]


def candidate_sizes(size: int | None) -> list[int]:
    """Catalog sizes to try for a requested ``size``, best first: equal, then larger ones, else the largest."""
    want = 28 if size is None else size
    return [s for s in SIZES if s >= want] or [SIZES[-1]]


def file_names(name: str, size: int) -> list[str]:
    """Accepted file names of ``name`` at ``size`` px."""
    return [f"{name}.npz", f"{name}_28.npz"] if size == 28 else [f"{name}_{size}.npz"]


def find_file(name: str, sizes: list[int], folders: list[Path]) -> tuple[Path, int] | None:
    """The first existing file for ``sizes`` (in order) in ``folders`` (in order)."""
    for size in sizes:
        for folder in folders:
            for fname in file_names(name, size):
                if (folder / fname).is_file():
                    return folder / fname, size
    return None


def md5sum(path: Path) -> str:
    """Hex MD5 of a file."""
    digest = hashlib.md5()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def download(url: str, md5: str, target: Path) -> Path:
    """Download ``url`` to ``target`` via a temp file, checking ``md5``; UserError on failure or mismatch."""
    log.warning("downloading %s to %s", url, target)
    digest = hashlib.md5()

    def write(fh) -> None:
        with urllib.request.urlopen(url, timeout=TIMEOUT_S) as response:  # noqa: S310 - catalog URL
            while block := response.read(1 << 20):
                digest.update(block)
                fh.write(block)
        if digest.hexdigest() != md5:
            raise UserError(f"checksum mismatch for '{url}': expected MD5 {md5}, got {digest.hexdigest()}; "
                            f"the file was not kept.")

    try:
        cache.atomic_write(target, write)
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise UserError(f"could not download '{url}' ({reason}); put the file in --data-root or the cache "
                        f"'{target.parent}'.") from None
    return target


def read_npz(path: Path) -> dict[str, np.ndarray]:
    """The six arrays of a MedMNIST file; UserError naming the file when it is corrupt or incomplete."""
    keys = [f"{s}_{kind}" for s in SPLITS for kind in ("images", "labels")]
    try:
        with np.load(path) as npz:
            missing = [k for k in keys if k not in npz.files]
            arrays = {k: npz[k] for k in keys if k in npz.files}
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as exc:
        raise UserError(f"cannot read MedMNIST file '{path}': {exc}") from None
    if missing:
        raise UserError(f"MedMNIST file '{path}' lacks the arrays {', '.join(missing)}.")
    return arrays


def to_split(images: np.ndarray, labels: np.ndarray, task: Task, num_classes: int | None = None,
             where: str = "MedMNIST", notes: list[str] | None = None) -> Split:
    """(N, H, W) or (N, H, W, C) images and (N,), (N, 1) or (N, L) labels -> a Split, checked by
    ``validate`` (float images in [0, 1] are rescaled to 0..255; labels out of range are refused)."""
    if images.ndim == 3:
        images = images[:, None]
    elif images.ndim == 4 and images.shape[-1] in (1, 3):
        images = images.transpose(0, 3, 1, 2)
    else:
        raise UserError(f"{where}_images: unexpected image array shape {images.shape} (expected (N, H, W) or "
                        f"(N, H, W, 1 or 3)).")
    images = np.ascontiguousarray(images_to_uint8(images, f"{where}_images", notes))
    if num_classes is None:
        num_classes = labels.reshape(len(labels), -1).shape[1] if task == "multilabel" else int(labels.max()) + 1
    target = labels_to_tensor(labels, len(images), task, num_classes, f"{where}_labels")
    return Split(torch.from_numpy(images), target)


def load(name: str, *, size: int | None = None, data_root: str | Path | None = None,
         cache_dir: str | Path | None = None, download: bool = True) -> Dataset:
    """A MedMNIST 2D dataset with its official splits, at the catalog size closest to ``size`` from above."""
    entry = info(name)
    task = task_of(name)
    folders = ([Path(data_root).expanduser()] if data_root is not None else [])
    folders.append(cache.cache_root(cache_dir) / "medmnist")
    sizes = candidate_sizes(size)
    found = find_file(name, sizes, folders)
    if found is None:
        wanted = file_names(name, sizes[0])[0]
        if not download:
            raise UserError(f"MedMNIST file '{wanted}' not found in {', '.join(repr(str(f)) for f in folders)} "
                            f"and download is disabled.")
        url, md5 = url_md5(name, sizes[0])
        found = (_download_to(url, md5, folders[-1] / wanted), sizes[0])
    path, file_size = found
    log.info("reading %s", path)
    arrays = read_npz(path)
    classes = [entry["label"][k] for k in sorted(entry["label"], key=int)]
    notes: list[str] = []
    splits = {s: to_split(arrays[f"{s}_images"], arrays[f"{s}_labels"], task, len(classes), f"'{path}' {s}",
                          notes) for s in SPLITS}
    for note in notes:
        log.warning("%s", note)
    return Dataset(name, task, classes, **splits,
                   info=DatasetInfo(source=str(path), file_size=file_size, licence=entry.get("license", ""),
                                    medmnist_task=entry["task"]))


def _download_to(url: str, md5: str, target: Path) -> Path:
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UserError(f"cannot create the cache folder '{target.parent}': {exc.strerror}.") from None
    return download(url, md5, target)


