"""Run profiles (quick for CI and grading, full for the workshop), seeding and device reporting."""

import os
import random
import sys
from types import SimpleNamespace

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # keep TensorFlow's C++ start-up chatter out of the notebooks

PROFILES = ("quick", "full")
DEFAULT_PROFILE = "full"


def profile_name() -> str:
    """The profile chosen by the environment variable WORKSHOP_PROFILE (default: full)."""
    name = os.environ.get("WORKSHOP_PROFILE", DEFAULT_PROFILE).strip().lower() or DEFAULT_PROFILE
    if name not in PROFILES:
        raise ValueError(f"WORKSHOP_PROFILE={name!r} is not a profile; use one of {', '.join(PROFILES)}")
    return name


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and whichever of PyTorch, TensorFlow and Keras the notebook has imported."""
    random.seed(seed)
    np.random.seed(seed)
    if "torch" in sys.modules:
        sys.modules["torch"].manual_seed(seed)
    if "tensorflow" in sys.modules:
        sys.modules["tensorflow"].random.set_seed(seed)
    if "keras" in sys.modules:
        sys.modules["keras"].utils.set_random_seed(seed)


def describe_device() -> str:
    """Name the accelerator PyTorch sees, or say that work runs on the CPU."""
    try:
        import torch
    except ImportError:
        return "cpu (PyTorch is not installed)"
    if torch.cuda.is_available():
        return f"cuda ({torch.cuda.get_device_name(0)})"
    return "cpu (no CUDA GPU visible)"


def setup(quick: dict, full: dict, seed: int = 0) -> SimpleNamespace:
    """Pick the profile's settings, seed everything and print what this run uses.

    Both profiles must set the same keys, so that the notebook runs the same code in both.
    """
    if quick.keys() != full.keys():
        raise ValueError(f"quick and full profiles set different keys: {sorted(quick.keys() ^ full.keys())}")
    name = profile_name()
    settings = {"quick": quick, "full": full}[name]
    device = describe_device()
    seed_everything(seed)
    other = "full" if name == "quick" else "quick"
    backend = f" | Keras backend: {sys.modules['keras'].backend.backend()}" if "keras" in sys.modules else ""
    print(f"Profile: {name} (WORKSHOP_PROFILE={other} for the other) | device: {device}{backend} | seed: {seed}")
    return SimpleNamespace(profile=name, device=device, seed=seed, **settings)
