"""Decoding image files: order, unreadable files, resizing, channels, 16-bit images."""
from __future__ import annotations

import numpy as np
from PIL import Image

from nas_med.data.decode import decode_files, read_image


def test_order_and_unreadable_with_size(tmp_path, make_image):
    paths = [make_image(tmp_path / f"{k}.png", k, size=(20, 20)) for k in range(5)]
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"junk")
    paths.insert(2, bad)
    paths.append(make_image(tmp_path / "rgb.png", 9, size=(20, 20), mode="RGB"))
    images, ok = decode_files(paths, size=8)
    assert ok.tolist() == [True, True, False, True, True, True, True]
    assert images.shape == (6, 3, 8, 8)  # the colour image makes the set 3-channel
    expected = [read_image(p, 8) for p in paths if p != bad]
    for got, want in zip(images, expected):
        assert np.array_equal(got, np.broadcast_to(want, got.shape))


def test_native_size_uses_the_most_common_shape(tmp_path, make_image):
    paths = [make_image(tmp_path / f"{k}.png", k, size=(10, 6)) for k in range(3)]
    paths.append(make_image(tmp_path / "odd.png", 7, size=(25, 25)))
    images, ok = decode_files(paths)
    assert ok.all() and images.shape == (4, 1, 6, 10)


def test_sixteen_bit_is_scaled(tmp_path):
    pixels = (np.arange(64, dtype=np.uint16).reshape(8, 8) * 1000)
    Image.fromarray(pixels).save(tmp_path / "deep.png")
    arr = read_image(tmp_path / "deep.png")
    assert arr.shape == (1, 8, 8) and arr.min() == 0 and arr.max() == 255


def test_channels_forced(tmp_path, make_image):
    path = make_image(tmp_path / "c.png", 3, mode="RGB")
    assert read_image(path, channels=1).shape == (1, 12, 12)
    gray = make_image(tmp_path / "g.png", 4)
    assert read_image(gray, size=6, channels=3).shape == (3, 6, 6)
