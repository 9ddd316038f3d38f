import math

import pytest
import torch

from workshop.atoms import O2_MORSE, lattice_cluster, lennard_jones, morse, sample_clusters


def pair(r):
    x = torch.zeros(1, 2, 3, dtype=torch.float64)
    x[0, 1, 0] = r
    return x


def test_pair_minima():
    energy, forces = lennard_jones(pair(2 ** (1 / 6)))
    assert energy.item() == pytest.approx(-1.0, abs=1e-12)
    assert forces.abs().max().item() < 1e-12
    energy, forces = morse(pair(O2_MORSE["distance"]))
    assert energy.item() == pytest.approx(-O2_MORSE["depth"], abs=1e-12)
    assert forces.abs().max().item() < 1e-12


@pytest.mark.parametrize("potential", [lennard_jones, morse])
def test_forces_are_minus_the_gradient_and_energies_are_invariant(potential):
    generator = torch.Generator().manual_seed(0)
    x = lattice_cluster(7)[None] * 1.1 + 0.05 * torch.randn(3, 7, 3, generator=generator, dtype=torch.float64)
    energy, forces = potential(x)
    leaf = x.clone().requires_grad_(True)
    (gradient,) = torch.autograd.grad(potential(leaf)[0].sum(), leaf)
    assert torch.isfinite(gradient).all()
    assert torch.allclose(forces, -gradient, rtol=1e-10, atol=1e-10)
    rotation, _ = torch.linalg.qr(torch.randn(3, 3, generator=generator, dtype=torch.float64))
    moved = x[:, torch.randperm(7, generator=generator)] @ rotation.T + 1.5
    assert torch.allclose(potential(moved)[0], energy, rtol=1e-12, atol=1e-12)


def test_lattice_cluster_is_compact_and_centred():
    for n in (2, 12, 13, 19):
        x = lattice_cluster(n)
        assert x.shape == (n, 3) and x.dtype == torch.float64
        assert torch.pdist(x).min().item() == pytest.approx(1.1)
        assert x.mean(0).abs().max().item() < 1e-12
    assert lattice_cluster(13).norm(dim=-1).max().item() == pytest.approx(1.1)  # one shell around a centre


def test_sampler_is_seeded_and_labels_are_exact():
    first = sample_clusters(13, 20, seed=3, replicas=8, burn_in=100, stride=10)
    second = sample_clusters(13, 20, seed=3, replicas=8, burn_in=100, stride=10)
    other = sample_clusters(13, 20, seed=4, replicas=8, burn_in=100, stride=10)
    x = first["positions"]
    assert x.shape == (20, 13, 3) and first["energies"].shape == (20,) and first["forces"].shape == (20, 13, 3)
    assert torch.equal(x, second["positions"]) and not torch.equal(x, other["positions"])
    assert x.mean(dim=1).abs().max().item() < 1e-12
    energy, forces = lennard_jones(x)
    assert torch.equal(energy, first["energies"]) and torch.equal(forces, first["forces"])
    assert -45 < first["energies"].min().item() and first["energies"].max().item() < -25  # a bound cluster
    assert math.isfinite(x.abs().max().item()) and x.norm(dim=-1).max().item() < 3.0
