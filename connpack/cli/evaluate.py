"""connpack eval: accuracy of a .cpk or .onnx network in onnxruntime on a test split."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from connpack.cli.common import MAX_WEIGHTS_DEFAULT, DataDir, JsonFlag, MaxWeights, console, errors, safe
from connpack.files import regular_file


@errors
def command(
    model: Annotated[Path, typer.Argument(help="a .cpk or .onnx file")],
    dataset: Annotated[
        Optional[str],
        typer.Option(help="dataset (default: the one the network records; a network without a record needs it)"),
    ] = None,
    limit: Annotated[Optional[int], typer.Option(help="evaluate only the first N test examples")] = None,
    data_dir: DataDir = None,
    as_json: JsonFlag = False,
    max_weights: MaxWeights = MAX_WEIGHTS_DEFAULT,
):
    """Run the network in onnxruntime on the test split and print its accuracy."""
    regular_file(model)
    from connpack.evaluate import evaluate, load_onnx  # onnxruntime, torch: imported when the command runs

    res = evaluate(load_onnx(model, max_weights=max_weights), dataset, data_dir, limit, what=str(model))
    if as_json:
        import json

        console.print_json(
            json.dumps(
                {
                    "dataset": res.dataset,
                    "examples": res.examples,
                    "correct": res.correct,
                    "accuracy": res.accuracy,
                    "trained_on": res.trained_on,
                    "note": res.note,
                }
            )
        )
    else:
        if res.note:
            console.print(safe(res.note), soft_wrap=True)
        console.print(
            f"{safe(model)}: accuracy {res.accuracy:.2%} ({res.correct}/{res.examples}) on {safe(res.dataset)} test, "
            "onnxruntime",
            soft_wrap=True,
        )
