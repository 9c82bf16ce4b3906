"""`mrcnf train`: build a multi-resolution stack and train its levels."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.table import Table

from mrcnf_cli.app import app
from mrcnf_cli.cnf import CNFConfig
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
    default_device,
    default_model_dir,
    print_json,
    setup_logging,
)
from mrcnf_cli.commands.progress import RichReporter
from mrcnf_cli.solvers import SolverConfig
from mrcnf_cli.training import TrainOptions
from mrcnf_cli.workflows import ModelOptions, parse_duration, parse_widths, resolve_device, train_stack

ARCHITECTURE = "Architecture of new levels"
OPTIMISATION = "Optimisation"
SOLVER = "ODE solver"


@app.command()
def train(
    res: Annotated[int, typer.Option("--res", min=1, help="Number of resolutions S in the stack.", rich_help_panel=ARCHITECTURE)] = 3,
    data: Annotated[str, typer.Option("--data", help="Data set name (cifar10, svhn, imagenet32, imagenet64, imagenet128, tinyimagenet, photos) or a path.")] = "photos",
    data_dir: DataDirOption = None,
    model: ModelOption = None,
    image_size: Annotated[Optional[int], typer.Option("--image-size", min=1, help="Box-downsample images to this size in pixels first (photos: crop size, default 32).")] = None,
    level: Annotated[Optional[str], typer.Option("--level", help="Train only the level of this resolution, for example 16x16.")] = None,
    steps: Annotated[Optional[int], typer.Option("--steps", min=1, help="Optimizer steps per level in total, counting resumed ones.", rich_help_panel=OPTIMISATION)] = 10000,
    epochs: Annotated[Optional[float], typer.Option("--epochs", min=0, help="Passes over the training images per level (stops at whichever budget comes first).", rich_help_panel=OPTIMISATION)] = None,
    max_time: Annotated[Optional[str], typer.Option("--max-time", help="Wall time for the whole command (seconds, or with s/m/h); each level gets the time left divided by the levels left.", rich_help_panel=OPTIMISATION)] = None,
    batch_size: Annotated[int, typer.Option("--batch-size", min=1, help="Training images per step.", rich_help_panel=OPTIMISATION)] = 64,
    lr: Annotated[float, typer.Option("--lr", min=0, help="Adam learning rate after warmup.", rich_help_panel=OPTIMISATION)] = 1e-3,
    warmup: Annotated[int, typer.Option("--warmup", min=0, help="Steps of linear learning-rate warmup.", rich_help_panel=OPTIMISATION)] = 1000,
    grad_clip: Annotated[float, typer.Option("--grad-clip", min=0, help="Gradient-norm clipping threshold.", rich_help_panel=OPTIMISATION)] = 100.0,
    kinetic: Annotated[float, typer.Option("--kinetic", min=0, help="Weight of the kinetic-energy regulariser (RNODE), per dimension.", rich_help_panel=OPTIMISATION)] = 0.01,
    jacobian: Annotated[float, typer.Option("--jacobian", min=0, help="Weight of the Jacobian Frobenius-norm regulariser (RNODE), per dimension.", rich_help_panel=OPTIMISATION)] = 0.01,
    validate_every: Annotated[int, typer.Option("--validate-every", min=1, help="Steps between validations and checkpoints.", rich_help_panel=OPTIMISATION)] = 500,
    validation_images: Annotated[int, typer.Option("--validation-images", min=1, help="Held-out images for validation BPD.", rich_help_panel=OPTIMISATION)] = 256,
    resume: Annotated[bool, typer.Option("--resume/--no-resume", help="Continue each level from its checkpoint when one exists.", rich_help_panel=OPTIMISATION)] = True,
    hidden: Annotated[str, typer.Option("--hidden", help="Hidden widths of each dynamics network, comma separated.", rich_help_panel=ARCHITECTURE)] = "64,64,64",
    blocks: Annotated[int, typer.Option("--blocks", min=1, help="CNF blocks per level.", rich_help_panel=ARCHITECTURE)] = 1,
    map: Annotated[str, typer.Option("--map", help="Pyramid map: mrcnf (volume preserving) or haar.", rich_help_panel=ARCHITECTURE)] = "mrcnf",
    logit: Annotated[bool, typer.Option("--logit/--no-logit", help="Logit preprocessing of every level's values.", rich_help_panel=ARCHITECTURE)] = True,
    alpha: Annotated[float, typer.Option("--alpha", min=0, max=0.5, help="Logit margin: values are squeezed into [alpha, 1 - alpha].", rich_help_panel=ARCHITECTURE)] = 0.05,
    multires_noise: Annotated[bool, typer.Option("--multires-noise/--no-multires-noise", help="Base variances from unit-variance noise at the finest level instead of N(0, I).", rich_help_panel=ARCHITECTURE)] = False,
    time_horizon: Annotated[float, typer.Option("--time-horizon", min=0, help="End time T of each ODE, in ODE time units.", rich_help_panel=ARCHITECTURE)] = 1.0,
    channels: Annotated[int, typer.Option("--channels", min=1, max=3, help="Image channels of the model: 3 (RGB) or 1 (grey).", rich_help_panel=ARCHITECTURE)] = 3,
    trace: Annotated[str, typer.Option("--trace", help="Divergence in training: hutchinson (one probe per solve) or exact.", rich_help_panel=SOLVER)] = "hutchinson",
    probe: Annotated[str, typer.Option("--probe", help="Hutchinson probe: gaussian or rademacher.", rich_help_panel=SOLVER)] = "gaussian",
    solver: Annotated[str, typer.Option("--solver", help="Training solver (torchdiffeq name).", rich_help_panel=SOLVER)] = "bosh3",
    atol: Annotated[float, typer.Option("--atol", help="Absolute tolerance of an adaptive training solver.", rich_help_panel=SOLVER)] = 1e-3,
    rtol: Annotated[float, typer.Option("--rtol", help="Relative tolerance of an adaptive training solver.", rich_help_panel=SOLVER)] = 1e-3,
    step_size: Annotated[Optional[float], typer.Option("--step-size", help="Step of a fixed-grid training solver, in ODE time units.", rich_help_panel=SOLVER)] = None,
    eval_solver: Annotated[str, typer.Option("--eval-solver", help="Solver for validation, evaluation and sampling.", rich_help_panel=SOLVER)] = "dopri5",
    eval_atol: Annotated[float, typer.Option("--eval-atol", help="Absolute tolerance of the evaluation solver.", rich_help_panel=SOLVER)] = 1e-5,
    eval_rtol: Annotated[float, typer.Option("--eval-rtol", help="Relative tolerance of the evaluation solver.", rich_help_panel=SOLVER)] = 1e-5,
    eval_step_size: Annotated[Optional[float], typer.Option("--eval-step-size", help="Step of a fixed-grid evaluation solver.", rich_help_panel=SOLVER)] = None,
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
        cnf = CNFConfig(
            hidden=parse_widths(hidden),
            time_horizon=time_horizon,
            trace=trace,
            probe=probe,
            train_solver=SolverConfig(solver, atol=atol, rtol=rtol, step_size=step_size),
            eval_solver=SolverConfig(eval_solver, atol=eval_atol, rtol=eval_rtol, step_size=eval_step_size),
        )
        architecture = ModelOptions(
            num_levels=res, map=map, cnf=cnf, num_blocks=blocks, logit=logit, alpha=alpha, multires_noise=multires_noise
        )
        options = TrainOptions(
            steps=steps,
            epochs=epochs,
            max_time=parse_duration(max_time) if max_time is not None else None,
            batch_size=batch_size,
            learning_rate=lr,
            warmup_steps=warmup,
            max_grad_norm=grad_clip,
            kinetic_weight=kinetic,
            jacobian_weight=jacobian,
            validate_every=validate_every,
            validation_images=validation_images,
            seed=seed,
            resume=resume,
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
            options=options,
            level=level,
            device=resolve_device(device or default_device()),
            reporter=RichReporter() if sys.stderr.isatty() and not quiet else None,
        )

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
    Console().print(table)
