"""Pre-flight summary of a ``folder:`` dataset: counts, image sizes, channels, imbalance, duplicates, skipped files.

Cheap by construction: :func:`scan_folder` reads only image headers (PIL opens lazily: size and mode come without
decoding the pixels) and hashes each file's bytes; the scan is kept in the nas-med cache beside the decoded
tensors, keyed by the files' (path, size, mtime), so a second search or ``datasets show`` reads it back.
The summary's split counts and cross-split duplicates come from the loaded dataset (``info.split_files``).
"""
from __future__ import annotations

import hashlib
import os
import statistics
from collections import Counter, defaultdict
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from PIL import Image

from . import cache
from .decode import DICOM_EXTENSIONS
from .types import Dataset

SCAN_VERSION = 1
IMBALANCE = 1 / 3  # rarest / largest class under this: suggest --class-weighting
_GRAY = {"1", "L", "LA", "La", "I", "F", "I;16", "I;16B", "I;16L", "I;16N"}
_memo: dict[str, dict] = {}


def _header(path: Path) -> tuple[int, int, str, str | None]:
    """(width, height, mode, error) from the file's header only."""
    try:
        if path.suffix.lower() in DICOM_EXTENSIONS:
            import pydicom

            ds = pydicom.dcmread(str(path), stop_before_pixels=True)
            mode = "L" if int(getattr(ds, "SamplesPerPixel", 1)) == 1 else "RGB"
            return int(ds.Columns), int(ds.Rows), f"DICOM-{mode}", None
        with Image.open(path) as img:
            return int(img.size[0]), int(img.size[1]), str(img.mode), None
    except Exception as exc:  # noqa: BLE001 - any failure is the reason the file is skipped
        text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        return 0, 0, "", text.replace(str(path), "").strip(" '") or type(exc).__name__


