"""``nas-med arch``: list the building blocks, show one network (its shapes and cost), sample a search space."""
from __future__ import annotations

from pathlib import Path

import click
from rich.console import Console
from rich.table import Table

from ..errors import UserError


@click.group("arch")
def arch() -> None:
    """Block types, heads, reference networks and search spaces."""


@arch.command("list")
def list_() -> None:
    """Block types, heads, norms, activations, reference networks and shipped search spaces."""
    from ..arch import BASELINES, BLOCKS
    from ..arch.heads import HEAD_DESCRIPTIONS
    from ..arch.layers import ACTIVATIONS, KERNELS, NORMS
    from ..space import space_names

    def section(title: str, rows: dict[str, str]) -> None:
        click.echo(title)
        width = max(map(len, rows))
        for name, text in rows.items():
            click.echo(f"  {name:<{width}}  {text}")

    section("Block types:", {n: _first_line(f.__doc__) for n, f in BLOCKS.items()})
    section("Heads:", HEAD_DESCRIPTIONS)
    click.echo(f"Normalizations: {', '.join(NORMS)}")
    click.echo(f"Activations: {', '.join(ACTIVATIONS)}")
    click.echo(f"Kernels: {', '.join(map(str, KERNELS))}")
    section("Reference networks (nas-med arch show NAME):", {n: d for n, (_, d) in BASELINES.items()})
    click.echo(f"Search spaces: {', '.join(space_names())}")


def _first_line(doc: str | None) -> str:
    return (doc or "").strip().splitlines()[0] if doc else ""


def _load_spec(name_or_file: str, in_channels: int | None, classes: int | None, size: int | None):
    from ..arch import baseline_spec

    path = Path(name_or_file)
    if path.suffix == ".json" or path.is_file():
        from ..export.checks import read_spec_file

        if not path.is_file():
            raise UserError(f"spec file '{path}' does not exist.")
        return read_spec_file(path).with_io(in_channels, classes, size)  # size, nesting and depth bounded
    return baseline_spec(name_or_file, in_channels or 3, classes or 5, size or 224)


@arch.command("show")
@click.argument("name_or_file", metavar="NAME|SPEC.json")
@click.option("--in-channels", type=click.IntRange(1), default=None, help="Input channels. [default: 3, or the file's]")
@click.option("--classes", type=click.IntRange(1), default=None, help="Output classes. [default: 5, or the file's]")
@click.option("--size", type=click.IntRange(1), default=None, help="Input size in pixels. [default: 224, or the file's]")
@click.option("--json", "as_json", is_flag=True, help="Print only the spec as JSON (reusable as SPEC.json).")
def show(name_or_file: str, in_channels: int | None, classes: int | None, size: int | None, as_json: bool) -> None:
    """A reference network or a spec file: feature-map size per stage, parameters and FLOPs per image."""
    from ..arch import spec_cost, stage_shapes

    spec = _load_spec(name_or_file, in_channels, classes, size)
    shapes = stage_shapes(spec)  # InvalidSpec (exit 2) with the reason
    if as_json:
        click.echo(spec.to_json())
        return
    cost = spec_cost(spec)
    click.echo(f"{spec.name or name_or_file}: {spec.in_channels} x {spec.input_size} x {spec.input_size} -> "
               f"{spec.num_classes} classes")
    click.echo(spec.summary())
    table = Table(box=None, pad_edge=False)
    for column in ("stage", "channels", "map"):
        table.add_column(column, justify="left" if column == "stage" else "right")
    for stage, c, h, w in shapes:
        table.add_row(stage, str(c), f"{h}x{w}")
    Console().print(table)
    click.echo(f"parameters: {cost['params']:,}")
    click.echo(f"FLOPs: {cost['flops']:,} per image ({cost['flops'] / 1e9:.2f} G)")
    click.echo(f"activations: {cost['activation_bytes']:,} bytes per image "
               f"({cost['activation_bytes'] / 2**20:.1f} MiB, float32)")


@arch.command("sample")
@click.option("--space", "space_name", default="default", show_default=True, metavar="NAME|FILE.yaml",
              help="A shipped search space or a YAML file.")
@click.option("--n", "count", type=click.IntRange(1, 10_000), default=10, show_default=True,
              help="How many specs to sample.")
@click.option("--size", type=click.IntRange(1), default=64, show_default=True,
              help="Input size (unless the space searches it).")
@click.option("--in-channels", type=click.IntRange(1), default=1, show_default=True, help="Input channels.")
@click.option("--classes", type=click.IntRange(1), default=2, show_default=True, help="Output classes.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the random sampler.")
def sample_(space_name: str, count: int, size: int, in_channels: int, classes: int, seed: int) -> None:
    """Sample N specs from a search space (uniformly at random) and print their summaries and cost."""
    import optuna

    from ..arch import InvalidSpec, spec_cost
    from ..space import load_space, sample

    space = load_space(space_name)  # a broken file: exit 2, naming the field
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=seed))
    valid = 0
    for i in range(count):
        spec = sample(study.ask(), space, in_channels=in_channels, num_classes=classes, input_size=size)
        try:
            cost = spec_cost(spec)
        except InvalidSpec as exc:
            click.echo(f"{i:>4}  invalid ({exc})  {spec.summary()}")
            continue
        valid += 1
        click.echo(f"{i:>4}  {cost['params']:>12,} params  {cost['flops'] / 1e6:>10,.1f} MFLOPs  {spec.summary()}")
    click.echo(f"{valid} of {count} valid at {in_channels} x {size} x {size} ({space.name})")


def register(cli: click.Group) -> None:
    cli.add_command(arch)
