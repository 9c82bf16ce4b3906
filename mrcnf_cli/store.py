"""The stack directory on disk: ``stack.json``, one safetensors file per level, atomic writes.

Layout::

    DIR/stack.json                  format version, map, channels, levels coarse to fine
    DIR/level-08x08.safetensors     a level's weights; its metadata holds the level config
    DIR/runs/level-08x08/           training state for resume and metrics.jsonl

Every write goes to a temporary file in the target's directory and is then renamed with
``os.replace``, so a crash leaves the previous file intact. ``stack.json`` is updated under an
exclusive lock file, so jobs training different levels of one stack never lose an update.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from mrcnf_cli.errors import InputError, ModelFileError
from mrcnf_cli.level import Level, LevelConfig
from mrcnf_cli.stack import MultiResFlow, StackConfig

logger = logging.getLogger(__name__)

FORMAT_VERSION = 1
MANIFEST_NAME = "stack.json"
LOCK_NAME = ".stack.lock"


def level_file_name(size: tuple[int, int]) -> str:
    return f"level-{size[0]:02d}x{size[1]:02d}.safetensors"


def run_directory(model_dir: Path, size: tuple[int, int]) -> Path:
    """Return the folder holding a level's training state and metrics."""
    return Path(model_dir) / "runs" / f"level-{size[0]:02d}x{size[1]:02d}"


@dataclass
class Manifest:
    """The contents of ``stack.json``.

    Attributes:
        map: pyramid map name.
        channels: image channels.
        sizes: (H, W) of every level, coarse to fine, trained or not.
        data: name or path of the data the stack was trained on, and its image size.
    """

    map: str
    channels: int
    sizes: list[tuple[int, int]]
    data: dict = field(default_factory=dict)

    @property
    def config(self) -> StackConfig:
        return StackConfig(map=self.map, channels=self.channels)

    def to_dict(self) -> dict:
        return {
            "format_version": FORMAT_VERSION,
            "map": self.map,
            "channels": self.channels,
            "levels": [{"size": list(size), "file": level_file_name(size)} for size in self.sizes],
            "data": self.data,
        }

    @classmethod
    def from_dict(cls, values: dict, path: Path) -> Manifest:
        try:
            version = values["format_version"]
            if version != FORMAT_VERSION:
                raise ModelFileError(f"{path}: format version {version} is not supported; this mrcnf reads version {FORMAT_VERSION}")
            sizes = [tuple(int(side) for side in level["size"]) for level in values["levels"]]
            StackConfig(map=values["map"], channels=int(values["channels"]))
            manifest = cls(map=values["map"], channels=int(values["channels"]), sizes=sizes, data=values.get("data", {}))
        except (KeyError, TypeError, ValueError) as error:
            if isinstance(error, ModelFileError):
                raise
            raise ModelFileError(f"{path} is not a valid stack manifest ({error}); rebuild the stack with mrcnf train") from None
        return manifest


@contextlib.contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it onto ``path`` when the block succeeds.

    The temporary file gets the permissions a new file would get under the current umask
    (``mkstemp`` alone would create it readable by its owner only). On any error it is removed
    and ``path`` keeps its previous contents.
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        handle, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as error:
        raise InputError(f"cannot write {path}: {error.strerror or error}; choose a writable output path") from None
    os.close(handle)
    temporary = Path(name)
    try:
        yield temporary
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(temporary, 0o666 & ~umask)
        _replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise


