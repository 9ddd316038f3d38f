"""Seeded steady channel flows around random obstacles, for the AI-simulation notebook (12).

A channel of ny x nx square cells (unit spacing) carries an inviscid, irrotational flow: uniform speed `inflow`
enters through the left side, the top and bottom walls and the obstacles let nothing through, and the flow
leaves through the right side. The velocity is the gradient of a potential phi with Laplace's equation
div grad phi = 0 in the fluid; one sparse linear solve (finite volumes, five-point stencil) per sample gives it.
Obstacles are random circles, ellipses and rectangles; fluid pockets cut off from the outlet become solid.
"""

import time

import numpy as np
import scipy.ndimage
import scipy.sparse
import scipy.sparse.linalg

SHAPES = ("circle", "ellipse", "rectangle")


def _shape_mask(kind, ny, nx, centre, size, angle):
    """Boolean (ny, nx) mask of the cells whose centres lie inside one shape (sizes in cells)."""
    y, x = np.mgrid[0:ny, 0:nx] + 0.5
    dx, dy = x - centre[0], y - centre[1]
    c, s = np.cos(angle), np.sin(angle)
    along, across = c * dx + s * dy, -s * dx + c * dy
    if kind == "circle":
        return dx**2 + dy**2 <= size[0] ** 2
    if kind == "ellipse":
        return (along / size[0]) ** 2 + (across / size[1]) ** 2 <= 1
    return (np.abs(along) <= size[0]) & (np.abs(across) <= size[1])


def _open_channel(obstacle):
    """The obstacle mask with pockets cut off from the outlet filled, or None if the inlet cannot reach it."""
    labels, _ = scipy.ndimage.label(~obstacle)  # four-connected fluid regions
    outlet = np.unique(labels[:, -1][labels[:, -1] > 0])
    if len(outlet) != 1:
        return None
    inlet = labels[:, 0][labels[:, 0] > 0]
    if len(inlet) == 0 or np.any(inlet != outlet[0]):
        return None
    return labels != outlet[0]


def random_obstacles(ny, nx, rng, max_obstacles=3, max_blockage=0.5):
    """A boolean (ny, nx) mask, True inside 1..max_obstacles random shapes in the middle half of the channel.

    Sizes and positions scale with ny, so that the statistics are the same at every resolution. Gaps of one or two
    cells are closed, the first and last columns stay open (the inflow and outflow), and the fluid is one
    connected region. No column is blocked by more than `max_blockage` of its cells, so that the flow squeezing
    past the obstacles stays within about twice the inflow speed on average.
    """
    while True:
        obstacle = np.zeros((ny, nx), dtype=bool)
        for _ in range(rng.integers(1, max_obstacles + 1)):
            kind = SHAPES[rng.integers(len(SHAPES))]
            centre = (rng.uniform(0.3, 0.7) * nx, rng.uniform(0.15, 0.85) * ny)
            size = rng.uniform(0.08, 0.22, size=2) * ny
            obstacle |= _shape_mask(kind, ny, nx, centre, size, rng.uniform(0, np.pi))
        # close gaps of one or two cells (between obstacles, or an obstacle and a wall): slits that narrow would
        # carry jets many times faster than the stream, resolved by a single cell
        walled = np.pad(obstacle, ((1, 1), (0, 0)), constant_values=True)
        obstacle = scipy.ndimage.binary_closing(walled, np.ones((3, 3), dtype=bool), border_value=0)[1:-1]
        opened = _open_channel(obstacle)
        if (opened is not None and opened.any() and not opened[:, [0, -1]].any()
                and opened.mean(axis=0).max() <= max_blockage):
            return opened


