import json
import os
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

import mrcnf_cli.store as store
from mrcnf_cli import MultiResFlow
from mrcnf_cli.cnf import CNFConfig
from mrcnf_cli.errors import ModelFileError
from mrcnf_cli.store import Manifest, create_or_check_manifest, load_level, load_stack, save_level

from helpers import randomize


def write_stack(model_dir: Path, num_levels: int = 2, size: int = 8) -> MultiResFlow:
    stack = randomize(MultiResFlow.build(size, num_levels, cnf=CNFConfig(hidden=(4,))), std=0.1)
    create_or_check_manifest(model_dir, Manifest("mrcnf", 3, stack.sizes, {"data": "unit-test"}))
    for level in stack.levels:
        save_level(model_dir / store.level_file_name(level.config.size), level, {"steps": 7})
    return stack


def test_level_round_trip(tmp_path):
    stack = write_stack(tmp_path)
    level, info = load_level(tmp_path / "level-08x08.safetensors")

    assert level.config == stack.levels[1].config
    assert info == {"steps": 7}
    for name, tensor in stack.levels[1].state_dict().items():
        assert torch.equal(level.state_dict()[name], tensor)


def test_loaded_stack_gives_same_logp(tmp_path):
    stack = write_stack(tmp_path).eval()
    loaded = load_stack(tmp_path).stack
    images = torch.randint(0, 256, (2, 3, 8, 8), dtype=torch.uint8)
    noise = torch.rand(2, 3, 8, 8)
    with torch.no_grad():
        expected = stack.log_prob(images, noise=noise, generator=torch.Generator().manual_seed(0)).logp
        actual = loaded.log_prob(images, noise=noise, generator=torch.Generator().manual_seed(0)).logp
    assert torch.equal(expected, actual)


def test_manifest_lists_levels(tmp_path):
    write_stack(tmp_path, num_levels=3)
    values = json.loads((tmp_path / "stack.json").read_text())
    assert values["format_version"] == 1
    assert [level["file"] for level in values["levels"]] == [
        "level-02x02.safetensors", "level-04x04.safetensors", "level-08x08.safetensors"
    ]


def test_missing_directory_named(tmp_path):
    with pytest.raises(ModelFileError, match=f"model directory {tmp_path / 'nope'} does not exist"):
        load_stack(tmp_path / "nope")


def test_truncated_level_file_named(tmp_path):
    write_stack(tmp_path)
    path = tmp_path / "level-08x08.safetensors"
    path.write_bytes(path.read_bytes()[:-100])
    with pytest.raises(ModelFileError, match=r"level-08x08.safetensors is damaged or truncated"):
        load_stack(tmp_path)


def test_nan_tensor_named(tmp_path):
    write_stack(tmp_path)
    path = tmp_path / "level-04x04.safetensors"
    tensors = load_file(str(path))
    name = sorted(tensors)[0]
    tensors[name] = torch.full_like(tensors[name], float("nan"))
    from safetensors import safe_open

    with safe_open(str(path), "pt") as handle:
        metadata = handle.metadata()
    save_file(tensors, str(path), metadata=metadata)
    with pytest.raises(ModelFileError, match=rf"level-04x04.safetensors: tensor '{name}' contains NaN"):
        load_stack(tmp_path)


def test_missing_coarsest_file_named(tmp_path):
    write_stack(tmp_path)
    (tmp_path / "level-04x04.safetensors").unlink()
    with pytest.raises(ModelFileError, match=r"level file .*level-04x04.safetensors not found"):
        load_stack(tmp_path)


def test_missing_finer_file_gives_prefix(tmp_path):
    write_stack(tmp_path, num_levels=3)
    (tmp_path / "level-08x08.safetensors").unlink()
    assert load_stack(tmp_path).stack.sizes == [(2, 2), (4, 4)]


def test_invalid_manifest_named(tmp_path):
    write_stack(tmp_path)
    (tmp_path / "stack.json").write_text("{not json")
    with pytest.raises(ModelFileError, match=r"stack.json cannot be read as JSON"):
        load_stack(tmp_path)


def test_level_of_wrong_size_named(tmp_path):
    write_stack(tmp_path)
    os.replace(tmp_path / "level-04x04.safetensors", tmp_path / "level-08x08.safetensors")
    write_stack(tmp_path / "other")
    os.replace(tmp_path / "other" / "level-04x04.safetensors", tmp_path / "level-04x04.safetensors")
    with pytest.raises(ModelFileError, match=r"level-08x08.safetensors contains a level of size 4x4"):
        load_stack(tmp_path)


def test_conflicting_manifest_rejected(tmp_path):
    write_stack(tmp_path)
    with pytest.raises(ModelFileError, match="differs from the requested map haar"):
        create_or_check_manifest(tmp_path, Manifest("haar", 3, [(4, 4), (8, 8)]))


def test_failed_write_keeps_previous_file(tmp_path, monkeypatch):
    write_stack(tmp_path)
    path = tmp_path / "level-08x08.safetensors"
    before = path.read_bytes()

    def broken_save(tensors, filename, metadata=None):
        Path(filename).write_bytes(b"partial")
        raise OSError("disk full")

    monkeypatch.setattr(store, "save_file", broken_save)
    level, _ = load_level(path)
    with pytest.raises(OSError, match="disk full"):
        save_level(path, level, {})

    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")) == []


def test_saved_files_follow_umask(tmp_path):
    write_stack(tmp_path)
    umask = os.umask(0)
    os.umask(umask)
    mode = (tmp_path / "level-08x08.safetensors").stat().st_mode & 0o777
    assert mode == 0o666 & ~umask
