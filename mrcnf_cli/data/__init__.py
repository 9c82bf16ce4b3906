"""Readers of image sets that keep the images as uint8 and never expand a whole set to float.

    from mrcnf_cli.data import load_dataset

    images = load_dataset("cifar10", split="test", data_dir="~/data")  # ImageSet
    images[0]  # uint8 tensor (3, 32, 32), values 0..255

Named sets are listed in DATASETS; any other value is a path. docs/data.md describes the files
each set expects, the conversion rules and the cache.
"""

from mrcnf_cli.data.imageset import ImageSet
from mrcnf_cli.data.loader import load_dataset
from mrcnf_cli.data.registry import DATASETS, DEFAULT_DATASET, DatasetReader

__all__ = ["DATASETS", "DEFAULT_DATASET", "DatasetReader", "ImageSet", "load_dataset"]
