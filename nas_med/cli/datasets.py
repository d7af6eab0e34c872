"""``nas-med datasets``: list the catalog, show one dataset's splits and classes."""
from __future__ import annotations

import click
from rich.console import Console
from rich.table import Table

from .options import data_options, source_options


@click.group("datasets", invoke_without_command=True)
@click.option("--data-root", type=click.Path(file_okay=False), default=None,
              help="Also look for MedMNIST files here when saying what is available locally.")
@click.option("--names", "names_only", is_flag=True, help="Print the bare names, one a line.")
@click.pass_context
def datasets(ctx: click.Context, data_root: str | None, names_only: bool) -> None:
    """The catalogue: every dataset nas-med accepts with its task, classes, sizes, whether it is available
    locally and its licence (or `show NAME` for one dataset's splits)."""
    if ctx.invoked_subcommand is not None:
        return
    if names_only:
        from ..data import dataset_names

        for name in dataset_names():
            click.echo(name)
        return
    from ..data.about import catalogue

    table = Table(title="nas-med datasets")
    for col in ("name", "task", "classes", "sizes", "available locally", "licence"):
        table.add_column(col, no_wrap=col == "name", overflow="fold")
    for r in catalogue(data_root):
        table.add_row(r["name"], r["task"], r["classes"], r["sizes"], r["local"], r["licence"])
    Console(width=200).print(table)


@datasets.command("show")
@click.argument("name")
@data_options
@source_options
def show(name: str, **data_kwargs) -> None:
    """Counts per split and class, and the task type; for folder:PATH also the pre-flight summary of a search."""
    from ..data import load_dataset
    from ..data.sizing import folder_default_size
    from ..train import pick_device

    choice = None  # for a folder without --size: the size a search would use
    if data_kwargs["size"] is None:
        choice = folder_default_size(name, pick_device("auto").type, cache_dir=data_kwargs["cache_dir"])
    if choice is not None:
        data_kwargs["size"] = choice.size
    data = load_dataset(name, **data_kwargs)
    table = Table(title=f"{data.name}: {data.task}, {data.num_classes} classes, "
                        f"{data.in_channels}x{data.size}x{data.size}")
    table.add_column("class")
    counts = data.class_counts()
    for split in counts:
        table.add_column(f"{split} ({len(data.splits[split])})", justify="right")
    for i, cls in enumerate(data.classes):
        table.add_row(cls, *[str(counts[s][i]) for s in counts])
    console = Console()
    console.print(table)
    console.print(f"fraction {data_kwargs['fraction']}, seed {data_kwargs['seed']}, "
                  f"source {data.info.source or data.name}", soft_wrap=True, highlight=False)
    if name.startswith("folder:"):
        from ..data.summary import folder_root, scan_folder, summarize, summary_lines

        lines = ([choice.reason] if choice is not None else []) + summary_lines(
            summarize(scan_folder(folder_root(name), data_kwargs.get("cache_dir")), data), data.name)
        for line in lines:
            console.print(line, soft_wrap=True, highlight=False, markup=False)
    elif data.info.duplicates is not None:
        console.print(data.info.duplicates.line(), soft_wrap=True, highlight=False, markup=False)


def register(cli: click.Group) -> None:
    cli.add_command(datasets)
