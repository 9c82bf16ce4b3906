"""The named data sets: one registry that supplies both the readers and the command-line choices."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path

from mrcnf_cli.data import cifar10, imagenet128, imagenet_downsampled, photos, svhn, tinyimagenet
from mrcnf_cli.data.sources import Source

# (data_dir, split "train" or "test", image_size) -> the sources of that split.
FindSources = Callable[[Path, str, "int | None"], list[Source]]


@dataclass(frozen=True)
class DatasetReader:
    """A named data set.

    Attributes:
        name: the name passed as --data.
        description: one line on what the set is.
        expected_files: one line on which files the reader expects, and where.
        find_sources: callable (data_dir, split, image_size) returning the split's sources;
            split is "train" or "test".
    """

    name: str
    description: str
    expected_files: str
    find_sources: FindSources


def _ignore_image_size(find: Callable[[Path, str], list[Source]]) -> FindSources:
    def find_sources(data_dir: Path, split: str, image_size: int | None) -> list[Source]:
        return find(data_dir, split)

    return find_sources


def _downsampled_imagenet(side: int) -> DatasetReader:
    return DatasetReader(
        name=f"imagenet{side}",
        description=f"downsampled ImageNet, {side}x{side} RGB (1,281,167 train, 50,000 val as test)",
        expected_files=imagenet_downsampled.expected_files(side),
        find_sources=_ignore_image_size(partial(imagenet_downsampled.find_sources, side=side)),
    )


def _photos_find_sources(data_dir: Path, split: str, image_size: int | None) -> list[Source]:
    return photos.find_sources(data_dir, split, image_size=image_size)


DATASETS: dict[str, DatasetReader] = {
    reader.name: reader
    for reader in (
        DatasetReader(
            cifar10.NAME, cifar10.DESCRIPTION, cifar10.EXPECTED_FILES, _ignore_image_size(cifar10.find_sources)
        ),
        DatasetReader(svhn.NAME, svhn.DESCRIPTION, svhn.EXPECTED_FILES, _ignore_image_size(svhn.find_sources)),
        _downsampled_imagenet(32),
        _downsampled_imagenet(64),
        DatasetReader(
            imagenet128.NAME,
            imagenet128.DESCRIPTION,
            imagenet128.EXPECTED_FILES,
            _ignore_image_size(imagenet128.find_sources),
        ),
        DatasetReader(
            tinyimagenet.NAME,
            tinyimagenet.DESCRIPTION,
            tinyimagenet.EXPECTED_FILES,
            _ignore_image_size(tinyimagenet.find_sources),
        ),
        DatasetReader(photos.NAME, photos.DESCRIPTION, photos.EXPECTED_FILES, _photos_find_sources),
    )
}

DEFAULT_DATASET = photos.NAME
