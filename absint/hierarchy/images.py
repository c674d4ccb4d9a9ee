"""Image CSV files and the input normalisation of a network.

CSV (ERAN layout): one image per line, the integer label first, then the pixel values in ``layout``
order (HWC: pixel by pixel with the channels interleaved; CHW: channel planes). The network sees
x = (p / scale - mean_c) / std_c per channel c, in CHW order. Perturbations are L-inf balls of radius
eps in the scaled pixel space p / scale, clipped to ``clip`` there (default [0, 1]), then normalised,
so a per-channel std turns one eps into per-channel radii eps / std_c.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from enum import Enum
from pathlib import Path

import numpy as np

from ..box import Box
from ..errors import ShapeError

__all__ = ["Layout", "ImageFormat", "read_image_csv", "parse_eps"]


class Layout(Enum):
    """Order of the pixel values in a CSV line."""

    CHW = "CHW"
    HWC = "HWC"

    def to_chw(self, flat: np.ndarray, shape: tuple[int, int, int]) -> np.ndarray:
        """(n, C*H*W) values in this order -> (n, C, H, W)."""
        c, h, w = shape
        if self is Layout.HWC:
            return flat.reshape(-1, h, w, c).transpose(0, 3, 1, 2)
        return flat.reshape(-1, c, h, w)


@dataclass(frozen=True)
class ImageFormat:
    """How CSV pixel values map to network inputs (see the module docstring)."""

    input_shape: tuple[int, ...]
    scale: float = 1.0
    mean: tuple[float, ...] = (0.0,)
    std: tuple[float, ...] = (1.0,)
    layout: Layout = Layout.CHW
    clip: tuple[float, float] | None = (0.0, 1.0)

    def __post_init__(self):
        channels = self.channels
        for name in ("mean", "std"):
            v = getattr(self, name)
            if len(v) not in (1, channels):
                wanted = "1 value" if channels == 1 else f"1 or {channels} values (one per channel)"
                raise ShapeError(f"--{name} needs {wanted} for an input of shape {self.input_shape}, got {len(v)}")
        if not self.scale > 0 or any(not s > 0 for s in self.std):
            raise ValueError(f"scale and std must be positive, got scale {self.scale}, std {self.std}")

    @property
    def channels(self) -> int:
        return self.input_shape[0] if len(self.input_shape) == 3 else 1

    @property
    def size(self) -> int:
        return int(np.prod(self.input_shape))

    def _per_channel(self, v: tuple[float, ...]) -> np.ndarray:
        a = np.broadcast_to(np.asarray(v, np.float64), (self.channels,))
        return a.reshape(self.channels, 1, 1) if len(self.input_shape) == 3 else a[0]

    def pixels(self, values: np.ndarray) -> np.ndarray:
        """CSV values (n, size) -> scaled pixels p / scale of shape (n, *input_shape), channels first."""
        values = np.asarray(values, np.float64).reshape(-1, self.size) / self.scale
        if len(self.input_shape) == 3:
            return self.layout.to_chw(values, self.input_shape)
        return values.reshape((-1,) + tuple(self.input_shape))

    def normalise(self, p: np.ndarray) -> np.ndarray:
        """(p - mean) / std per channel, for scaled pixels of shape (..., *input_shape)."""
        return (p - self._per_channel(self.mean)) / self._per_channel(self.std)

    def inputs(self, values: np.ndarray) -> np.ndarray:
        """CSV values (n, size) -> network inputs (n, *input_shape)."""
        return self.normalise(self.pixels(values))

    def linf_box(self, p: np.ndarray, eps: float) -> Box:
        """The L-inf ball of radius ``eps`` around scaled pixels ``p`` (clipped), in the network's input space."""
        lo, hi = p - eps, p + eps
        if self.clip is not None:
            lo, hi = np.clip(lo, *self.clip), np.clip(hi, *self.clip)
        return Box(self.normalise(lo), self.normalise(hi))


def read_image_csv(path, n_values: int, limit: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(labels (n,), values (n, n_values)) of an image CSV; ``ValueError`` names the line of a bad one."""
    path = Path(path)
    labels, rows = [], []
    with open(path, newline="") as fh:
        for line_no, row in enumerate(csv.reader(fh), start=1):
            if not row or not "".join(row).strip():
                continue
            if limit is not None and len(rows) >= limit:
                break
            if len(row) != n_values + 1:
                raise ValueError(f"{path}:{line_no}: {len(row)} values, expected a label and {n_values} "
                                 f"pixel values (the network input size)")
            try:
                label = float(row[0])
                values = np.array([float(v) for v in row[1:]])
            except ValueError as exc:
                raise ValueError(f"{path}:{line_no}: not a number: {exc}") from None
            if label != int(label) or label < 0:
                raise ValueError(f"{path}:{line_no}: the label {row[0]!r} is not a class index")
            if not np.isfinite(values).all():
                raise ValueError(f"{path}:{line_no}: non-finite pixel value")
            labels.append(int(label))
            rows.append(values)
    if not rows:
        raise ValueError(f"{path}: no images")
    return np.array(labels, dtype=np.int64), np.array(rows)


def parse_eps(text: str) -> float:
    """A radius such as ``0.01``, ``2/255`` or ``8/255``."""
    try:
        if "/" in text:
            num, den = text.split("/", 1)
            value = float(num) / float(den)
        else:
            value = float(text)
    except (ValueError, ZeroDivisionError):
        raise ValueError(f"not a radius: {text!r} (use a number or a fraction such as 2/255)") from None
    if not value >= 0 or not np.isfinite(value):
        raise ValueError(f"the radius must be a finite number >= 0, got {text!r}")
    return value
