"""`mrcnf superres`: generate finer versions of real low-resolution images."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from mrcnf_cli.app import app
from mrcnf_cli.commands.common import (
    ConvertOption,
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
    read_paths_from_stdin,
    setup_logging,
)
from mrcnf_cli.generate import parse_temperatures
from mrcnf_cli.jobs.generation import superres_model
from mrcnf_cli.parsing import resolve_device


@app.command()
def superres(
    images: Annotated[list[Path], typer.Argument(help="Low-resolution image files (or high-resolution ones with --from-high); - reads one path per line from stdin.", show_default=False)],
    out: Annotated[Path, typer.Option("--out", "-o", help="Output folder; each input gets files NAME-1.png ... NAME-K.png.")] = Path("superres"),
    model: ModelOption = None,
    to: Annotated[Optional[str], typer.Option("--to", help="Target resolution, a finer level of the stack (for example 64x64); default: the finest.")] = None,
    samples: Annotated[int, typer.Option("--samples", "-k", min=1, help="Versions generated per input image.")] = 1,
    temperature: Annotated[str, typer.Option("--temperature", "-t", help="Scale of the base noise: one value, or one per generated level, coarse to fine.")] = "1.0",
    from_high: Annotated[Optional[str], typer.Option("--from-high", help="Treat the inputs as high-resolution ground truth and first reduce them to this resolution by exact 2x2 means (for example 16x16).")] = None,
    compare: Annotated[Optional[Path], typer.Option("--compare", help="Also write a PNG figure with rows of ground truth (with --from-high), input and samples.")] = None,
    convert: ConvertOption = False,
    seed: SeedOption = 0,
    device: DeviceOption = None,
    json_output: JsonOption = False,
    quiet: QuietOption = False,
    verbose: VerboseOption = False,
) -> None:
    """Super-resolve images level by level, conditioning each level on the image from the level above.

    The inputs are never resampled: a 2x2 block mean of every output, before rounding to 8 bits, equals the input pixel's value (k + 0.5) / 256.
    """
    setup_logging(verbose=verbose, quiet=quiet)
    with command_errors(verbose=verbose):
        images = read_paths_from_stdin(images)
        job = superres_model(
            Path(model or default_model_dir()),
            images,
            out,
            to=to,
            samples=samples,
            temperature=parse_temperatures(temperature),
            seed=seed,
            from_high=from_high,
            compare=compare,
            convert=convert,
            device=resolve_device(device or default_device()),
        )

    if json_output:
        print_json(
            {
                "input_resolution": f"{job.input_size[0]}x{job.input_size[1]}",
                "output_resolution": f"{job.output_size[0]}x{job.output_size[1]}",
                "outputs": [{"input": name, "files": files} for name, files in zip(job.inputs, job.files)],
                "non_finite": job.non_finite,
                "nfe": job.nfe,
                "figure": job.figure,
                "seconds": round(job.seconds, 3),
            }
        )
        return
    written = sum(len(files) for files in job.files)
    output_console().print(
        f"wrote {written} images of {job.output_size[0]}x{job.output_size[1]} from {len(job.inputs)} inputs of "
        f"{job.input_size[0]}x{job.input_size[1]} into {out} in {job.seconds:.1f} s (NFE per level {job.nfe}); "
        f"non-finite: {job.non_finite}" + (f"; figure {job.figure}" if job.figure else "")
    )
