"""ImageSet: a torch Dataset over a uint8 array of images (N, C, H, W)."""

from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import Dataset


class ImageSet(Dataset):
    """Images kept as uint8, each returned as a uint8 tensor (C, H, W) with values 0..255.

    Attributes:
        array: uint8 array (N, C, H, W); a read-only np.memmap when the set comes from the cache.
        name: the data set name or the path it was loaded from.
        split: "train", "test" or "all".
        source: where the images were read, for logs and reports.
        channels: C, 1 or 3.
        size: (H, W).
    """

    def __init__(self, array: np.ndarray, *, name: str, split: str, source: str = ""):
        if array.dtype != np.uint8 or array.ndim != 4:
            raise ValueError(
                f"ImageSet needs a uint8 array (N, C, H, W), got {array.dtype} of shape {array.shape}"
            )

        self.array = array
        self.name = name
        self.split = split
        self.source = source
        self.channels: int = array.shape[1]
        self.size: tuple[int, int] = (array.shape[2], array.shape[3])

    def __len__(self) -> int:
        return len(self.array)

    def __getitem__(self, index: int) -> torch.Tensor:
        # A copy, because torch cannot share a read-only memmap and a view would pin the whole array.
        return torch.from_numpy(np.array(self.array[index], dtype=np.uint8, copy=True))

    def __getstate__(self) -> dict[str, object]:
        # Pickling a memmap copies all its data; DataLoader workers started by "spawn" get the
        # cache file's path instead and map it again.
        state = self.__dict__.copy()
        if isinstance(self.array, np.memmap) and self.array.filename is not None:
            state["array"] = None
            state["memmap_path"] = str(self.array.filename)
        return state

    def __setstate__(self, state: dict[str, object]) -> None:
        memmap_path = state.pop("memmap_path", None)
        self.__dict__.update(state)
        if memmap_path is not None:
            self.array = np.load(memmap_path, mmap_mode="r", allow_pickle=False)

    def __repr__(self) -> str:
        return (
            f"ImageSet(name={self.name!r}, split={self.split!r}, images={len(self)}, "
            f"channels={self.channels}, size={self.size})"
        )
