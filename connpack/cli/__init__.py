"""The ``connpack`` command: one module per command; each maps options onto one library call and prints."""

from __future__ import annotations

import os
import signal
import sys

import typer

from connpack.cli import bench, compare, data, demo, evaluate, pack, report, train, unpack
from connpack.cli.common import ConnpackGroup, Terminated, err_console, handle_signals

app = typer.Typer(
    help="Train, pack and export networks with fixed random weights and learned connectivity.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    cls=ConnpackGroup,
)
app.command("train")(train.command)
app.command("pack")(pack.command)
app.command("unpack")(unpack.command)
app.command("eval")(evaluate.command)
app.command("report")(report.command)
app.command("demo")(demo.command)
app.command("compare")(compare.command)
app.command("bench")(bench.command)
app.add_typer(data.app, name="data")


def main() -> None:
    if "--debug" in sys.argv:
        sys.argv.remove("--debug")
        os.environ["CONNPACK_DEBUG"] = "1"
    handle_signals()
    try:
        app(prog_name="connpack")
    except Terminated as e:  # outside a command body (while importing, parsing): still one line
        err_console.print(f"connpack: error: terminated by {signal.Signals(e.signum).name}", markup=False)
        sys.exit(128 + e.signum)
