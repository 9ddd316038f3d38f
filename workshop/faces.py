"""Generated faces of two identities, Alice and Bob, drawn from known pose and expression parameters.

Every face is a small RGB image drawn from a row of six parameters in [-1, 1] (`PARAMETERS`): where the head
turns (yaw, pitch, roll) and what the face does (smile, open mouth, open eyes). The identity decides everything
else: shape and colour of the face, hair style and colour, eye and lip colour, eyebrows, Bob's moustache and the
background. Because the same parameters can be drawn as either person, "Bob with Alice's expression" has an
exact answer. Faces are drawn from soft-edged shapes, all faces of a batch at once, with NumPy.
"""

import numpy as np

PARAMETERS = ("yaw", "pitch", "roll", "smile", "mouth", "eyes")

# What makes Alice Alice and Bob Bob: colours (RGB in [0, 1]); face half-width and half-height, how far down the
# sides the hair reaches, eyebrow thickness and eye width, in drawing units (the image spans -0.8 to 0.8).
STYLES = {
    "alice": dict(
        background=(0.80, 0.88, 0.97), skin=(0.98, 0.80, 0.68), hair=(0.62, 0.24, 0.10), iris=(0.15, 0.40, 0.95),
        lips=(0.88, 0.18, 0.32), brow=(0.45, 0.18, 0.10), moustache=None, face=(0.48, 0.62), side_hair=-0.12,
        brow_thickness=0.03, eye_width=0.14,
    ),
    "bob": dict(
        background=(0.90, 0.86, 0.70), skin=(0.74, 0.52, 0.36), hair=(0.12, 0.10, 0.08), iris=(0.25, 0.55, 0.20),
        lips=(0.80, 0.42, 0.36), brow=(0.10, 0.08, 0.06), moustache=(0.20, 0.13, 0.08), face=(0.58, 0.57),
        side_hair=0.22, brow_thickness=0.055, eye_width=0.12,
    ),
}
IDENTITIES = tuple(STYLES)


def sample_parameters(n: int, seed: int = 0) -> np.ndarray:
    """`n` rows of parameters drawn uniformly from [-1, 1], shape (n, 6), float32."""
    return np.random.default_rng(seed).uniform(-1, 1, (n, len(PARAMETERS))).astype(np.float32)


def _inside(distance, pixel):
    """Soft (anti-aliased) mask from a signed distance: 1 inside (distance < 0), 0 outside."""
    return np.clip(0.5 - distance / pixel, 0.0, 1.0)


def _ellipse(x, y, cx, cy, a, b):
    """Approximate signed distance to an ellipse with centre (cx, cy) and half-axes a, b."""
    return (np.sqrt(((x - cx) / a) ** 2 + ((y - cy) / b) ** 2) - 1.0) * np.minimum(a, b)


def _paint(image, mask, colour):
    """Lay `colour` over `image`, channels first (3, n, s, s), where `mask` (n, s, s) is 1."""
    mask = mask.astype(np.float32, copy=False)
    for channel, value in zip(image, colour):
        channel += mask * (np.float32(value) - channel)
    return image


def render(identity: str, parameters, size: int = 32) -> np.ndarray:
    """Draw `identity` ("alice" or "bob") with each row of `parameters` (n, 6): images (n, size, size, 3) in [0, 1]."""
    if identity not in STYLES:
        raise ValueError(f"unknown identity {identity!r}; choose one of {', '.join(IDENTITIES)}")
    p = np.asarray(parameters, dtype=np.float32)
    if p.ndim != 2 or p.shape[1] != len(PARAMETERS):
        raise ValueError(f"parameters should have shape (n, {len(PARAMETERS)}), not {p.shape}")
    if np.any(np.abs(p) > 1):
        raise ValueError("parameters should lie in [-1, 1]")
    out = np.empty((len(p), size, size, 3), dtype=np.float32)
    for start in range(0, len(p), 256):  # in chunks that stay in the CPU's cache
        out[start:start + 256] = _draw(STYLES[identity], p[start:start + 256], size).transpose(1, 2, 3, 0)
    return out


