"""Code the workshop notebooks share: run profiles, devices, data, plots and checks for the graded cells.

Import it before Keras or TensorFlow: importing it keeps TensorFlow's start-up messages out of the notebook
(workshop.quiet).
"""

from workshop import quiet

quiet.install()

from workshop.data import load_mnist  # noqa: E402 - after the hook, which must precede any import of TensorFlow
from workshop.grading import hidden_checks  # noqa: E402
from workshop.profile import describe_device, log_dir, profile_name, seed_everything, setup, use_profile  # noqa: E402

__all__ = ["describe_device", "hidden_checks", "load_mnist", "log_dir", "profile_name", "seed_everything", "setup",
           "use_profile"]
