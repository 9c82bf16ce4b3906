"""`mrcnf bpd`: bits per dimension of images under a trained stack."""

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
    complete_solver,
    complete_trace,
    default_device,
    default_model_dir,
    output_console,
    print_json,
    read_paths_from_stdin,
    setup_logging,
)
from mrcnf_cli.jobs.evaluation import evaluate_model
from mrcnf_cli.parsing import resolve_device
from mrcnf_cli.solvers import SolverConfig


@app.command()
def bpd(
    images: Annotated[Optional[list[Path]], typer.Argument(help="Image files to evaluate, one row each (instead of --data); - reads one path per line from stdin.", show_default=False)] = None,
    model: ModelOption = None,
    data: Annotated[Optional[str], typer.Option("--data", help="Data set name or path to evaluate.", autocompletion=complete_dataset)] = None,
    split: Annotated[str, typer.Option("--split", help="Split of --data: train, test or all.")] = "test",
    data_dir: DataDirOption = None,
    image_size: Annotated[Optional[int], typer.Option("--image-size", min=1, help="Box-downsample the images to this size in pixels first. Default: the stack's finest size, for larger images.")] = None,
    trace: Annotated[str, typer.Option("--trace", help="Divergence: hutchinson (one probe per solve, unbiased) or exact (slow, small images).", autocompletion=complete_trace)] = "hutchinson",
    solver: Annotated[Optional[str], typer.Option("--solver", help="Evaluation solver; default: the one recorded in each level file (dopri5).", autocompletion=complete_solver)] = None,
    atol: Annotated[float, typer.Option("--atol", help="Absolute tolerance with --solver.")] = 1e-5,
    rtol: Annotated[float, typer.Option("--rtol", help="Relative tolerance with --solver.")] = 1e-5,
    step_size: Annotated[Optional[float], typer.Option("--step-size", help="Step of a fixed-grid --solver, in ODE time units.")] = None,
    batch_size: Annotated[int, typer.Option("--batch-size", min=1, help="Images per batch.")] = 64,
    max_images: Annotated[Optional[int], typer.Option("--max-images", min=1, help="Evaluate only the first N images.")] = None,
    convert: ConvertOption = False,
    seed: SeedOption = 0,
    device: DeviceOption = None,
    json_output: JsonOption = False,
    quiet: QuietOption = False,
    verbose: VerboseOption = False,
) -> None:
    """Report bits per dimension: mean, standard deviation, each level's share and the maps' share.

    The figure is the uniform-dequantization bound with noise from --seed, so runs repeat exactly.
    """
    setup_logging(verbose=verbose, quiet=quiet)
    with command_errors(verbose=verbose):
        images = read_paths_from_stdin(images)
        evaluation = evaluate_model(
            Path(model or default_model_dir()),
            data=data,
            images=images or None,
            split=split,
            data_dir=data_dir,
            image_size=image_size,
            convert=convert,
            trace=trace,
            solver=SolverConfig(solver, atol=atol, rtol=rtol, step_size=step_size) if solver else None,
            batch_size=batch_size,
            max_images=max_images,
            seed=seed,
            device=resolve_device(device or default_device()),
        )

    report = evaluation.report
    levels = [
        {"resolution": f"{h}x{w}", "bpd_share": share, "nfe": nfe}
        for (h, w), share, nfe in zip(report.sizes, report.level_bpd_mean, report.nfe_mean)
    ]
    if json_output:
        print_json(
            {
                "model": evaluation.model_dir,
                "data": evaluation.data,
                "split": evaluation.split,
                "images": report.count,
                "bpd": report.bpd_mean,
                "bpd_std": report.bpd_std,
                "levels": levels,
                "map_bpd_share": report.map_bpd_mean,
                "trace": evaluation.trace,
                "seed": evaluation.seed,
                "seconds": round(report.seconds, 3),
                "rows": report.rows,
            }
        )
        return

    console = output_console()
    if report.rows:
        rows = Table(title="bits per dimension per image")
        rows.add_column("image")
        rows.add_column("bits/dim", justify="right")
        for row in report.rows:
            rows.add_row(row["image"], f"{row['bpd']:.4f}")
        console.print(rows)

    table = Table(title=f"{evaluation.data} ({evaluation.split}): {report.count} images, {report.bpd_mean:.4f} ± {report.bpd_std:.4f} bits/dim")
    table.add_column("part")
    table.add_column("bits/dim share", justify="right")
    table.add_column("NFE per batch", justify="right")
    for level in levels:
        table.add_row(f"level {level['resolution']}", f"{level['bpd_share']:.4f}", f"{level['nfe']:.0f}")
    table.add_row("pyramid maps", f"{report.map_bpd_mean:.4f}", "")
    table.add_row("total", f"{report.bpd_mean:.4f}", "")
    console.print(table)
