"""Scenes of several digits on a cluttered background, with a label for every pixel (for segmentation).

A scene is a square grey image in [0, 1]: smooth background noise, a few bright strokes of clutter, and one to
`max_digits` digits, shrunk to `digit_size` pixels and placed where their boxes keep a gap of at least one pixel
between them (so that different digits never touch). Its label map gives every pixel a class: 0 for background and
clutter, 1 + d where the stroke of a digit d is brighter than `threshold`. The generator is seeded: the same
arguments give the same scenes.
"""

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

CLASSES = 11  # background, then the digits 0..9 as 1..10


@dataclass(frozen=True)
class Scenes:
    """Images (n, size, size) float32 in [0, 1], label maps (n, size, size) int64 in 0..10, and per scene the
    digits it holds: `digits[i]` (k,) int64 and `boxes[i]` (k, 4) int64 as (top, left, bottom, right), exclusive."""

    images: np.ndarray
    masks: np.ndarray
    digits: list
    boxes: list

    @property
    def counts(self) -> np.ndarray:
        """How many digits each scene holds, (n,) int64."""
        return np.array([len(d) for d in self.digits], dtype=np.int64)

    def centres(self) -> list:
        """Per scene, the centre of mass (row, column) of each digit's labelled pixels, (k, 2) float64."""
        found = []
        for mask, boxes in zip(self.masks, self.boxes):
            rows = []
            for top, left, bottom, right in boxes:
                piece = mask[top:bottom, left:right] > 0
                r, c = ndimage.center_of_mass(piece)
                rows.append((top + r, left + c))
            found.append(np.array(rows, dtype=np.float64).reshape(-1, 2))
        return found


def shrink(images, size: int) -> np.ndarray:
    """Digits (n, h, w) with pixels in [0, 255] or [0, 1], resized to (n, size, size) float32 in [0, 1]."""
    images = np.asarray(images, dtype=np.float32)
    if images.max() > 1.0:
        images = images / 255.0
    zoom = (1.0, size / images.shape[1], size / images.shape[2])
    return np.clip(ndimage.zoom(images, zoom, order=1), 0.0, 1.0).astype(np.float32)


def _clutter(rng, size: int, strokes: int) -> np.ndarray:
    """Smooth noise and a few straight strokes of random brightness: the background of one scene."""
    noise = ndimage.gaussian_filter(rng.random((size, size)), 2.0)
    background = 0.35 * (noise - noise.min()) / (np.ptp(noise) + 1e-9)
    for _ in range(strokes):
        (r0, c0), (r1, c1) = rng.uniform(0, size - 1, (2, 2))
        steps = int(max(abs(r1 - r0), abs(c1 - c0))) + 1
        rows = np.round(np.linspace(r0, r1, steps)).astype(int)
        cols = np.round(np.linspace(c0, c1, steps)).astype(int)
        background[rows, cols] = np.maximum(background[rows, cols], rng.uniform(0.5, 1.0))
    return background


def make_scenes(images, labels, n: int, size: int = 48, digit_size: int = 20, max_digits: int = 3,
                strokes: int = 2, threshold: float = 0.3, seed: int = 0) -> Scenes:
    """`n` scenes built from the digits `images` (N, h, w) with their `labels` (N,) in 0..9.

    Each scene draws its number of digits uniformly from 1..max_digits, the digits at random from `images`, their
    places at random among those whose boxes stay a pixel apart (a scene keeps fewer digits when none is left),
    and `strokes` strokes of clutter. Pixels take the brighter of background and digit.
    """
    labels = np.asarray(labels, dtype=np.int64)
    if len(labels) != len(images) or labels.min() < 0 or labels.max() > 9:
        raise ValueError("labels must be digits 0..9, one per image")
    if digit_size > size:
        raise ValueError(f"digit_size {digit_size} does not fit in scenes of size {size}")
    rng = np.random.default_rng(seed)
    out_images = np.zeros((n, size, size), dtype=np.float32)
    out_masks = np.zeros((n, size, size), dtype=np.int64)
    all_digits, all_boxes = [], []
    for i in range(n):
        image = _clutter(rng, size, strokes)
        wanted = int(rng.integers(1, max_digits + 1))
        chosen = rng.choice(len(images), wanted, replace=False)
        digits, boxes = [], []
        for index in chosen:
            for _ in range(50):  # rejection sampling of a free place
                top, left = rng.integers(0, size - digit_size + 1, 2)
                box = (int(top), int(left), int(top) + digit_size, int(left) + digit_size)
                if all(box[0] > b[2] or b[0] > box[2] or box[1] > b[3] or b[1] > box[3] for b in boxes):
                    break
            else:
                continue
            digit = shrink(images[index:index + 1], digit_size)[0]
            window = (slice(box[0], box[2]), slice(box[1], box[3]))
            image[window] = np.maximum(image[window], digit)
            out_masks[i][window][digit > threshold] = 1 + labels[index]
            digits.append(labels[index])
            boxes.append(box)
        out_images[i] = image
        all_digits.append(np.array(digits, dtype=np.int64))
        all_boxes.append(np.array(boxes, dtype=np.int64).reshape(-1, 4))
    return Scenes(out_images, out_masks, all_digits, all_boxes)