def potential_flow(obstacle, inflow=1.0):
    """Velocity (2, ny, nx) of the potential flow through the channel: (u, v) = grad phi, zero inside obstacles.

    Finite volumes on the cells: a fluid cell exchanges phi_neighbour - phi_cell with each fluid neighbour;
    walls and obstacle faces carry no flux, the left face of the first column carries `inflow`, and phi = 0 on
    the right face of the last column. Face velocities conserve mass exactly; a cell's (u, v) is the mean of its
    two faces in each direction. Axis 0 of the grid is y (row i at y = i + 1/2), axis 1 is x.
    """
    obstacle = np.asarray(obstacle, dtype=bool)
    ny, nx = obstacle.shape
    fluid = ~obstacle
    index = np.full((ny, nx), -1)
    index[fluid] = np.arange(fluid.sum())
    rows, cols = [], []
    for a, b in ((index[:, :-1], index[:, 1:]), (index[:-1, :], index[1:, :])):  # x faces, then y faces
        open_face = (a >= 0) & (b >= 0)
        rows.append(a[open_face])
        cols.append(b[open_face])
    i, j = np.concatenate(rows), np.concatenate(cols)
    n = int(fluid.sum())
    degree = np.bincount(i, minlength=n) + np.bincount(j, minlength=n) + 0.0
    outlet = index[:, -1][fluid[:, -1]]
    degree[outlet] += 2.0  # phi = 0 half a cell to the right of the last column
    matrix = scipy.sparse.coo_matrix(
        (np.concatenate([degree, -np.ones(2 * len(i))]),
         (np.concatenate([np.arange(n), i, j]), np.concatenate([np.arange(n), j, i]))), shape=(n, n)).tocsc()
    rhs = np.zeros(n)
    rhs[index[:, 0][fluid[:, 0]]] = -inflow  # flux `inflow` enters through the left face
    phi = np.zeros((ny, nx))
    phi[fluid] = scipy.sparse.linalg.spsolve(matrix, rhs)

    u_faces = np.zeros((ny, nx + 1))  # face k lies left of column k
    u_faces[:, 1:-1] = np.where(fluid[:, 1:] & fluid[:, :-1], phi[:, 1:] - phi[:, :-1], 0.0)
    u_faces[:, 0] = np.where(fluid[:, 0], inflow, 0.0)
    u_faces[:, -1] = np.where(fluid[:, -1], -2.0 * phi[:, -1], 0.0)
    v_faces = np.zeros((ny + 1, nx))  # face k lies below row k; the walls (k = 0 and ny) stay closed
    v_faces[1:-1] = np.where(fluid[1:] & fluid[:-1], phi[1:] - phi[:-1], 0.0)
    velocity = np.stack([0.5 * (u_faces[:, 1:] + u_faces[:, :-1]), 0.5 * (v_faces[1:] + v_faces[:-1])])
    return np.where(fluid, velocity, 0.0)


def uniform_flow(obstacle, inflow=1.0):
    """The baseline without a solve: (inflow, 0) in every fluid cell, zero inside obstacles; shape (..., 2, ny, nx)."""
    fluid = ~np.asarray(obstacle, dtype=bool)
    return np.stack([inflow * fluid, np.zeros_like(fluid, dtype=float)], axis=-3).astype(float)


def channel_flows(count, ny=32, nx=64, seed=0, max_obstacles=3, max_blockage=0.5, inflow=1.0):
    """`count` seeded samples: obstacle masks (count, ny, nx) and velocities (count, 2, ny, nx), float32.

    Also returns the solver's mean wall-clock seconds per sample (mask and solve), which is not seeded.
    """
    rng = np.random.default_rng(seed)
    obstacles = np.zeros((count, ny, nx), dtype=np.float32)
    velocities = np.zeros((count, 2, ny, nx), dtype=np.float32)
    start = time.perf_counter()
    for k in range(count):
        mask = random_obstacles(ny, nx, rng, max_obstacles, max_blockage)
        obstacles[k] = mask
        velocities[k] = potential_flow(mask, inflow)
    seconds = (time.perf_counter() - start) / max(count, 1)
    return {"obstacles": obstacles, "velocities": velocities, "seconds_per_sample": seconds}