def _draw(style, p, size):
    """The faces of one identity, channels first: (3, n, size, size)."""
    yaw, pitch, roll, smile, mouth, eyes = (p[:, i, None, None] for i in range(len(PARAMETERS)))
    pixel = np.float32(1.6 / size)
    # Pixel centres in [-0.8, 0.8], y pointing up; then rotate into the head's frame (roll) around the neck.
    u = ((np.arange(size, dtype=np.float32) + 0.5) * pixel - 0.8)
    gx, gy = np.meshgrid(u, -u)
    angle = 0.35 * roll
    cos, sin = np.cos(angle), np.sin(angle)
    x = cos * gx + sin * (gy + 0.6)
    y = -sin * gx + cos * (gy + 0.6) - 0.6
    # Turning the head moves the features across the face; the nose, nearer to us, moves further.
    fx, fy = 0.16 * yaw, 0.12 * pitch
    a, b = style["face"]
    image = np.ones((3, len(p), size, size), dtype=np.float32) * np.float32(style["background"])[:, None, None, None]
    cx, cy = 0.4 * fx, 0.4 * fy
    face = _ellipse(x, y, cx, cy, a, b)
    image = _paint(image, _inside(face, pixel), style["skin"])
    # Hair: a cap over the top of the head that reaches down the sides to `side_hair`.
    cap = np.minimum(0.38 + 0.3 * fy - y, np.maximum(0.8 * a - np.abs(x - cx), style["side_hair"] + fy - y))
    hair = np.maximum(_ellipse(x, y, cx, cy + 0.02, a + 0.04, b + 0.04), cap)
    image = _paint(image, _inside(hair, pixel), style["hair"])
    # Eyes: whites that close with `eyes`, an iris that follows the turn of the head, eyebrows above them.
    openness = 0.2 + 0.4 * (eyes + 1.0)  # 0.2 (nearly shut) .. 1.0
    ew = style["eye_width"]
    for side in (-1.0, 1.0):
        cx, cy = side * 0.22 + fx, 0.12 + fy  # the centre of this eye
        white = _ellipse(x, y, cx, cy, ew, 0.10 * openness)
        image = _paint(image, _inside(white, pixel), (1.0, 1.0, 1.0))
        iris = np.maximum(_ellipse(x, y, cx + 0.3 * fx, cy, 0.065, 0.065), white)
        image = _paint(image, _inside(iris, pixel), style["iris"])
        brow_y = cy + 0.10 + 0.05 * openness
        brow = np.maximum(np.abs(y - brow_y + 0.3 * (x - cx) ** 2) - style["brow_thickness"], np.abs(x - cx) - ew)
        image = _paint(image, _inside(brow, pixel), style["brow"])
    # Nose: a darker ellipse that moves further than the rest when the head turns.
    nose = _ellipse(x, y, 1.5 * fx, -0.05 + 1.2 * fy, 0.05, 0.10 + 0.02 * pitch)
    image = _paint(image, 0.6 * _inside(nose, pixel), 0.8 * np.asarray(style["skin"]))
    # Mouth: a parabola bent up by `smile`; lips around it, dark inside as it opens.
    opening = 0.5 * (mouth + 1.0)
    mx, my = 1.1 * fx, -0.36 + fy
    curve = y - (my + 1.6 * smile * (x - mx) ** 2)
    width = np.abs(x - mx) - 0.23
    lips = np.maximum(np.abs(curve) - (0.035 + 0.06 * opening), width)
    image = _paint(image, _inside(lips, pixel), style["lips"])
    inner = np.maximum(np.abs(curve) - 0.065 * opening, width + 0.03)
    image = _paint(image, _inside(inner, pixel) * (opening > 0.05), (0.25, 0.04, 0.06))
    if style["moustache"] is not None:
        above = y - (my + 0.05 + 0.06 * opening + 0.8 * smile * (x - mx) ** 2)
        moustache = np.maximum(np.abs(above - 0.035) - 0.035, np.abs(x - mx) - 0.19)
        image = _paint(image, _inside(moustache, pixel), style["moustache"])
    return np.clip(image, 0.0, 1.0, out=image)


def make_faces(identity: str, n: int, seed: int = 0, size: int = 32) -> tuple[np.ndarray, np.ndarray]:
    """`n` faces of `identity` with random parameters: (images (n, size, size, 3), parameters (n, 6))."""
    parameters = sample_parameters(n, seed)
    return render(identity, parameters, size), parameters
