"""Out-of-distribution image sets made from in-distribution images (grey levels in [0, 1]).

Every generator maps (images (n, H, W), rng) -> (n, H, W) in [0, 1]:
uniform noise; Gaussian blobs (a few bumps exp(-||p - c||^2 / (2 s^2)), peak-normalised);
inverted images 1 - x; images rotated by 90 degrees; patches of scikit-learn's bundled photographs
(``sklearn.datasets.load_sample_images``, needs scikit-learn and Pillow) reduced to H x W by
block averaging.
"""

from __future__ import annotations

from typing import Callable

import numpy as np

__all__ = ["OOD_SETS", "uniform_noise", "gaussian_blobs", "inverted", "rotated", "photo_patches",
           "make_ood", "DEFAULT_OOD"]

Generator = Callable[[np.ndarray, np.random.Generator], np.ndarray]


def uniform_noise(images: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Pixels i.i.d. uniform on [0, 1]."""
    return rng.random(images.shape)


def gaussian_blobs(images: np.ndarray, rng: np.random.Generator, max_blobs: int = 4) -> np.ndarray:
    """1 to ``max_blobs`` Gaussian bumps per image, centres uniform, widths 8-30 % of the side, max 1."""
    n, h, w = images.shape
    rows, cols = np.mgrid[0:h, 0:w]
    out = np.zeros((n, h, w))
    for i in range(n):
        for _ in range(rng.integers(1, max_blobs + 1)):
            cy, cx = rng.uniform(0, h - 1), rng.uniform(0, w - 1)
            s = rng.uniform(0.08, 0.3) * max(h, w)
            out[i] += rng.uniform(0.3, 1.0) * np.exp(-((rows - cy) ** 2 + (cols - cx) ** 2) / (2 * s * s))
        out[i] /= out[i].max()
    return out


def inverted(images: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """1 - x: dark strokes on a bright background."""
    return 1.0 - images


def rotated(images: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Each image turned by 90 degrees (exact pixel permutation)."""
    return np.ascontiguousarray(np.rot90(images, k=1, axes=(1, 2)))


def _photos() -> list[np.ndarray]:
    try:
        from sklearn.datasets import load_sample_images
        data = load_sample_images()
    except ImportError as exc:
        raise ImportError("the 'photos' OoD set needs scikit-learn and Pillow (pip install absint[dev]): "
                          f"{exc}") from None
    return [img.astype(np.float64).mean(axis=2) / 255.0 for img in data.images]


def photo_patches(images: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Square crops (f H x f W, f = 1..8) of the grey sample photographs, block-averaged to H x W."""
    n, h, w = images.shape
    photos = _photos()
    out = np.empty((n, h, w))
    for i in range(n):
        photo = photos[rng.integers(len(photos))]
        f = int(rng.integers(1, 9))
        f = max(1, min(f, photo.shape[0] // h, photo.shape[1] // w))
        r = rng.integers(0, photo.shape[0] - f * h + 1)
        c = rng.integers(0, photo.shape[1] - f * w + 1)
        out[i] = photo[r:r + f * h, c:c + f * w].reshape(h, f, w, f).mean(axis=(1, 3))
    return out


#: OoD generators by name (CLI ``--ood``)
OOD_SETS: dict[str, Generator] = {"noise": uniform_noise, "blobs": gaussian_blobs, "inverted": inverted,
                                  "rotated": rotated, "photos": photo_patches}
DEFAULT_OOD = tuple(OOD_SETS)


def make_ood(names, images: np.ndarray, seed: int = 0) -> dict[str, np.ndarray]:
    """The named OoD sets built from ``images`` (n, H, W), one seeded generator per set."""
    out = {}
    for k, name in enumerate(names):
        try:
            gen = OOD_SETS[name]
        except KeyError:
            raise ValueError(f"unknown OoD set {name!r}; available: {', '.join(OOD_SETS)}") from None
        out[name] = np.clip(gen(np.asarray(images, np.float64), np.random.default_rng([seed, k])), 0.0, 1.0)
    return out
