"""The Trainer: algorithm, runners and store wired together."""

from typing import TYPE_CHECKING

from agl_core._lazy import lazy_exports

if TYPE_CHECKING:
    from agl_core.trainer.progress import Progress
    from agl_core.trainer.result import FitResult, RunFailedError, SplitSummary
    from agl_core.trainer.trainer import Trainer, default_rollout_config

# Loaded on first use: runner processes import trainer.components only, not the whole Trainer.
__getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "FitResult": "agl_core.trainer.result",
        "Progress": "agl_core.trainer.progress",
        "RunFailedError": "agl_core.trainer.result",
        "SplitSummary": "agl_core.trainer.result",
        "Trainer": "agl_core.trainer.trainer",
        "default_rollout_config": "agl_core.trainer.trainer",
    },
)

__all__ = ["FitResult", "Progress", "RunFailedError", "SplitSummary", "Trainer", "default_rollout_config"]
