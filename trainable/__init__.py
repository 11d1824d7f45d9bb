"""The experiment itself: one subliminal-learning trial in torch, with no knowledge of Ray Tune."""

from sublim.core.config import ConfigError, TrialConfig
from sublim.core.files import DataError, InstallError
from sublim.core.mnist import Mnist, load_mnist
from sublim.core.versions import check_torchvision

from .data import TrialData
from .results import write_trial_outputs
from .trial import DistillationTargets, Diverged, Teacher, Trial, resolve_device, student_init_stream, train_teacher

__all__ = [
    "ConfigError", "DataError", "DistillationTargets", "Diverged", "InstallError", "Mnist", "Teacher", "Trial",
    "TrialConfig", "TrialData", "check_torchvision", "load_mnist", "resolve_device", "student_init_stream",
    "train_teacher", "write_trial_outputs",
]
