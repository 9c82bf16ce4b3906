"""`mrcnf extend`: attach and train a finer level on a trained stack."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Optional

import typer

from mrcnf_cli.app import app
from mrcnf_cli.commands import training_options as options
from mrcnf_cli.commands.common import (
    complete_dataset,
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
    is_main_process,
    setup_logging,
)
from mrcnf_cli.commands.progress import RichReporter
from mrcnf_cli.commands.train import print_level_results
from mrcnf_cli.jobs.training import extend_stack
from mrcnf_cli.parsing import resolve_device


@app.command()
def extend(
    data: Annotated[str, typer.Option("--data", help="Images at twice the stack's finest resolution: a data set name or a path.", autocompletion=complete_dataset)],
    model: ModelOption = None,
    data_dir: DataDirOption = None,
    image_size: Annotated[Optional[int], typer.Option("--image-size", min=1, help="Box-downsample the images to this size in pixels first.")] = None,
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
    convert: ConvertOption = False,
    seed: SeedOption = 0,
    device: DeviceOption = None,
    json_output: JsonOption = False,
    quiet: QuietOption = False,
    verbose: VerboseOption = False,
) -> None:
    """Add a level at twice the finest resolution of a trained stack and train it.

    The new level copies the architecture and solvers of the current finest level and models the details of the new resolution given its 2x2-mean downsampling. Existing level files are not changed. Running the same command again resumes.
    """
    setup_logging(verbose=verbose, quiet=quiet)
    with command_errors(verbose=verbose):
        train_options = options.build_train_options(
            steps=steps, epochs=epochs, max_time=max_time, batch_size=batch_size, lr=lr, warmup=warmup,
            grad_clip=grad_clip, kinetic=kinetic, jacobian=jacobian, validate_every=validate_every,
            validation_images=validation_images, seed=seed, resume=resume,
        )
        model_dir = Path(model or default_model_dir())
        result = extend_stack(
            model_dir,
            data=data,
            data_dir=data_dir,
            image_size=image_size,
            convert=convert,
            options=train_options,
            device=resolve_device(device or default_device()),
            reporter=RichReporter() if sys.stderr.isatty() and not quiet else None,
        )

    if is_main_process():
        print_level_results(model_dir, [result], json_output=json_output)
