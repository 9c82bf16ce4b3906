"""Multi-resolution continuous normalizing flows (MRCNF) for images.

The core modules import neither typer nor rich, so a notebook can use them directly::

    from mrcnf_cli import MultiResFlow, StackConfig
"""

from mrcnf_cli.errors import InputError, MrcnfError, RuntimeFailure
from mrcnf_cli.stack import MultiResFlow, StackConfig, StackLogProb

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
