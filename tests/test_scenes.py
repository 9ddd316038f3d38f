"""workshop.scenes: seeded scenes of digits whose label maps agree with the digits and boxes they list."""

import numpy as np
import pytest
from scipy import ndimage

from workshop.scenes import CLASSES, make_scenes, shrink


def strokes(n=12, seed=0):
    """Stand-in digits: a bright bar per image, in the middle of a 28x28 frame, and labels 0..9 in turn."""
    images = np.zeros((n, 28, 28), dtype=np.uint8)
    images[:, 6:22, 11:17] = 255
    return images, np.arange(n) % 10


def test_shapes_types_and_ranges():
    images, labels = strokes()
    scenes = make_scenes(images, labels, 20, size=40, digit_size=12, seed=3)
    assert scenes.images.shape == (20, 40, 40) and scenes.images.dtype == np.float32
    assert scenes.masks.shape == (20, 40, 40) and scenes.masks.dtype == np.int64
    assert scenes.images.min() >= 0 and scenes.images.max() <= 1
    assert scenes.masks.min() == 0 and scenes.masks.max() < CLASSES
    assert scenes.counts.dtype == np.int64 and np.all((scenes.counts >= 1) & (scenes.counts <= 3))


def test_seeded_and_different_for_another_seed():
    images, labels = strokes()
    a, b = make_scenes(images, labels, 8, seed=5), make_scenes(images, labels, 8, seed=5)
    np.testing.assert_array_equal(a.images, b.images)
    np.testing.assert_array_equal(a.masks, b.masks)
    assert not np.array_equal(a.images, make_scenes(images, labels, 8, seed=6).images)


def test_labels_lie_inside_the_boxes_of_their_digits_which_never_touch():
    images, labels = strokes()
    scenes = make_scenes(images, labels, 30, seed=1)
    for mask, digits, boxes in zip(scenes.masks, scenes.digits, scenes.boxes):
        inside = np.zeros(mask.shape, dtype=bool)
        for digit, (top, left, bottom, right) in zip(digits, boxes):
            piece = mask[top:bottom, left:right]
            assert set(np.unique(piece)) == {0, 1 + digit}
            inside[top:bottom, left:right] = True
        assert not np.any(mask[~inside])  # nothing labelled outside the boxes
        # one 8-connected component per digit: the stand-in bars are solid, and boxes keep a gap
        assert ndimage.label(mask > 0, structure=np.ones((3, 3)))[1] == len(digits)
    centres = scenes.centres()
    assert all(c.shape == (len(d), 2) for c, d in zip(centres, scenes.digits))
    top, left, bottom, right = scenes.boxes[0][0]
    assert top <= centres[0][0, 0] < bottom and left <= centres[0][0, 1] < right


def test_digits_are_brighter_than_the_threshold_where_labelled():
    images, labels = strokes()
    scenes = make_scenes(images, labels, 10, threshold=0.3, seed=2)
    assert np.all(scenes.images[scenes.masks > 0] > 0.3)


def test_shrink_scales_pixels_to_the_unit_interval():
    images, _ = strokes(2)
    small = shrink(images, 14)
    assert small.shape == (2, 14, 14) and small.dtype == np.float32
    assert small.max() == pytest.approx(1.0) and small.min() == 0.0


def test_bad_labels_are_refused():
    images, labels = strokes()
    with pytest.raises(ValueError, match="digits 0..9"):
        make_scenes(images, labels + 5, 2)
