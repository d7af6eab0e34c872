"""Near-duplicates: what nas-med's batched pHash finds on real data, where false matches start, and its speed
beside the ``imagehash`` library.

Goal: the known BreastMNIST train-test copy found; hashes agree with imagehash.phash within a few bits; faster
than imagehash per image.

For BreastMNIST (28 and 64 px .npz, all 780 images pooled) and the brain-MRI folder (253 files decoded at 64 px):
* byte-identical copies (equal tensors for .npz, equal file bytes for the folder);
* pairs of images per Hamming distance 0, 2, 4, ... 16 of 64 bits (pHash compares the 8 x 8 lowest DCT
  frequencies with their median, so exactly 32 bits are set and distances are even), with the Pearson
  correlation of the two images' pixels: the lowest correlation per distance and how many pairs fall under 0.8
  show where different images start to match (read beside the pictures: a montage per distance is written with
  ``--montage DIR``);
* groups at the default threshold (``nas_med.data.duplicates.DEFAULT_THRESHOLD``) and how many span splits;
* bits where nas-med's hash differs from ``imagehash.phash`` on the same image (PIL resize vs torch antialiased
  bilinear), and the pairs each finds at the default threshold;
* time to hash 1,000 images, nas-med (one batched pass on the tensors) vs imagehash (per PIL image).

--quick: BreastMNIST 28 px only, timing on 300 images.

Reproduce:  .venv/bin/python benchmarks/duplicates.py          (~1 min on 2 shared cores)
            .venv/bin/python benchmarks/duplicates.py --quick
"""
from __future__ import annotations

import hashlib
import time
from pathlib import Path

from _common import parser, result, setup, shared_data


def _pooled_npz(path: Path):
    import numpy as np

    d = np.load(path)
    images = np.concatenate([d[f"{s}_images"] for s in ("train", "val", "test")])
    split = np.concatenate([[s] * len(d[f"{s}_images"]) for s in ("train", "val", "test")])
    byte = {}
    for i, x in enumerate(images):
        byte.setdefault(x.tobytes(), []).append(i)
    return images, split, [g for g in byte.values() if len(g) > 1]


def _brain(cache: str):
    import numpy as np

    from nas_med.data import load_dataset

    root = shared_data("brain_mri_yes_no")
    data = load_dataset(f"folder:{root}", size=64, channels=1, cache_dir=cache, duplicates="keep")
    files = sum((data.info.split_files[s] for s in ("train", "val", "test")), [])
    images = np.concatenate([s.images[:, 0].numpy() for s in (data.train, data.val, data.test)])
    split = np.concatenate([[s] * len(data.splits[s]) for s in ("train", "val", "test")])
    byte = {}
    for i, f in enumerate(files):
        byte.setdefault(hashlib.md5((root / f).read_bytes()).hexdigest(), []).append(i)
    return images, split, [g for g in byte.values() if len(g) > 1]


def _report(name: str, images, split, byte_groups, montage: Path | None) -> dict:
    import numpy as np
    import torch

    from nas_med.data.duplicates import DEFAULT_THRESHOLD, find_groups, hamming_pairs, phash

    h = phash(torch.as_tensor(images)[:, None])
    print(f"\n{name}: {len(images)} images; byte-identical: {len(byte_groups)} groups "
          f"({sum(len(g) - 1 for g in byte_groups)} extra copies, "
          f"{sum(len(set(split[g])) > 1 for g in byte_groups)} across splits)")
    i, j, d = hamming_pairs(h, 16)
    x = images.reshape(len(images), -1).astype(np.float64)
    z = (x - x.mean(1, keepdims=True)) / np.maximum(x.std(1, keepdims=True), 1e-9)
    corr = (z[i] * z[j]).mean(1)
    print("  distance  pairs  lowest pixel correlation  pairs under 0.8")
    first_false = None
    for dist in range(0, 17, 2):
        sel = d == dist
        if sel.any():
            low = int((corr[sel] < 0.8).sum())
            if low and first_false is None:
                first_false = dist
            print(f"  {dist:>8}  {int(sel.sum()):>5}  {corr[sel].min():>24.3f}  {low:>15}")
    gid = find_groups(h, DEFAULT_THRESHOLD)
    sizes = np.bincount(gid)
    groups = np.flatnonzero(sizes > 1)
    spans = sum(len(set(split[gid == g])) > 1 for g in groups)
    print(f"  at threshold {DEFAULT_THRESHOLD}: {len(groups)} groups ({int((sizes[groups] - 1).sum())} extra copies), "
          f"{spans} across splits; first distance with a pair under 0.8 correlation: {first_false}")
    if montage is not None:
        from PIL import Image

        montage.mkdir(parents=True, exist_ok=True)
        side = images.shape[-1]
        for dist in range(0, 17, 2):
            pick = np.flatnonzero(d == dist)[:6]
            if len(pick):
                row = np.concatenate([np.concatenate([images[i[p]], images[j[p]], np.zeros((side, 4))], 1)
                                      for p in pick], 1)
                Image.fromarray(row.astype(np.uint8)).save(montage / f"{name.split()[0]}_distance{dist:02d}.png")
    return {"hashes": h, "groups": len(groups), "spans": spans, "first_false": first_false}