def _digest(path: Path) -> str:
    h = hashlib.blake2b(digest_size=16)
    try:
        with open(path, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                h.update(block)
    except OSError:
        return ""
    return h.hexdigest()


def scan_folder(root: str | Path, cache_dir: str | Path | None = None) -> dict:
    """Headers and content hashes of every image of a class-per-sub-folder ``root`` (cached on disk).

    Returns plain lists: ``classes``, ``files`` (paths relative to root), ``labels``, ``widths``, ``heights``,
    ``modes``, ``digests``, ``errors`` (None when the header reads) and ``ignored`` (other files, relative).
    """
    from .folder import list_images

    root = Path(root).expanduser()
    classes, files, labels = list_images(root)
    abs_files = [Path(os.path.abspath(p)) for p in files]
    key = cache.make_key(kind="folder-scan", version=SCAN_VERSION, files=cache.file_fingerprint(abs_files))
    if key in _memo:
        return _memo[key]

    def compute() -> dict:
        with ThreadPoolExecutor(max_workers=min(8, os.cpu_count() or 1)) as pool:
            heads = list(pool.map(_header, abs_files))
            digests = list(pool.map(_digest, abs_files))
        image_set = set(abs_files)
        ignored = sorted(p.relative_to(root).as_posix() for p in root.rglob("*")
                         if p.is_file() and Path(os.path.abspath(p)) not in image_set
                         and not any(part.startswith(".") for part in p.relative_to(root).parts))
        return {"classes": classes, "files": [p.relative_to(root).as_posix() for p in files], "labels": labels,
                "widths": [h[0] for h in heads], "heights": [h[1] for h in heads], "modes": [h[2] for h in heads],
                "errors": [h[3] for h in heads], "digests": digests, "ignored": ignored}

    payload = cache.cached(key, "folder-scan", cache_dir, compute)
    scan = {k: v for k, v in payload.items() if k != "format"}
    _memo[key] = scan
    return scan


def readable_shapes(scan: dict) -> list[tuple[int, int]]:
    """(width, height) of every file whose header reads."""
    return [(w, h) for w, h, e in zip(scan["widths"], scan["heights"], scan["errors"], strict=True) if e is None]


def summarize(scan: dict, data: Dataset | None = None) -> dict:
    """The summary as plain values (see :func:`summary_lines` for the printed form)."""
    classes = scan["classes"]
    ok = [i for i, e in enumerate(scan["errors"]) if e is None]
    sides = [min(scan["widths"][i], scan["heights"][i]) for i in ok]
    aspects = [scan["widths"][i] / scan["heights"][i] for i in ok]
    out: dict = {"classes": classes, "files": len(scan["files"]), "readable_headers": len(ok)}
    if ok:
        out["sizes"] = {"min_side": min(sides), "median_side": int(statistics.median_low(sides)),
                        "max_side": max(sides), "min_wh": _wh(scan, min(ok, key=lambda i: _area(scan, i))),
                        "max_wh": _wh(scan, max(ok, key=lambda i: _area(scan, i))),
                        "aspect_min": min(aspects), "aspect_median": statistics.median(aspects),
                        "aspect_max": max(aspects), "not_square": sum(abs(a - 1) > 0.01 for a in aspects),
                        "distinct": len({_wh(scan, i) for i in ok})}
    out["modes"] = dict(Counter(scan["modes"][i] for i in ok).most_common())
    per_class = Counter(scan["labels"][i] for i in ok)
    out["per_class"] = [per_class.get(k, 0) for k in range(len(classes))]
    split_of: dict[str, str] = {}
    if data is not None:
        out["split_counts"] = data.class_counts()
        out["channels"], out["size"] = data.in_channels, data.size
        for split, names in (data.info.split_files or {}).items():
            split_of.update({n: split for n in names})
        out["per_class"] = [sum(c[k] for c in out["split_counts"].values()) for k in range(len(classes))]
    counts = out["per_class"]
    if counts and max(counts) > 0:
        rare, big = min(range(len(counts)), key=counts.__getitem__), max(range(len(counts)), key=counts.__getitem__)
        ratio = counts[rare] / counts[big]
        out["imbalance"] = {"rarest": classes[rare], "rarest_n": counts[rare], "largest": classes[big],
                            "largest_n": counts[big], "ratio": ratio, "suggest_weighting": ratio < IMBALANCE}
    out["duplicates"] = _duplicates(scan, split_of)
    out["deduplicated_by_loader"] = False  # folder.load keeps every readable file, copies included
    out["grouped_by_loader"] = data is not None and data.info.duplicates_mode != "keep"
    out["near_duplicates"] = None if data is None or data.info.duplicates is None else data.info.duplicates.to_dict()
    skipped = [(scan["files"][i], scan["errors"][i]) for i, e in enumerate(scan["errors"]) if e is not None]
    if split_of:  # decoded by the loader: a header that reads but pixels that do not are skipped there
        skipped += [(f, "the pixels could not be decoded") for i, f in enumerate(scan["files"])
                    if scan["errors"][i] is None and f not in split_of]
    out["skipped"] = skipped
    out["ignored"] = list(scan["ignored"])
    return out


def _wh(scan: dict, i: int) -> tuple[int, int]:
    return scan["widths"][i], scan["heights"][i]


def _area(scan: dict, i: int) -> int:
    return scan["widths"][i] * scan["heights"][i]


def _duplicates(scan: dict, split_of: dict[str, str]) -> dict:
    """Groups of byte-identical files; those spread over splits (leakage) or over classes (conflicting labels)."""
    groups: dict[str, list[int]] = defaultdict(list)
    for i, d in enumerate(scan["digests"]):
        if d and scan["errors"][i] is None:
            groups[d].append(i)
    dups = [g for g in groups.values() if len(g) > 1]
    files = scan["files"]
    cross_split = [[files[i] for i in g] for g in dups
                   if len({split_of.get(files[i]) for i in g if files[i] in split_of}) > 1]
    cross_class = [[files[i] for i in g] for g in dups if len({scan["labels"][i] for i in g}) > 1]
    return {"groups": len(dups), "extra_copies": sum(len(g) - 1 for g in dups), "cross_split": cross_split,
            "cross_class": cross_class, "examples": [[files[i] for i in g] for g in dups[:3]]}


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def summary_lines(summary: dict, name: str = "") -> list[str]:
    """The summary as the lines printed before a search and by ``nas-med datasets show folder:PATH``."""
    s, classes = summary, summary["classes"]
    lines = []
    total = sum(s["per_class"])
    head = f"pre-flight summary{f' of {name}' if name else ''}: {len(classes)} classes, {total} images"
    if "split_counts" in s:
        head += " (" + ", ".join(f"{k} {sum(v)}" for k, v in s["split_counts"].items()) + ")"
        head += f"; training at {s['channels']} x {s['size']} x {s['size']}"
    lines.append(head)
    width = max(len(c) for c in classes) + 2
    if "split_counts" in s:
        names = list(s["split_counts"])
        lines.append("  " + "class".ljust(width) + "".join(f"{n:>7}" for n in names) + f"{'total':>7}")
        for k, cls in enumerate(classes):
            lines.append("  " + cls.ljust(width) + "".join(f"{s['split_counts'][n][k]:>7}" for n in names)
                         + f"{s['per_class'][k]:>7}")
    else:
        lines.append("  " + ", ".join(f"{c} {n}" for c, n in zip(classes, s["per_class"], strict=True)))
    if "sizes" in s:
        z = s["sizes"]
        lines.append(f"image sizes: shorter side min {z['min_side']} / median {z['median_side']} / max "
                     f"{z['max_side']} px ({z['min_wh'][0]}x{z['min_wh'][1]} to {z['max_wh'][0]}x{z['max_wh'][1]}, "
                     f"{_plural(z['distinct'], 'distinct size')}); aspect w/h {z['aspect_min']:.2f}-"
                     f"{z['aspect_max']:.2f} (median {z['aspect_median']:.2f}), {z['not_square']} not square "
                     f"(stretched to a square)")
    gray = sum(n for m, n in s["modes"].items() if m in _GRAY or m == "DICOM-L")
    modes = ", ".join(f"{m} {n}" for m, n in s["modes"].items())
    used = f"; {s['channels']} channel{'s' if s.get('channels', 1) > 1 else ''} used" if "channels" in s else ""
    if s.get("channels") == 1 and gray < sum(s["modes"].values()):
        used += " (colour files whose three channels are equal count as grayscale)"
    lines.append(f"channels: file modes {modes} ({gray} grayscale){used}")
    if "imbalance" in s:
        b = s["imbalance"]
        text = (f"class balance: rarest '{b['rarest']}' {b['rarest_n']} vs largest '{b['largest']}' "
                f"{b['largest_n']} (ratio {b['ratio']:.2f})")
        text += (": under 1/3, consider --class-weighting" if b["suggest_weighting"]
                 else ": no class weighting needed")
        lines.append(text)
    d = s["duplicates"]
    if d["groups"]:
        text = (f"duplicates by content hash: {_plural(d['groups'], 'group')} of identical files "
                f"({d['extra_copies']} extra copies, e.g. {' = '.join(repr(f) for f in d['examples'][0])})")
        if "split_counts" in s:
            n = len(d["cross_split"])
            text += (f"; {n} group{' spans' if n == 1 else 's span'} splits (leakage: the same image in "
                     f"training and evaluation)" if n else "; none spans two splits")
        if d["cross_class"]:
            text += f"; {len(d['cross_class'])} with conflicting classes (e.g. {d['cross_class'][0]})"
        text += (". The folder loader does not deduplicate; it keeps each group of copies in one split "
                 "(--duplicates group)" if s.get("grouped_by_loader") else
                 ". The folder loader does not deduplicate: remove the copies, or split with --duplicates group "
                 "(or --group-csv with one group per copy set) so each stays in one split")
        lines.append(text)
    else:
        lines.append("duplicates by content hash: none (the folder loader does not deduplicate; nothing to do)")
    if s.get("near_duplicates"):
        from .duplicates import DuplicateReport

        lines.append(DuplicateReport.from_dict(s["near_duplicates"]).line())
    if s["skipped"]:
        shown = "; ".join(f"'{f}' ({why})" for f, why in s["skipped"][:3])
        more = f"; and {len(s['skipped']) - 3} more" if len(s["skipped"]) > 3 else ""
        lines.append(f"skipped: {_plural(len(s['skipped']), 'file')} that cannot be read: {shown}{more}")
    else:
        lines.append("skipped: none")
    if s["ignored"]:
        kinds = Counter(Path(f).suffix.lower() or "(no suffix)" for f in s["ignored"])
        n = len(s["ignored"])
        lines.append(f"ignored: {_plural(n, 'file')} that {'is' if n == 1 else 'are'} not an image (" +
                     ", ".join(f"{k} {n}" for k, n in kinds.most_common()) + ")")
    return lines


def folder_root(name: str) -> Path | None:
    """The folder of a ``folder:PATH`` dataset name, else None (also for an empty PATH: the loader says so)."""
    path = name[len("folder:"):] if name.startswith("folder:") else ""
    return Path(path).expanduser() if path.strip() else None


__all__ = ["scan_folder", "summarize", "summary_lines", "readable_shapes", "folder_root"]
