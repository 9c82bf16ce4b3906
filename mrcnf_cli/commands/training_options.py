"""Options that `train` and `extend` share: budgets, optimiser settings and the ODE solvers."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from mrcnf_cli.cnf import CNFConfig
from mrcnf_cli.commands.common import complete_solver, complete_trace, complete_probe
from mrcnf_cli.solvers import SolverConfig
from mrcnf_cli.training import TrainOptions
from mrcnf_cli.parsing import parse_duration

OPTIMISATION = "Optimisation"
SOLVER = "ODE solver"

Steps = Annotated[Optional[int], typer.Option("--steps", min=1, help="Optimizer steps per level in total, counting resumed ones.", rich_help_panel=OPTIMISATION)]
Epochs = Annotated[Optional[float], typer.Option("--epochs", help="Passes over the training images per level, above 0 (training stops at the first budget reached).", rich_help_panel=OPTIMISATION)]
MaxTime = Annotated[Optional[str], typer.Option("--max-time", help="Wall time for the whole command: seconds, or a number with s, m or h. Each level gets the time left divided by the levels left.", rich_help_panel=OPTIMISATION)]
BatchSize = Annotated[int, typer.Option("--batch-size", min=1, help="Training images per step and process (torchrun multiplies it by the number of processes).", rich_help_panel=OPTIMISATION)]
LearningRate = Annotated[float, typer.Option("--lr", help="Adam learning rate after warmup; above 0.", rich_help_panel=OPTIMISATION)]
Warmup = Annotated[int, typer.Option("--warmup", min=0, help="Steps of linear learning-rate warmup.", rich_help_panel=OPTIMISATION)]
GradClip = Annotated[float, typer.Option("--grad-clip", help="Gradient-norm clipping threshold; above 0.", rich_help_panel=OPTIMISATION)]
Kinetic = Annotated[float, typer.Option("--kinetic", min=0, help="Weight of the kinetic-energy regulariser (RNODE), per dimension.", rich_help_panel=OPTIMISATION)]
Jacobian = Annotated[float, typer.Option("--jacobian", min=0, help="Weight of the Jacobian Frobenius-norm regulariser (RNODE), per dimension.", rich_help_panel=OPTIMISATION)]
ValidateEvery = Annotated[int, typer.Option("--validate-every", min=1, help="Steps between validations and checkpoints.", rich_help_panel=OPTIMISATION)]
ValidationImages = Annotated[int, typer.Option("--validation-images", min=1, help="Held-out images for validation BPD.", rich_help_panel=OPTIMISATION)]
Resume = Annotated[bool, typer.Option("--resume/--no-resume", help="Continue each level from its checkpoint when one exists.", rich_help_panel=OPTIMISATION)]

Trace = Annotated[str, typer.Option("--trace", help="Divergence in training: hutchinson (one probe per solve) or exact.", rich_help_panel=SOLVER, autocompletion=complete_trace)]
Probe = Annotated[str, typer.Option("--probe", help="Hutchinson probe: gaussian or rademacher.", rich_help_panel=SOLVER, autocompletion=complete_probe)]
Solver = Annotated[str, typer.Option("--solver", help="Training solver, by torchdiffeq name (bosh3, dopri5, rk4, euler, ...).", rich_help_panel=SOLVER, autocompletion=complete_solver)]
Atol = Annotated[float, typer.Option("--atol", help="Absolute tolerance of an adaptive training solver.", rich_help_panel=SOLVER)]
Rtol = Annotated[float, typer.Option("--rtol", help="Relative tolerance of an adaptive training solver.", rich_help_panel=SOLVER)]
StepSize = Annotated[Optional[float], typer.Option("--step-size", help="Step of a fixed-grid training solver, in ODE time units.", rich_help_panel=SOLVER)]
EvalSolver = Annotated[str, typer.Option("--eval-solver", help="Solver for validation, evaluation and sampling.", rich_help_panel=SOLVER, autocompletion=complete_solver)]
EvalAtol = Annotated[float, typer.Option("--eval-atol", help="Absolute tolerance of the evaluation solver.", rich_help_panel=SOLVER)]
EvalRtol = Annotated[float, typer.Option("--eval-rtol", help="Relative tolerance of the evaluation solver.", rich_help_panel=SOLVER)]
Adjoint = Annotated[bool, typer.Option("--adjoint/--no-adjoint", help="Gradients by the adjoint method: memory that does not grow with the solver steps, at the cost of a backward solve.", rich_help_panel=SOLVER)]
EvalStepSize = Annotated[Optional[float], typer.Option("--eval-step-size", help="Step of a fixed-grid evaluation solver, in ODE time units.", rich_help_panel=SOLVER)]


def build_train_options(
    *, steps, epochs, max_time, batch_size, lr, warmup, grad_clip, kinetic, jacobian, validate_every, validation_images, seed, resume
) -> TrainOptions:
    """Collect the shared optimisation options into the core's TrainOptions."""
    return TrainOptions(
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


def build_cnf_config(
    *, hidden, time_horizon, trace, probe, solver, atol, rtol, step_size, eval_solver, eval_atol, eval_rtol, eval_step_size,
    adjoint=False,
) -> CNFConfig:
    """Collect the shared solver options into the core's CNFConfig."""
    return CNFConfig(
        hidden=hidden,
        time_horizon=time_horizon,
        trace=trace,
        probe=probe,
        train_solver=SolverConfig(solver, atol=atol, rtol=rtol, step_size=step_size),
        eval_solver=SolverConfig(eval_solver, atol=eval_atol, rtol=eval_rtol, step_size=eval_step_size),
        adjoint=adjoint,
    )
