"""Parsing and checking of values typed on the command line: resolutions, durations, widths, devices."""

from __future__ import annotations

import torch

from mrcnf_cli.errors import InputError


def parse_resolution(text: str) -> tuple[int, int]:
    """Parse "16x16" or "16" into (H, W); raise InputError naming the value otherwise."""
    parts = text.lower().split("x")
    try:
        values = [int(part) for part in parts]
    except ValueError:
        values = []
    if len(values) == 1:
        values = values * 2
    if len(values) != 2 or min(values) < 1:
        raise InputError(f"invalid resolution {text!r}; write it as HxW, for example 16x16")
    return values[0], values[1]


def parse_duration(text: str) -> float:
    """Parse a wall time such as "1200", "90s", "20m" or "1.5h" into seconds."""
    units = {"s": 1.0, "m": 60.0, "h": 3600.0}
    value, unit = (text[:-1], text[-1].lower()) if text and text[-1].lower() in units else (text, "s")
    try:
        seconds = float(value) * units[unit]
    except ValueError:
        seconds = float("nan")
    if not (seconds > 0 and seconds != float("inf")):
        raise InputError(f"invalid duration {text!r}; give a time above 0, in seconds or with s, m or h, for example 90 or 20m")
    return seconds


def parse_widths(text: str) -> tuple[int, ...]:
    """Parse hidden-layer widths such as "64,64,64"."""
    try:
        widths = tuple(int(part) for part in text.split(","))
    except ValueError:
        widths = ()
    if not widths or min(widths) < 1:
        raise InputError(f"invalid hidden widths {text!r}; give positive integers separated by commas, for example 64,64,64")
    return widths


def resolve_device(name: str) -> torch.device:
    """Turn "auto", "cpu", "cuda" or "cuda:N" into a device; raise InputError for an unusable one."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise InputError(f"invalid device {name!r}; use auto, cpu, cuda or cuda:N") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise InputError(f"device {name!r} requested but CUDA is not available on this machine; use --device cpu")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise InputError(f"device {name!r} does not exist; this machine has {torch.cuda.device_count()} CUDA devices")
    elif device.type != "cpu":
        raise InputError(f"unsupported device {name!r}; use auto, cpu, cuda or cuda:N")
    return device
