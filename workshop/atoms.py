"""Exact pair potentials and a seeded sampler of atomic clusters, for the energy-network notebook (10).

Positions are torch tensors of shape (batch, atoms, 3) in float64. Lennard-Jones code uses reduced units
(epsilon = sigma = mass = Boltzmann's constant = 1); the Morse defaults are close to the oxygen molecule (eV, Å).
"""

import math

import torch

O2_MORSE = {"depth": 5.21, "stiffness": 2.65, "distance": 1.21}  # D_e in eV, a in 1/Å, r_e in Å (roughly O2)


def _pair_geometry(positions):
    """Vectors r_i - r_j (batch, n, n, 3), distances with 1 on the diagonal, and the off-diagonal mask."""
    n = positions.shape[-2]
    eye = torch.eye(n, dtype=torch.bool, device=positions.device)
    vectors = positions[:, :, None, :] - positions[:, None, :, :]
    distances = torch.where(eye, 1.0, (vectors**2).sum(-1).clamp_min(1e-300).sqrt())
    return vectors, distances, ~eye


def _pair_sum(positions, pair, pair_derivative):
    """Energy sum_{i<j} pair(r_ij) and forces -dU/dr_i for a pair potential given with its derivative."""
    vectors, distances, off = _pair_geometry(positions)
    energies = 0.5 * torch.where(off, pair(distances), 0.0).sum(dim=(1, 2))
    scale = torch.where(off, -pair_derivative(distances) / distances, 0.0)
    return energies, (scale[..., None] * vectors).sum(dim=2)


def morse(positions, depth=O2_MORSE["depth"], stiffness=O2_MORSE["stiffness"], distance=O2_MORSE["distance"]):
    """Energies (batch,) and forces (batch, atoms, 3) of U = sum_{i<j} D[(1 - exp(-a(r_ij - r_e)))^2 - 1]."""

    def pair(r):
        return depth * ((1 - torch.exp(-stiffness * (r - distance))) ** 2 - 1)

    def derivative(r):
        e = torch.exp(-stiffness * (r - distance))
        return 2 * depth * stiffness * (1 - e) * e

    return _pair_sum(positions, pair, derivative)


def lennard_jones(positions, epsilon=1.0, sigma=1.0):
    """Energies (batch,) and forces (batch, atoms, 3) of U = sum_{i<j} 4 eps [(sigma/r)^12 - (sigma/r)^6]."""

    def pair(r):
        s6 = (sigma / r) ** 6
        return 4 * epsilon * (s6 * s6 - s6)

    def derivative(r):
        s6 = (sigma / r) ** 6
        return 4 * epsilon * (6 * s6 - 12 * s6 * s6) / r

    return _pair_sum(positions, pair, derivative)


def lattice_cluster(n_atoms, spacing=1.1, dtype=torch.float64):
    """The n_atoms sites of a face-centred cubic lattice nearest to one site: a compact start, (n_atoms, 3)."""
    k = math.ceil(n_atoms ** (1 / 3)) + 2
    grid = torch.stack(torch.meshgrid(*[torch.arange(-k, k + 1, dtype=dtype)] * 3, indexing="ij"), -1).reshape(-1, 3)
    sites = grid[grid.sum(-1).remainder(2) == 0] * spacing / math.sqrt(2)  # fcc: even coordinate sums
    order = torch.argsort((sites**2).sum(-1) + 1e-6 * (sites * torch.tensor([1.0, 2.0, 3.0], dtype=dtype)).sum(-1))
    cluster = sites[order[:n_atoms]]
    return cluster - cluster.mean(0)


def sample_clusters(n_atoms, n_samples, temperature=0.25, seed=0, replicas=32, dt=0.005, friction=1.0,
                    burn_in=1000, stride=50, wall=2.5, device="cpu"):
    """Configurations of a Lennard-Jones cluster from Langevin dynamics, with their exact energies and forces.

    `replicas` independent copies start from `lattice_cluster` and are integrated with the BAOAB scheme at
    `temperature`; after `burn_in` steps a snapshot of every copy is kept every `stride` steps. A soft spherical
    wall at distance `wall` from the centroid keeps atoms from evaporating during sampling; the energies and
    forces returned are pure Lennard-Jones. Centroids are moved to the origin. Returns a dict of CPU tensors:
    positions (n_samples, n_atoms, 3), energies (n_samples,) and forces (n_samples, n_atoms, 3).
    """
    generator = torch.Generator(device="cpu").manual_seed(seed)

    def noise(*shape):
        return torch.randn(*shape, generator=generator, dtype=torch.float64).to(device)

    def total_force(x):
        forces = lennard_jones(x)[1]
        centred = x - x.mean(dim=1, keepdim=True)
        radius = centred.norm(dim=-1, keepdim=True)
        return forces - 10.0 * (radius - wall).clamp_min(0) * centred / radius

    x = lattice_cluster(n_atoms).to(device).expand(replicas, n_atoms, 3).clone() + 0.02 * noise(replicas, n_atoms, 3)
    v = math.sqrt(temperature) * noise(replicas, n_atoms, 3)
    damping = math.exp(-friction * dt)
    kick = math.sqrt((1 - damping**2) * temperature)
    f = total_force(x)
    kept, step = [], 0
    while sum(len(k) for k in kept) < n_samples:
        v = v + 0.5 * dt * f
        x = x + 0.5 * dt * v
        v = damping * v + kick * noise(replicas, n_atoms, 3)
        x = x + 0.5 * dt * v
        f = total_force(x)
        v = v + 0.5 * dt * f
        step += 1
        if step > burn_in and (step - burn_in) % stride == 0:
            kept.append(x - x.mean(dim=1, keepdim=True))
    positions = torch.cat(kept)[:n_samples]  # snapshot by snapshot: any prefix mixes all copies
    energies, forces = lennard_jones(positions)
    return {"positions": positions.cpu(), "energies": energies.cpu(), "forces": forces.cpu()}
