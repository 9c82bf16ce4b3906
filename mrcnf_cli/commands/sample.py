"""`mrcnf sample`: draw images from a trained stack."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from mrcnf_cli.app import app
from mrcnf_cli.commands.common import (
    DeviceOption,
    JsonOption,
    ModelOption,
    QuietOption,
    SeedOption,
    VerboseOption,
    command_errors,
    default_device,
    default_model_dir,
    output_console,
    print_json,
    setup_logging,
)
from mrcnf_cli.generate import parse_temperatures
from mrcnf_cli.jobs.generation import sample_model
from mrcnf_cli.parsing import resolve_device


@app.command()
def sample(
    out: Annotated[Path, typer.Option("--out", "-o", help="Output PNG file with --grid, or output folder with --no-grid.")],
    count: Annotated[int, typer.Option("-n", "--count", min=1, help="Number of images.")] = 16,
    model: ModelOption = None,
    temperature: Annotated[str, typer.Option("--temperature", "-t", help="Scale of the base noise: one value for every level, or one per level, coarse to fine (for example 1,0.9,0.8).")] = "1.0",
    resolution: Annotated[Optional[str], typer.Option("--resolution", help="Output resolution, one of the stack's levels (for example 16x16); default: the finest.")] = None,
    grid: Annotated[bool, typer.Option("--grid/--no-grid", help="Write one grid PNG, or one PNG per image into a folder.")] = True,
    batch_size: Annotated[int, typer.Option("--batch-size", min=1, help="Images per batch.")] = 64,
    seed: SeedOption = 0,
    device: DeviceOption = None,
    json_output: JsonOption = False,
    quiet: QuietOption = False,
    verbose: VerboseOption = False,
) -> None:
    """Sample images coarse to fine; the same --seed writes the same bytes."""
    setup_logging(verbose=verbose, quiet=quiet)
    with command_errors(verbose=verbose):
        job = sample_model(
            Path(model or default_model_dir()),
            out,
            count=count,
            temperature=parse_temperatures(temperature),
            resolution=resolution,
            grid=grid,
            seed=seed,
            batch_size=batch_size,
            device=resolve_device(device or default_device()),
        )

    levels = [{"resolution": f"{h}x{w}", "nfe": nfe} for (h, w), nfe in zip(job.sizes, job.nfe)]
    if json_output:
        print_json(
            {"files": job.files, "images": job.requested - job.non_finite, "non_finite": job.non_finite,
             "levels": levels, "seconds": round(job.seconds, 3)}
        )
        return
    summary = ", ".join(f"{level['resolution']} NFE {level['nfe']}" for level in levels)
    output_console().print(
        f"wrote {job.requested - job.non_finite} images to {', '.join(job.files[:1])}{' ...' if len(job.files) > 1 else ''} "
        f"in {job.seconds:.1f} s ({summary}); non-finite: {job.non_finite}"
    )
