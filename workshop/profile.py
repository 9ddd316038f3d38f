"""Run profiles (quick for CI and grading, full for the workshop), seeding and what a run uses, printed at the top."""

import os
import random
import sys
import tempfile
from pathlib import Path
from types import ModuleType, SimpleNamespace

import numpy as np

from workshop.data import REPO, describe_source, read_manifest

PROFILES = ("quick", "full")
DEFAULT_PROFILE = "full"
VARIABLE = "WORKSHOP_PROFILE"
_chosen = None  # the profile named by use_profile(), if any


def _checked(name: str, where: str) -> str:
    name = str(name).strip().lower()
    if name not in PROFILES:
        raise ValueError(f"{where}: {name!r} is not a profile; use one of {', '.join(PROFILES)}")
    return name


def use_profile(name: str) -> None:
    """Choose this notebook's profile ("quick" or "full") before setup() runs; run the setup cell again after a
    change. The environment variable WORKSHOP_PROFILE, where it is set (CI, grading), wins over this call."""
    global _chosen
    _chosen = _checked(name, "workshop.use_profile")


def profile_choice() -> tuple[str, str]:
    """The profile and what chose it: "environment" (WORKSHOP_PROFILE), "call" (use_profile) or "default"."""
    variable = os.environ.get(VARIABLE, "").strip()
    if variable:
        return _checked(variable, VARIABLE), "environment"
    if _chosen:
        return _chosen, "call"
    return DEFAULT_PROFILE, "default"


def profile_name() -> str:
    """The profile this run uses: WORKSHOP_PROFILE if set, else the one use_profile() named, else full."""
    return profile_choice()[0]


def describe_profile() -> str:
    """The profile, what chose it, and how to choose the other."""
    name, source = profile_choice()
    other = PROFILES[1 - PROFILES.index(name)]
    if source == "environment":
        call = f"your workshop.use_profile({_chosen!r})" if _chosen and _chosen != name else "workshop.use_profile"
        return f"{name} (from the environment variable {VARIABLE}, which wins over {call})"
    if source == "call":
        return f"{name} (chosen by workshop.use_profile({name!r}); use_profile({other!r}) for the {other} one)"
    return (f"{name} (the default; for the {other} one run workshop.use_profile({other!r}) before setup, or start "
            f"Jupyter with {VARIABLE}={other})")


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


def keras_backend(namespace: dict) -> str | None:
    """Keras's backend, if `namespace` (a notebook's globals) holds Keras or one of its modules; TensorFlow imports
    Keras too, so that alone does not count."""
    if "keras" not in sys.modules:
        return None
    for value in namespace.values():
        if isinstance(value, ModuleType) and value.__name__.split(".")[0] == "keras":
            return sys.modules["keras"].backend.backend()
    return None


def describe_data(data, profile: str) -> list[str]:
    """One line per data source: a dataset of data/MANIFEST is described from it (cached, or downloaded and its
    offline stand-in), anything else as written. An entry {"full": item} is used in that profile only."""
    manifest = read_manifest()
    lines = []
    for item in data:
        if isinstance(item, dict):
            if profile not in item:
                lines.append(f"{' and '.join(map(str, item.values()))}: not used in the {profile} profile")
                continue
            item = item[profile]
        lines.append(describe_source(item) if item in manifest else str(item))
    return lines


def setup(quick: dict, full: dict, seed: int = 0, data=()) -> SimpleNamespace:
    """Pick the profile's settings, seed everything and print what this run uses: the profile and how to switch,
    the device, the Keras backend (if the calling notebook has imported Keras) and the data sources in `data` (see
    describe_data).

    Both profiles must set the same keys, so that the notebook runs the same code in both.
    """
    if quick.keys() != full.keys():
        raise ValueError(f"quick and full profiles set different keys: {sorted(quick.keys() ^ full.keys())}")
    name = profile_name()
    settings = {"quick": quick, "full": full}[name]
    device = describe_device()
    seed_everything(seed)
    backend = keras_backend(sys._getframe(1).f_globals)
    backend = f" | Keras backend: {backend}" if backend else ""
    print(f"Profile: {describe_profile()}")
    print(f"Device: {device}{backend} | seed: {seed}")
    for line in describe_data(data, name):
        print(f"Data: {line}")
    return SimpleNamespace(profile=name, device=device, seed=seed, **settings)


def log_dir(name: str) -> Path:
    """A folder for TensorBoard logs that outlives the kernel: $WORKSHOP_LOG_DIR/name, by default data/logs/name in
    the repository, created on demand. Where that cannot be written (a read-only checkout, the grading sandbox),
    a folder under the system's temporary folder instead, and a line saying so."""
    root = Path(os.environ.get("WORKSHOP_LOG_DIR") or REPO / "data" / "logs").expanduser()
    folder = root / name
    try:
        folder.mkdir(parents=True, exist_ok=True)
        if os.access(folder, os.W_OK):
            return folder.resolve()
        reason = "is not writable"
    except OSError as error:
        reason = f"cannot be created ({error.strerror})"
    fallback = Path(tempfile.gettempdir()) / "workshop-logs" / name
    fallback.mkdir(parents=True, exist_ok=True)
    print(f"{folder} {reason}: logs go to {fallback} instead (set WORKSHOP_LOG_DIR to keep them elsewhere)")
    return fallback