def _imagehash(images, h, threshold: int) -> tuple[float, float, int, int]:
    """(mean, max) bits where imagehash.phash differs from ours, and pairs found by (ours, imagehash)."""
    import imagehash
    import numpy as np
    from PIL import Image

    from nas_med.data.duplicates import _popcount, hamming_pairs

    lib = np.array([int(str(imagehash.phash(Image.fromarray(x))), 16) for x in images], dtype=np.uint64)
    diff = _popcount(lib ^ h)
    return float(diff.mean()), float(diff.max()), len(hamming_pairs(h, threshold)[0]), \
        len(hamming_pairs(lib, threshold)[0])


def main() -> None:
    ap = parser(__doc__)
    ap.add_argument("--montage", type=Path, default=None, help="write pairs per distance as PNG montages here")
    args = ap.parse_args()
    setup(args)
    started = time.perf_counter()
    import tempfile

    import numpy as np
    import torch

    from nas_med.data.duplicates import DEFAULT_THRESHOLD, phash

    root = shared_data("breastmnist")
    sets = [("breastmnist 28 px", *_pooled_npz(root / "breastmnist.npz"))]
    if not args.quick:
        sets.append(("breastmnist 64 px", *_pooled_npz(root / "breastmnist_64.npz")))
        with tempfile.TemporaryDirectory() as cache:
            sets.append(("brain-MRI folder (64 px)", *_brain(cache)))
    found = {name: _report(name, images, split, byte, args.montage) for name, images, split, byte in sets}
    images = sets[0][1]
    try:
        mean_bits, max_bits, ours, theirs = _imagehash(images, found[sets[0][0]]["hashes"], DEFAULT_THRESHOLD)
        print(f"\nimagehash.phash vs nas-med on {sets[0][0]}: {mean_bits:.2f} bits differ on average (max "
              f"{max_bits:.0f}); pairs at threshold {DEFAULT_THRESHOLD}: nas-med {ours}, imagehash {theirs}")
        have_lib = True
    except ImportError:
        print("\nimagehash is not installed (pip install imagehash): no comparison")
        mean_bits = max_bits = float("nan")
        have_lib = False
    n = 300 if args.quick else 1000
    sample = np.resize(images, (n, *images.shape[1:]))
    tensor = torch.as_tensor(sample)[:, None]
    t0 = time.perf_counter()
    phash(tensor)
    ours_ms = (time.perf_counter() - t0) * 1000 / n * 1000
    lib_ms = float("nan")
    if have_lib:
        import imagehash
        from PIL import Image

        t0 = time.perf_counter()
        for x in sample:
            imagehash.phash(Image.fromarray(x))
        lib_ms = (time.perf_counter() - t0) * 1000 / n * 1000
    print(f"time to hash 1,000 images: nas-med {ours_ms:.1f} ms, imagehash {lib_ms:.1f} ms")
    breast = found[sets[0][0]]
    result({"breast_groups": breast["groups"], "breast_cross_split_groups": breast["spans"],
            "bits_vs_imagehash": mean_bits, "nasmed_ms_per_1k": ours_ms, "imagehash_ms_per_1k": lib_ms},
           "goal the known train-test copy among the cross-split groups; bits_vs_imagehash <= 1; nas-med faster",
           started)


if __name__ == "__main__":
    main()