def _replace(temporary: Path, path: Path) -> None:
    try:
        os.replace(temporary, path)
    except IsADirectoryError:
        raise InputError(f"cannot write {path}: it is a folder; give a file name") from None


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write a file through a temporary name in the same directory, then rename it into place."""
    with atomic_path(path) as temporary:
        with open(temporary, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())


def atomic_save_tensors(path: Path, tensors: dict[str, torch.Tensor], metadata: dict[str, str]) -> None:
    """Save tensors as safetensors through a temporary file and an atomic rename."""
    contiguous = {key: value.detach().contiguous().cpu() for key, value in tensors.items()}
    with atomic_path(path) as temporary:
        save_file(contiguous, str(temporary), metadata=metadata)


def atomic_write_json(path: Path, values: dict) -> None:
    atomic_write_bytes(path, (json.dumps(values, indent=2) + "\n").encode())


@contextlib.contextmanager
def manifest_lock(model_dir: Path) -> Iterator[None]:
    """Hold an exclusive lock on the stack directory while its manifest is read and rewritten."""
    model_dir = Path(model_dir)
    check_model_folder(model_dir)
    model_dir.mkdir(parents=True, exist_ok=True)
    with open(model_dir / LOCK_NAME, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def read_manifest(model_dir: Path) -> Manifest:
    """Read ``stack.json``; raise ModelFileError naming the file when it is missing or invalid."""
    path = Path(model_dir) / MANIFEST_NAME
    check_model_folder(Path(model_dir))
    if not Path(model_dir).is_dir():
        raise ModelFileError(f"model directory {model_dir} does not exist; train one with mrcnf train --model {model_dir}")
    if not path.is_file():
        raise ModelFileError(f"{path} not found; {model_dir} is not a stack directory (train one with mrcnf train)")
    try:
        values = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ModelFileError(f"{path} cannot be read as JSON ({error}); restore it or rebuild the stack") from None
    if not isinstance(values, dict):
        raise ModelFileError(f"{path} is not a valid stack manifest; rebuild the stack with mrcnf train")
    return Manifest.from_dict(values, path)


def write_manifest(model_dir: Path, manifest: Manifest) -> None:
    atomic_write_json(Path(model_dir) / MANIFEST_NAME, manifest.to_dict())


def create_or_check_manifest(model_dir: Path, manifest: Manifest) -> Manifest:
    """Write ``stack.json`` for a new stack, or check that an existing one agrees with ``manifest``.

    Raises:
        ModelFileError: the directory contains a stack with another map, channel count or levels.
    """
    with manifest_lock(model_dir):
        path = Path(model_dir) / MANIFEST_NAME
        if not path.exists():
            write_manifest(model_dir, manifest)
            return manifest

        existing = read_manifest(model_dir)
        if (existing.map, existing.channels) != (manifest.map, manifest.channels) or existing.sizes[: len(manifest.sizes)] != manifest.sizes:
            raise ModelFileError(
                f"{path} describes a stack with map {existing.map}, {existing.channels} channels and levels "
                f"{format_sizes(existing.sizes)}, which differs from the requested map {manifest.map}, "
                f"{manifest.channels} channels and levels {format_sizes(manifest.sizes)}; "
                "use another --model directory or matching options"
            )
        return existing


def add_level_to_manifest(model_dir: Path, size: tuple[int, int], data_info: dict | None = None) -> Manifest:
    """Append a finer level to ``stack.json`` under the lock, recording the data it trains on; return the new manifest."""
    with manifest_lock(model_dir):
        manifest = read_manifest(model_dir)
        changed = False
        if size not in manifest.sizes:
            manifest.sizes.append(tuple(size))
            changed = True
        if data_info is not None and manifest.data != data_info:
            manifest.data = data_info
            changed = True
        if changed:
            write_manifest(model_dir, manifest)
        return manifest


def format_sizes(sizes) -> str:
    return ", ".join(f"{height}x{width}" for height, width in sizes)


def save_level(path: Path, level: Level, info: dict) -> None:
    """Save a level's weights with its config and training info in the file's metadata."""
    metadata = {
        "format_version": str(FORMAT_VERSION),
        "config": json.dumps(level.config.to_dict()),
        "info": json.dumps(info),
    }
    atomic_save_tensors(path, level.state_dict(), metadata)


def read_level_file(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """Load a safetensors file's tensors and metadata; raise ModelFileError naming a damaged file."""
    path = Path(path)
    if not path.is_file():
        raise ModelFileError(f"level file {path} not found; train that level with mrcnf train --level")
    try:
        tensors = load_file(str(path))
        with open(path, "rb") as handle:
            header_length = int.from_bytes(handle.read(8), "little")
            header = json.loads(handle.read(header_length))
    except (SafetensorError, OSError, ValueError) as error:
        raise ModelFileError(f"level file {path} is damaged or truncated ({error}); retrain that level") from None
    return tensors, header.get("__metadata__", {}) or {}


def load_level(path: Path) -> tuple[Level, dict]:
    """Rebuild a level from its file, checking config, shapes, dtypes and finiteness.

    Returns:
        ``(level, info)``: the level in evaluation mode and its training info.
    """
    tensors, metadata = read_level_file(path)
    try:
        config = LevelConfig.from_dict(json.loads(metadata["config"]))
        info = json.loads(metadata.get("info", "{}"))
    except (KeyError, TypeError, ValueError) as error:
        raise ModelFileError(f"level file {path} has no valid level config in its metadata ({error}); retrain that level") from None

    level = Level(config)
    expected = level.state_dict()
    for name, reference in expected.items():
        if name not in tensors:
            raise ModelFileError(f"level file {path} lacks tensor {name!r}; retrain that level")
        tensor = tensors[name]
        if tensor.shape != reference.shape or not tensor.dtype.is_floating_point:
            raise ModelFileError(
                f"level file {path}: tensor {name!r} has shape {tuple(tensor.shape)} and dtype {tensor.dtype}, "
                f"expected {tuple(reference.shape)} floating point; retrain that level"
            )
        if not torch.isfinite(tensor).all():
            raise ModelFileError(f"level file {path}: tensor {name!r} contains NaN or infinite values; retrain that level")
    unexpected = sorted(set(tensors) - set(expected))
    if unexpected:
        raise ModelFileError(f"level file {path} contains unexpected tensors {unexpected}; it belongs to another model")

    level.load_state_dict({name: tensors[name].to(expected[name].dtype) for name in expected})
    return level.eval(), info


