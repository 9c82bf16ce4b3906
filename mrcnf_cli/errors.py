"""Domain errors of mrcnf and the process exit codes the command line maps them to.

Every message names the value at fault and what to pass instead. The command layer prints the
message as one line on stderr and exits with the error's ``exit_code``.
"""

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130


class MrcnfError(Exception):
    """Base class of every error that mrcnf raises on purpose."""

    exit_code = EXIT_FAILURE


class InputError(MrcnfError, ValueError):
    """Bad usage or bad input: an invalid option value, image, data set or model file."""

    exit_code = EXIT_USAGE


class UnknownNameError(InputError, KeyError):
    """A name that is not in a registry (solver, pyramid map, data set, codec)."""

    def __init__(self, kind: str, name: str, choices):
        self.kind = kind
        self.name = name
        self.choices = sorted(choices)
        super().__init__(f"unknown {kind} {name!r}; choose one of: {', '.join(self.choices)}")

    def __str__(self) -> str:
        # KeyError quotes its argument; show the plain message instead.
        return self.args[0]


class ImageSizeError(InputError):
    """An image whose height or width does not fit the model."""


class ModelFileError(InputError):
    """A stack directory or level file that is missing, damaged or inconsistent."""


class DataError(InputError):
    """A data set that is missing, empty, or contains images the model cannot take."""


class RuntimeFailure(MrcnfError, RuntimeError):
    """A failure while running: a solver that did not converge, non-finite values, out of memory."""

    exit_code = EXIT_FAILURE


class NonFiniteError(RuntimeFailure):
    """A computation produced NaN or infinite values."""


class SolverError(RuntimeFailure):
    """An ODE solve that did not finish within its step limit."""
