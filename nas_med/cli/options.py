"""Options shared by several commands, declared once."""
from __future__ import annotations

import functools

import click


def data_options(func):
    """--data-root, --size, --channels, --fraction, --seed: how a dataset is loaded."""

    @click.option("--data-root", type=click.Path(file_okay=False), default=None,
                  help="Folder holding the dataset files (MedMNIST .npz, RadImageNet tree).")
    @click.option("--size", type=int, default=None, help="Resize images to SIZE x SIZE pixels.")
    @click.option("--channels", type=click.Choice(["1", "3"]), default=None, help="Convert to 1 or 3 channels.")
    @click.option("--fraction", type=float, default=1.0, show_default=True,
                  help="Fraction of the training split to keep, in (0, 1].")
    @click.option("--seed", type=int, default=0, show_default=True, help="Seed of splits, fraction and search.")
    @functools.wraps(func)
    def wrapper(*args, channels=None, **kwargs):
        return func(*args, channels=int(channels) if channels else None, **kwargs)

    return wrapper
