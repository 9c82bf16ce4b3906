"""`mrcnf train`: build a multi-resolution stack and train its levels."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.table import Table

from mrcnf_cli.app import app
from mrcnf_cli.commands import training_options as options
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
    complete_map,
    default_device,
    default_model_dir,
    is_main_process,
    output_console,
    print_json,
    setup_logging,
)
from mrcnf_cli.commands.progress import RichReporter
from mrcnf_cli.jobs.training import ModelOptions, train_stack
from mrcnf_cli.parsing import parse_widths, resolve_device
from mrcnf_cli.training import LevelResult

ARCHITECTURE = "Architecture of new levels"


@app.command()
def train(
    res: Annotated[int, typer.Option("--res", min=1, help="Number of resolutions S in the stack.", rich_help_panel=ARCHITECTURE)] = 3,
    data: Annotated[str, typer.Option("--data", help="Data set name (cifar10, svhn, imagenet32, imagenet64, imagenet128, tinyimagenet, photos) or a path.", autocompletion=complete_dataset)] = "photos",
    data_dir: DataDirOption = None,
    model: ModelOption = None,
    image_size: Annotated[Optional[int], typer.Option("--image-size", min=1, help="Box-downsample images to this size in pixels first (photos: the crop size, default 32).")] = None,
    level: Annotated[Optional[str], typer.Option("--level", help="Train only the level of this resolution, for example 16x16.")] = None,
    steps: options.Steps = 10000,
    epochs: options.Epochs = None,
    max_time: options.MaxTime = None,
    batch_size: options.BatchSize = 64,
    lr: options.LearningRate = 1e-3,
    warmup: options.Warmup = 1000,
    grad_clip: options.GradClip = 100.0,
    kinetic: options.Kinetic = 0.01,
    jacobian: options.Jacobian = 0.01,
    validate_every: options.ValidateEvery = 500,
    validation_images: options.ValidationImages = 256,
    resume: options.Resume = True,
    hidden: Annotated[str, typer.Option("--hidden", help="Hidden widths of each dynamics network, comma separated.", rich_help_panel=ARCHITECTURE)] = "64,64,64",
    blocks: Annotated[int, typer.Option("--blocks", min=1, help="CNF blocks per level.", rich_help_panel=ARCHITECTURE)] = 1,
    map: Annotated[str, typer.Option("--map", help="Pyramid map: mrcnf (volume preserving) or haar.", rich_help_panel=ARCHITECTURE, autocompletion=complete_map)] = "mrcnf",
    logit: Annotated[bool, typer.Option("--logit/--no-logit", help="Logit preprocessing of every level's values.", rich_help_panel=ARCHITECTURE)] = True,
    alpha: Annotated[float, typer.Option("--alpha", min=0, max=0.5, help="Logit margin: values are squeezed between alpha and 1 - alpha.", rich_help_panel=ARCHITECTURE)] = 0.05,
    multires_noise: Annotated[bool, typer.Option("--multires-noise/--no-multires-noise", help="Base variances implied by unit-variance noise at the finest level, instead of N(0, I).", rich_help_panel=ARCHITECTURE)] = False,
    time_horizon: Annotated[float, typer.Option("--time-horizon", help="End time T of each ODE, in ODE time units; above 0.", rich_help_panel=ARCHITECTURE)] = 1.0,
    channels: Annotated[int, typer.Option("--channels", min=1, max=3, help="Image channels of the model: 3 (RGB) or 1 (grey).", rich_help_panel=ARCHITECTURE)] = 3,
    trace: options.Trace = "hutchinson",
    probe: options.Probe = "gaussian",
    solver: options.Solver = "bosh3",
    atol: options.Atol = 1e-3,
    rtol: options.Rtol = 1e-3,
    step_size: options.StepSize = None,
    eval_solver: options.EvalSolver = "dopri5",
    eval_atol: options.EvalAtol = 1e-5,
    eval_rtol: options.EvalRtol = 1e-5,
    eval_step_size: options.EvalStepSize = None,
    adjoint: options.Adjoint = False,
    convert: ConvertOption = False,
    seed: SeedOption = 0,
    device: DeviceOption = None,
    json_output: JsonOption = False,
    quiet: QuietOption = False,
    verbose: VerboseOption = False,
) -> None:
    """Train a multi-resolution stack, coarse to fine, one level at a time.

    Each level is saved as DIR/level-HxW.safetensors (the best by validation BPD); training
    state for resume and metrics.jsonl live under DIR/runs/. Running the same command again
    continues where it stopped.
    """
    setup_logging(verbose=verbose, quiet=quiet)
    with command_errors(verbose=verbose):
        cnf = options.build_cnf_config(
            hidden=parse_widths(hidden), time_horizon=time_horizon, trace=trace, probe=probe,
            solver=solver, atol=atol, rtol=rtol, step_size=step_size,
            eval_solver=eval_solver, eval_atol=eval_atol, eval_rtol=eval_rtol, eval_step_size=eval_step_size,
            adjoint=adjoint,
        )
        architecture = ModelOptions(
            num_levels=res, map=map, cnf=cnf, num_blocks=blocks, logit=logit, alpha=alpha, multires_noise=multires_noise
        )
        train_options = options.build_train_options(
            steps=steps, epochs=epochs, max_time=max_time, batch_size=batch_size, lr=lr, warmup=warmup,
            grad_clip=grad_clip, kinetic=kinetic, jacobian=jacobian, validate_every=validate_every,
            validation_images=validation_images, seed=seed, resume=resume,
        )
        model_dir = Path(model or default_model_dir())
        results = train_stack(
            model_dir,
            data=data,
            data_dir=data_dir,
            image_size=image_size,
            convert=convert,
            channels=channels,
            model=architecture,
            options=train_options,
            level=level,
            device=resolve_device(device or default_device()),
            reporter=RichReporter() if sys.stderr.isatty() and not quiet else None,
        )

    if is_main_process():
        print_level_results(model_dir, results, json_output=json_output)


def print_level_results(model_dir: Path, results: list[LevelResult], *, json_output: bool) -> None:
    """Print what each trained level did, as a table or one JSON document."""
    rows = [
        {
            "level": result.level,
            "steps": result.steps,
            "skipped_steps": result.skipped_steps,
            "validation_bpd": result.best_validation_bpd,
            "seconds": round(result.seconds, 1),
            "stopped_by": result.stopped_by,
        }
        for result in results
    ]
    if json_output:
        print_json({"model": str(model_dir), "levels": rows})
        return

    table = Table(title=f"trained {model_dir}")
    for column in ("level", "steps", "skipped", "validation bits/dim (level variables)", "seconds", "stopped by"):
        table.add_column(column)
    for row in rows:
        bpd = "-" if row["validation_bpd"] is None else f"{row['validation_bpd']:.4f}"
        table.add_row(row["level"], str(row["steps"]), str(row["skipped_steps"]), bpd, str(row["seconds"]), row["stopped_by"])
    output_console().print(table)
