import numpy as np
import pytest

import workshop
from workshop.profile import profile_name


def test_full_is_the_default(monkeypatch):
    monkeypatch.delenv("WORKSHOP_PROFILE", raising=False)
    assert profile_name() == "full"


def test_quick_is_read_from_the_environment(monkeypatch):
    monkeypatch.setenv("WORKSHOP_PROFILE", " Quick ")
    assert profile_name() == "quick"


def test_unknown_profile_is_refused(monkeypatch):
    monkeypatch.setenv("WORKSHOP_PROFILE", "fast")
    with pytest.raises(ValueError, match="quick, full"):
        profile_name()


def test_setup_returns_the_profile_settings_and_says_what_it_uses(monkeypatch, capsys):
    monkeypatch.setenv("WORKSHOP_PROFILE", "quick")
    cfg = workshop.setup(quick=dict(epochs=2), full=dict(epochs=20), seed=3)
    assert (cfg.profile, cfg.epochs, cfg.seed) == ("quick", 2, 3)
    printed = capsys.readouterr().out
    assert "Profile: quick" in printed and "device: cpu" in printed and "seed: 3" in printed


def test_profiles_must_set_the_same_keys():
    with pytest.raises(ValueError, match="lr"):
        workshop.setup(quick=dict(epochs=2), full=dict(epochs=20, lr=0.1))


def test_setup_seeds_numpy_and_torch():
    import torch

    workshop.seed_everything(5)
    first = np.random.rand(3), torch.rand(3)
    workshop.seed_everything(5)
    second = np.random.rand(3), torch.rand(3)
    assert np.array_equal(first[0], second[0]) and torch.equal(first[1], second[1])


def test_setup_names_the_keras_backend_once_keras_is_imported(capsys):
    import keras

    workshop.setup(quick={}, full={})
    assert f"Keras backend: {keras.backend.backend()}" in capsys.readouterr().out
