import numpy as np
import pytest

from workshop.flows import channel_flows, potential_flow, random_obstacles, uniform_flow


def test_empty_channel_is_uniform_flow():
    velocity = potential_flow(np.zeros((8, 20), dtype=bool), inflow=1.5)
    assert velocity.shape == (2, 8, 20)
    np.testing.assert_allclose(velocity[0], 1.5, atol=1e-12)
    np.testing.assert_allclose(velocity[1], 0.0, atol=1e-12)
    np.testing.assert_array_equal(uniform_flow(np.zeros((8, 20), dtype=bool), inflow=1.5), velocity.round(12))


def test_mass_is_conserved_and_obstacles_are_still():
    rng = np.random.default_rng(5)
    for _ in range(5):
        obstacle = random_obstacles(24, 48, rng)
        velocity = potential_flow(obstacle)
        assert np.all(velocity[:, obstacle] == 0)
        # every column carries the inflow: the cell values are means of face fluxes that each sum to ny
        np.testing.assert_allclose(velocity[0].sum(axis=0), 24.0, rtol=1e-9)


def test_symmetric_obstacle_gives_a_mirror_symmetric_flow():
    y, x = np.mgrid[0:20, 0:40] + 0.5
    obstacle = (x - 20) ** 2 + (y - 10) ** 2 <= 16
    velocity = potential_flow(obstacle)
    np.testing.assert_allclose(velocity[0], velocity[0][::-1], atol=1e-10)  # u even about the centre line
    np.testing.assert_allclose(velocity[1], -velocity[1][::-1], atol=1e-10)  # v odd
    assert velocity[0, 10, 20 - 5] < 1 and velocity[0, 2, 20] > 1  # slows in front, speeds up beside it


def test_obstacles_keep_the_channel_open():
    rng = np.random.default_rng(0)
    for _ in range(50):
        obstacle = random_obstacles(16, 32, rng, max_obstacles=4)
        assert obstacle.any() and not obstacle[:, [0, -1]].any()
        assert obstacle.mean(axis=0).max() <= 0.5  # no column is blocked by more than half


def test_dataset_is_seeded():
    first, second, other = channel_flows(6, 16, 32, seed=3), channel_flows(6, 16, 32, seed=3), channel_flows(
        6, 16, 32, seed=4)
    assert first["obstacles"].shape == (6, 16, 32) and first["velocities"].shape == (6, 2, 16, 32)
    assert first["obstacles"].dtype == np.float32 and first["velocities"].dtype == np.float32
    assert np.array_equal(first["obstacles"], second["obstacles"])
    assert np.array_equal(first["velocities"], second["velocities"])
    assert not np.array_equal(first["obstacles"], other["obstacles"])
    assert first["seconds_per_sample"] > 0
    assert np.isfinite(first["velocities"]).all() and first["velocities"][:, 0].max() < 20


@pytest.mark.parametrize("shape", [(16, 32), (32, 64)])
def test_obstacles_scale_with_the_grid(shape):
    masks = channel_flows(40, *shape, seed=1)["obstacles"]
    assert 0.02 < masks.mean() < 0.2
