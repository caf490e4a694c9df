"""A Hugging Face `TrainerCallback` running `gradlint.watch` inside `Trainer.train` (gradlint[hf]).

trainer = Trainer(..., callbacks=[gradlint.watcher.hf.WatchCallback(every=100)])
"""

from __future__ import annotations

from typing import Any

from transformers import TrainerCallback

from gradlint.watcher.core import DEFAULT_LOG, Watch


class WatchCallback(TrainerCallback):  # type: ignore[misc, unused-ignore]
    """Watches the Trainer's model and optimizer (unwrapped from accelerate's wrapper).

    The Trainer clips gradients (max_grad_norm) between backward and the optimizer step;
    the watch reads them when backward ends, before that clipping.
    """

    def __init__(self, every: int = 100, log: str | None = DEFAULT_LOG, **options: Any) -> None:
        self.every = every
        self.log_path = log
        self.options = options
        self.watch: Watch | None = None
        self.report = ""

    def on_train_begin(
        self,
        args: Any,
        state: Any,
        control: Any,
        model: Any = None,
        optimizer: Any = None,
        **kwargs: Any,
    ) -> None:
        if model is None or optimizer is None:
            return
        self.watch = Watch(model, optimizer, every=self.every, log=self.log_path, **self.options)

    def on_train_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if self.watch is not None:
            self.report = self.watch.close()
            self.watch = None
