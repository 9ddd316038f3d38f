import numpy as np
import pytest

from workshop.faces import IDENTITIES, PARAMETERS, make_faces, render, sample_parameters


def neutral(n=1):
    return np.zeros((n, len(PARAMETERS)), dtype=np.float32)


def with_parameter(name, value):
    p = neutral()
    p[0, PARAMETERS.index(name)] = value
    return p


def test_images_are_float_rgb_in_the_unit_interval():
    for identity in IDENTITIES:
        images = render(identity, sample_parameters(5, seed=1), size=20)
        assert images.shape == (5, 20, 20, 3) and images.dtype == np.float32
        assert images.flags.c_contiguous
        assert images.min() >= 0.0 and images.max() <= 1.0


def test_parameters_are_seeded_and_uniform_in_the_cube():
    p = sample_parameters(2000, seed=3)
    assert p.shape == (2000, 6) and p.dtype == np.float32
    assert np.all(np.abs(p) <= 1) and np.all(np.abs(p.mean(axis=0)) < 0.1)
    np.testing.assert_array_equal(p, sample_parameters(2000, seed=3))
    assert not np.array_equal(p, sample_parameters(2000, seed=4))


def test_make_faces_is_deterministic_and_matches_render():
    images, parameters = make_faces("alice", 4, seed=7, size=16)
    again, _ = make_faces("alice", 4, seed=7, size=16)
    np.testing.assert_array_equal(images, again)
    np.testing.assert_array_equal(images, render("alice", parameters, size=16))


def test_a_face_does_not_depend_on_the_rest_of_its_batch():
    parameters = sample_parameters(300, seed=5)  # more than one chunk of 256
    batch = render("bob", parameters, size=12)
    for i in (0, 255, 256, 299):
        np.testing.assert_allclose(batch[i], render("bob", parameters[i:i + 1], size=12)[0], atol=1e-6)


def test_alice_and_bob_look_different_with_the_same_parameters():
    parameters = sample_parameters(50, seed=2)
    difference = np.abs(render("alice", parameters) - render("bob", parameters)).mean()
    assert difference > 0.1


@pytest.mark.parametrize("name", PARAMETERS)
def test_every_parameter_changes_the_face(name):
    low, high = render("alice", with_parameter(name, -1.0)), render("alice", with_parameter(name, 1.0))
    assert np.abs(low - high).mean() > 0.005


@pytest.mark.parametrize("name, rows", [("smile", slice(16, 32)), ("mouth", slice(16, 32)), ("eyes", slice(0, 16))])
def test_expressions_change_only_their_part_of_the_face(name, rows):
    change = np.abs(render("bob", with_parameter(name, -1.0)) - render("bob", with_parameter(name, 1.0)))[0]
    assert change[rows].sum() > 0.98 * change.sum()


def test_bad_arguments_are_refused():
    with pytest.raises(ValueError, match="unknown identity"):
        render("carol", neutral())
    with pytest.raises(ValueError, match="shape"):
        render("alice", np.zeros((2, 5)))
    with pytest.raises(ValueError, match=r"\[-1, 1\]"):
        render("alice", np.full((1, 6), 1.5))
