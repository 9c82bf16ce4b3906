"""Multi-resolution continuous normalizing flows (MRCNF) for images.

The core modules import neither typer nor rich, so a notebook can use them directly::

    from mrcnf_cli import MultiResFlow, StackConfig

The model classes load on first use, so that starting the command line imports nothing heavy
before it can handle Ctrl-C.
"""

from mrcnf_cli.errors import InputError, MrcnfError, RuntimeFailure

__version__ = "0.1.0"

__all__ = [
    "InputError",
    "MrcnfError",
    "MultiResFlow",
    "RuntimeFailure",
    "StackConfig",
    "StackLogProb",
    "__version__",
]

_MODEL_CLASSES = ("MultiResFlow", "StackConfig", "StackLogProb")


def __getattr__(name: str):
    if name in _MODEL_CLASSES:
        from mrcnf_cli import stack

        return getattr(stack, name)
    raise AttributeError(f"module 'mrcnf_cli' has no attribute {name!r}")
