"""The Trainer: algorithm, runners and store wired together."""

from agl_core.trainer.progress import Progress
from agl_core.trainer.result import FitResult, RunFailedError, SplitSummary
from agl_core.trainer.trainer import Trainer, default_rollout_config

__all__ = ["FitResult", "Progress", "RunFailedError", "SplitSummary", "Trainer", "default_rollout_config"]
