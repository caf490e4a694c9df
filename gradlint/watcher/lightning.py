"""A Lightning callback that runs `gradlint.watch` inside `Trainer.fit` (gradlint[lightning]).

trainer = Trainer(callbacks=[gradlint.watcher.lightning.WatchCallback(every=100)])
"""

from __future__ import annotations

from typing import Any

import torch

try:
    from lightning.pytorch.callbacks import Callback
except ImportError:  # the older package name
    from pytorch_lightning.callbacks import Callback  # type: ignore[assignment, unused-ignore]

from gradlint.watcher.core import DEFAULT_LOG, Watch


class WatchCallback(Callback):  # type: ignore[misc, unused-ignore]
    """Watches the LightningModule and its first optimizer from the first training step.

    Lightning runs forward and backward inside `optimizer.step(closure)`; the watch's
    gradient reading still happens when backward ends, before Lightning clips.
    """

    def __init__(self, every: int = 100, log: str | None = DEFAULT_LOG, **options: Any) -> None:
        super().__init__()
        self.every = every
        self.log_path = log
        self.options = options
        self.watch: Watch | None = None
        self.report = ""

    def on_train_start(self, trainer: Any, pl_module: Any) -> None:
        if not trainer.optimizers:
            return  # manual optimisation without a configured optimizer: nothing to hook
        precision = getattr(trainer.strategy, "precision_plugin", None)
        self.watch = Watch(
            pl_module,
            trainer.optimizers[0],
            every=self.every,
            log=self.log_path,
            scaler=self.options.pop("scaler", getattr(precision, "scaler", None)),
            **self.options,
        )

    def on_before_backward(self, trainer: Any, pl_module: Any, loss: torch.Tensor) -> None:
        if self.watch is not None:
            self.watch.record_loss(loss)

    def on_train_end(self, trainer: Any, pl_module: Any) -> None:
        if self.watch is not None:
            self.report = self.watch.close()
            self.watch = None

    def on_exception(self, trainer: Any, pl_module: Any, exception: BaseException) -> None:
        self.on_train_end(trainer, pl_module)
