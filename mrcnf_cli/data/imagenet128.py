"""ImageNet at 128x128: a folder of 128x128 image files, read recursively.

The folder is DATA_DIR/imagenet128/ or another name in FOLDERS; the data folder itself is not
searched, because it usually contains other sets too.

The folder's ``train/`` and ``test/`` (or ``val/``) subfolders are the splits; without them every
10th file in sorted order is a test image (`mrcnf_cli.data.folders`).
"""

from __future__ import annotations

from pathlib import Path

from mrcnf_cli.data.folders import folder_sources
from mrcnf_cli.data.locate import find_folder
from mrcnf_cli.data.sources import Source

NAME = "imagenet128"
DESCRIPTION = "ImageNet photographs at 128x128, from a folder of image files"
SIDE = 128
FOLDERS = ("imagenet128", "imagenet-128", "imagenet_128", "imagenet-sample-128")
EXPECTED_FILES = (
    "128x128 image files (png, jpg, ...) in DATA_DIR/imagenet128/, optionally in train/ and test/ subfolders"
)


def find_sources(data_dir: Path, split: str) -> list[Source]:
    """Find the image files of `split` ("train" or "test") in the imagenet128 folder under `data_dir`."""
    folder = find_folder(
        data_dir,
        FOLDERS,
        ".",
        dataset=NAME,
        split=split,
        expected="128x128 image files",
        include_data_dir=False,
    )
    return folder_sources(folder, split, label=NAME, expected_size=(SIDE, SIDE))
