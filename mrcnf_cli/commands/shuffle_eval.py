"""`mrcnf shuffle-eval`: BPD of images whose k x k patches were permuted at random."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.table import Table

from mrcnf_cli.app import app
from mrcnf_cli.commands.common import (
    ConvertOption,
    DataDirOption,
    DeviceOption,
    JsonOption,
    ModelOption,
    QuietOption,
    SeedOption,
    VerboseOption,
    command_errors,
    complete_dataset,
    default_device,
    default_model_dir,
    output_console,
    print_json,
    setup_logging,
)
from mrcnf_cli.errors import InputError
from mrcnf_cli.jobs.ood import shuffle_evaluation
from mrcnf_cli.parsing import resolve_device


def parse_patches(text: str) -> list[int]:
    """Parse patch sizes such as "1,2,4,8"."""
    try:
        patches = [int(part) for part in text.split(",")]
    except ValueError:
        patches = []
    if not patches or min(patches) < 1:
        raise InputError(f"invalid patch sizes {text!r}; give positive integers separated by commas, for example 1,2,4,8")
    return patches


@app.command("shuffle-eval")
def shuffle_eval(
    model: ModelOption = None,
    data: Annotated[Optional[str], typer.Option("--data", help="Images to shuffle: a data set name or path. Default: the set the stack was trained on.", autocompletion=complete_dataset)] = None,
    patch: Annotated[str, typer.Option("--patch", help="Patch sizes in pixels, comma separated; each must divide the image size.")] = "1,2,4,8,16,32",
    split: Annotated[str, typer.Option("--split", help="Split of --data.")] = "test",
    data_dir: DataDirOption = None,
    max_images: Annotated[Optional[int], typer.Option("--max-images", min=1, help="Use only the first N images.")] = None,
    batch_size: Annotated[int, typer.Option("--batch-size", min=1, help="Images per batch.")] = 64,
    permutations: Annotated[Optional[Path], typer.Option("--permutations", help="Save the permutations to this .npz file (one array per patch size).")] = None,
    plot: Annotated[Optional[Path], typer.Option("--plot", help="Write a PNG plot of BPD against patch size.")] = None,
    convert: ConvertOption = False,
    seed: SeedOption = 0,
    device: DeviceOption = None,
    json_output: JsonOption = False,
    quiet: QuietOption = False,
    verbose: VerboseOption = False,
) -> None:
    """Report BPD mean and standard deviation for each patch size next to the unshuffled BPD."""
    setup_logging(verbose=verbose, quiet=quiet)
    with command_errors(verbose=verbose):
        report = shuffle_evaluation(
            Path(model or default_model_dir()),
            data=data,
            patches=parse_patches(patch),
            data_dir=data_dir,
            split=split,
            max_images=max_images,
            batch_size=batch_size,
            seed=seed,
            convert=convert,
            permutations_path=permutations,
            plot=plot,
            device=resolve_device(device or default_device()),
        )

    rows = [{"patch": patch, "bpd": r.bpd_mean, "bpd_std": r.bpd_std} for patch, r in report.by_patch.items()]
    if json_output:
        print_json(
            {
                "data": report.data,
                "images": report.images,
                "seed": seed,
                "unshuffled": {"bpd": report.unshuffled.bpd_mean, "bpd_std": report.unshuffled.bpd_std},
                "patches": rows,
                "permutations": report.permutations,
                "plot": report.plot,
            }
        )
        return

    table = Table(title=f"{report.data}: {report.images} images; unshuffled {report.unshuffled.bpd_mean:.4f} ± {report.unshuffled.bpd_std:.4f} bits/dim")
    table.add_column("patch size")
    table.add_column("bits/dim", justify="right")
    table.add_column("std", justify="right")
    for row in rows:
        table.add_row(str(row["patch"]), f"{row['bpd']:.4f}", f"{row['bpd_std']:.4f}")
    output_console().print(table)