@dataclass
class LoadedStack:
    """A stack read from disk with what its files record."""

    stack: MultiResFlow
    manifest: Manifest
    infos: list[dict]
    paths: list[Path]


def load_stack(model_dir: Path, *, device: torch.device | str = "cpu", trained_only: bool = True) -> LoadedStack:
    """Load every trained level of a stack directory, coarse to fine.

    Args:
        model_dir: the stack directory.
        device: where to put the parameters.
        trained_only: when True, stop at the first level without a file (levels are usable only
            as a prefix, coarse to fine); raise when even the coarsest level is missing.

    Raises:
        ModelFileError: naming the file at fault.
    """
    model_dir = Path(model_dir)
    manifest = read_manifest(model_dir)

    levels, infos, paths = [], [], []
    for size in manifest.sizes:
        path = model_dir / level_file_name(size)
        if not path.exists() and trained_only and levels:
            logger.warning("level %s has no file yet; using the %d trained levels", format_sizes([size]), len(levels))
            break
        level, info = load_level(path)
        if tuple(level.config.size) != tuple(size):
            raise ModelFileError(f"level file {path} contains a level of size {format_sizes([level.config.size])}, not {format_sizes([size])}")
        levels.append(level)
        infos.append(info)
        paths.append(path)

    try:
        stack = MultiResFlow(manifest.config, levels)
    except ModelFileError:
        raise
    except ValueError as error:
        raise ModelFileError(f"the levels in {model_dir} do not form one stack: {error}") from None
    return LoadedStack(stack.to(device).eval(), manifest, infos, paths)


def describe_stack(model_dir: Path) -> dict:
    """Describe a stack directory: every planned level, its file and whether it loads.

    Unlike :func:`load_stack` this never raises for a damaged level file; it reports the problem
    in that level's ``status``. A missing or invalid ``stack.json`` still raises ModelFileError.

    Returns:
        A JSON-ready dict: map, channels, training data, complete (every level loads and the
        levels chain), and one entry per level, coarse to fine.
    """
    model_dir = Path(model_dir)
    manifest = read_manifest(model_dir)

    levels = []
    for size in manifest.sizes:
        path = model_dir / level_file_name(size)
        entry = {"resolution": format_sizes([size]), "file": path.name, "file_bytes": path.stat().st_size if path.exists() else None}
        try:
            level, info = load_level(path)
        except ModelFileError as error:
            entry["status"] = "missing" if not path.exists() else f"invalid: {error}"
            levels.append(entry)
            continue
        if tuple(level.config.size) != tuple(size):
            entry["status"] = f"invalid: contains a level of size {format_sizes([level.config.size])}"
        else:
            entry["status"] = "ok"
        config = level.config
        entry.update(
            {
                "conditional": config.conditional,
                "parameters": sum(parameter.numel() for parameter in level.parameters()),
                "blocks": config.num_blocks,
                "hidden": list(config.cnf.hidden),
                "logit": config.logit,
                "alpha": config.alpha if config.logit else None,
                "base_std": config.base_std,
                "train_solver": config.cnf.train_solver.to_dict(),
                "eval_solver": config.cnf.eval_solver.to_dict(),
                "data": info.get("data"),
                "steps": info.get("steps"),
                "validation_bpd": info.get("validation_bpd"),
            }
        )
        levels.append(entry)

    return {
        "model": str(model_dir),
        "map": manifest.map,
        "channels": manifest.channels,
        "data": manifest.data,
        "complete": all(entry["status"] == "ok" for entry in levels),
        "levels": levels,
    }


def check_writable(path: Path, *, folder: bool = False) -> None:
    """Raise InputError unless ``path`` can be written as a file (or created as a folder).

    Checked before long work starts, so that a bad output path fails at once and nothing is
    written. Missing parent folders are fine: they are created when the output is written.
    """
    path = Path(path)
    kind = "folder" if folder else "file"
    if path.exists() and path.is_dir() != folder:
        raise InputError(f"cannot write output {kind} {path}: a {'file' if folder else 'folder'} of that name exists; choose another path")

    ancestor = path.parent
    while not ancestor.exists():
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        raise InputError(f"cannot write {path}: {ancestor} is a file, not a folder; choose another path")
    if not os.access(ancestor, os.W_OK | os.X_OK):
        raise InputError(f"cannot write {path}: no permission to write in {ancestor}; choose another path")


def check_model_folder(model_dir: Path) -> None:
    """Raise ModelFileError when the model path, or a folder above it, is a file."""
    for folder in (model_dir, *model_dir.parents):
        if folder.exists():
            if not folder.is_dir():
                raise ModelFileError(f"model path {model_dir}: {folder} is a file, not a folder; choose another --model")
            return


def check_suffix(path: Path, suffix: str, option: str) -> None:
    """Raise InputError unless an output file name ends with ``suffix``, so no file is written in the wrong format."""
    if Path(path).suffix.lower() != suffix:
        raise InputError(f"{option} {path} must name a {suffix} file; for example {Path(path).with_suffix(suffix)}")
