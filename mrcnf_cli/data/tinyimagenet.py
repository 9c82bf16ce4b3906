"""Tiny ImageNet (200 classes, 64x64 JPEG) in the layout of its release archive.

- train: ``tiny-imagenet-200/train/<wnid>/images/*.JPEG``, read class by class in sorted order;
- test: ``tiny-imagenet-200/val/images/*.JPEG``, in the order ``val/val_annotations.txt`` lists
  them (its first tab-separated column is the file name).

The release's ``test/`` folder has no labels and is not read. Some images are greyscale JPEGs
(mode L); a 3-channel model gets them with the grey value copied to R, G and B.
"""

from __future__ import annotations

from pathlib import Path

from mrcnf_cli.data.locate import find_folder
from mrcnf_cli.data.sources import FileSource, Source
from mrcnf_cli.errors import DataError

NAME = "tinyimagenet"
DESCRIPTION = "Tiny ImageNet, 64x64 JPEG photographs in 200 classes (100,000 train, 10,000 val as test)"
SIDE = 64
FOLDERS = ("tiny-imagenet-200", "tinyimagenet/tiny-imagenet-200", "tinyimagenet", "tiny-imagenet")
EXPECTED_FILES = (
    "train/<wnid>/images/*.JPEG (train) and val/images/*.JPEG with val/val_annotations.txt (test) "
    "in DATA_DIR/tiny-imagenet-200/"
)
ANNOTATIONS = "val/val_annotations.txt"


def find_sources(data_dir: Path, split: str) -> list[Source]:
    """Find the image files of `split` ("train" or "test") of Tiny ImageNet under `data_dir`."""
    if split == "train":
        expected = "train/<wnid>/images/*.JPEG"
        root = find_folder(data_dir, FOLDERS, "train", dataset=NAME, split=split, expected=expected)
        files = _train_files(root)
    else:
        expected = f"val/images/*.JPEG and {ANNOTATIONS}"
        root = find_folder(data_dir, FOLDERS, ANNOTATIONS, dataset=NAME, split=split, expected=expected)
        files = _val_files(root)

    if not files:
        raise DataError(
            f"{NAME} {split} split in {root} contains no JPEG files; pass the folder of the Tiny ImageNet release"
        )

    description = f"{NAME} {split} split in {root}"
    return [FileSource(description=description, files=tuple(files), expected_size=(SIDE, SIDE))]


def _train_files(root: Path) -> list[Path]:
    files: list[Path] = []
    for class_folder in sorted(path for path in (root / "train").iterdir() if path.is_dir()):
        images = class_folder / "images"
        if not images.is_dir():
            raise DataError(
                f"{NAME} class folder {class_folder} has no images/ subfolder; pass the Tiny ImageNet release layout"
            )
        jpegs = [path for path in images.iterdir() if path.suffix.lower() == ".jpeg" and not path.name.startswith(".")]
        files.extend(sorted(jpegs))
    return files


def _val_files(root: Path) -> list[Path]:
    annotations = root / ANNOTATIONS
    files: list[Path] = []
    for line_number, line in enumerate(annotations.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue

        path = root / "val" / "images" / line.split("\t")[0].strip()
        if not path.is_file():
            raise DataError(
                f"{annotations} line {line_number} names {path.name}, which is not in {path.parent}; "
                "restore that file"
            )
        files.append(path)
    return files
