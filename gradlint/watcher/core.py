"""`gradlint.watch`: the probe's measurements and verdicts inside the user's own training.

Hooks on the optimizer's step count steps and, every `every` steps, arm a sample:
forward hooks (and, where functional activations are, a torch function mode) for one
step, a hook on each parameter that reads the gradients when backward ends (before
clipping, unscaling or the update), and a copy of the weights just before the update to
measure it. Between samples only the two optimizer step hooks run (a counter).
"""

from __future__ import annotations

import atexit
import os
import time
from pathlib import Path
from types import TracebackType
from typing import Any, TextIO

import torch
from torch import nn

from gradlint.probe.spec import Thresholds
from gradlint.probe.target import model_location
from gradlint.watcher.collect import ModuleWatch, Sample
from gradlint.watcher.measure import build_record
from gradlint.watcher.output import Outputs
from gradlint.watcher.timeline import Episode, Timeline

DEFAULT_LOG = "gradlint-watch.jsonl"
# Tensors above this many entries have their update norm estimated from a fixed random
# sample of this many entries (relative error about 1/sqrt(UPDATE_SAMPLE), under 1 %).
UPDATE_SAMPLE = 16_384
# Modules whose gradient leaves whole rows at zero by design: nonzero entries are counted.
SPARSE_ROWS = frozenset({"Embedding", "EmbeddingBag"})


def unwrap(model: nn.Module) -> nn.Module:
    """The user's module inside DistributedDataParallel / DataParallel wrappers."""
    inner = getattr(model, "module", None)
    if isinstance(inner, nn.Module) and type(model).__name__ in (
        "DistributedDataParallel",
        "DataParallel",
    ):
        return inner
    return model


def torch_optimizer(optimizer: Any) -> torch.optim.Optimizer:
    """The torch optimizer under wrappers (accelerate's AcceleratedOptimizer, Lightning's),
    which may themselves subclass Optimizer without its step hooks."""
    for _ in range(4):
        inner = getattr(optimizer, "optimizer", None) or getattr(optimizer, "_optimizer", None)
        if not isinstance(inner, torch.optim.Optimizer) or inner is optimizer:
            break
        optimizer = inner
    if not isinstance(optimizer, torch.optim.Optimizer):
        raise TypeError(
            f"gradlint.watch needs a torch.optim.Optimizer, got {type(optimizer).__name__}"
        )
    return optimizer


class Watch:
    """Watches `model` trained by `optimizer`; see docs/watch.md for what it records."""

    def __init__(
        self,
        model: nn.Module,
        optimizer: Any,
        *,
        every: int = 100,
        log: str | os.PathLike[str] | None = DEFAULT_LOG,
        tensorboard: str | os.PathLike[str] | None = None,
        anomaly: bool = False,
        scaler: Any = None,
        thresholds: Thresholds | None = None,
        report: bool = True,
        verbose: bool = True,
        stream: TextIO | None = None,
    ) -> None:
        if isinstance(every, bool) or not isinstance(every, int) or every < 1:
            raise ValueError(f"gradlint.watch: every must be an integer >= 1, got {every!r}")
        self.model = unwrap(model)
        self.optimizer = torch_optimizer(optimizer)
        self.every = every
        self.scaler = scaler
        self.thresholds = thresholds or Thresholds()
        self.report = report
        self.verbose = verbose
        self.step = 0  # optimizer steps completed; the step in progress has this index
        self.location = model_location(self.model, type(self.model))
        self.timeline = Timeline(self.location, self.thresholds)
        self.outputs = Outputs(
            log=Path(log) if log is not None else None,
            tensorboard=Path(tensorboard) if tensorboard is not None else None,
            stream=stream,
            verbose=verbose,
        )
        self._anomaly = anomaly
        self._anomaly_found = False
        self._modules = ModuleWatch(self.model)
        self._params = _layer_params(self.model)
        self._sample: Sample | None = None
        self._loss: torch.Tensor | None = None
        self._before: list[torch.Tensor] | None = None
        self._update_index: list[torch.Tensor | None] | None = None
        self._update_scale = torch.ones(())
        self._queued = False
        self._param_handles: list[Any] = []
        self._closed = False
        self.report_text = ""  # the end-of-run report, once closed (rank 0 only)
        self._handles = [
            self.optimizer.register_step_pre_hook(self._pre_step),
            self.optimizer.register_step_post_hook(self._post_step),
        ]
        if anomaly:
            self._modules.anomaly = self._on_anomaly
            self._modules.attach()
        self._arm()
        atexit.register(self.close)

    # -- public ---------------------------------------------------------------------------

    def __enter__(self) -> Watch:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def record_loss(self, loss: torch.Tensor | float) -> None:
        """Log the loss with the current step's record (only kept on sampled steps)."""
        if self._sample is not None:
            self._loss = loss.detach() if isinstance(loss, torch.Tensor) else torch.tensor(loss)

    @property
    def episodes(self) -> list[Episode]:
        """Every verdict so far on this rank: when each GL2xx finding began (and ended)."""
        return list(self.timeline.episodes)

    def close(self) -> str:
        """Remove every hook, finish the log and return (and print) the end-of-run report."""
        if self._closed:
            return self.report_text
        self._closed = True
        atexit.unregister(self.close)
        for handle in self._handles + self._param_handles:
            handle.remove()
        self._handles, self._param_handles = [], []
        self._modules.detach()
        self._modules.anomaly = None
        self._sample, self._before, self._loss = None, None, None
        self.report_text = self.outputs.finish(self, print_report=self.report)
        return self.report_text

    # -- sampling -------------------------------------------------------------------------

    def _arm(self) -> None:
        """Start measuring the step in progress if it is a sampled one."""
        if self.step % self.every != 0:
            return
        self._sample = Sample()
        self._modules.sample = self._sample
        self._modules.attach()
        self._queued = False
        if self._param_handles:
            return  # still attached: the previous step was sampled too (every=1)
        for _, _, p in self._params:
            if p.requires_grad:
                hook = p.register_post_accumulate_grad_hook(self._grad_ready)  # type: ignore[no-untyped-call]
                self._param_handles.append(hook)

    def _disarm(self) -> None:
        self._sample = None
        self._modules.sample = None
        self._before, self._loss = None, None
        if (self.step + 1) % self.every == 0:
            return  # the next step is sampled as well: keep the hooks rather than re-adding
        if not (self._anomaly and not self._anomaly_found):
            self._modules.detach()
        for handle in self._param_handles:
            handle.remove()
        self._param_handles = []

    def _grad_ready(self, param: torch.Tensor) -> None:
        # Called as each gradient is accumulated; the reading happens once, when the whole
        # backward pass has finished and before anything (clipping, unscaling) changes it.
        if not self._queued:
            self._queued = True
            torch.autograd.Variable._execution_engine.queue_callback(self._backward_done)

    def _backward_done(self) -> None:
        self._queued = False  # a further backward (gradient accumulation) reads again
        sample = self._sample
        if sample is None:
            return
        present = [p.grad is not None and not p.grad.is_sparse for _, _, p in self._params]
        sample.grad_present = present
        params = [p for (_, _, p), ok in zip(self._params, present) if ok]
        grads = [p.grad for p in params if p.grad is not None]
        if not grads:
            return
        with torch.no_grad():
            norms = torch._foreach_norm(grads, 2, dtype=torch.float32)
            sample.grad_slice = sample.pending.add(torch.stack(list(norms)))
            # Entries with a nonzero gradient are counted where rows go untouched by design
            # (embeddings); elsewhere every entry counts (counting costs a pass per tensor).
            sample.grad_nonzero = {
                i: sample.pending.add(torch.count_nonzero(p.grad))
                for i, (layer, _, p) in enumerate(self._params)
                if present[i] and p.grad is not None and self._modules.types[layer] in SPARSE_ROWS
            }

    def _pre_step(self, optimizer: Any, args: Any, kwargs: Any) -> None:
        sample = self._sample
        if sample is None or not self._params:
            return
        weights = [p.detach() for _, _, p in self._params]
        with torch.no_grad():
            sample.weight_slice = sample.pending.add(
                torch.stack(list(torch._foreach_norm(weights, 2, dtype=torch.float32)))
            )
            self._before = self._update_sample(weights)

    def _post_step(self, optimizer: Any, args: Any, kwargs: Any) -> None:
        sample = self._sample
        if sample is not None and self._before is not None:
            with torch.no_grad():
                now = self._update_sample([p.detach() for _, _, p in self._params])
                torch._foreach_sub_(self._before, now)
                norms = torch.stack(list(torch._foreach_norm(self._before, 2, dtype=torch.float32)))
                sample.update_slice = sample.pending.add(norms * self._update_scale)
            self._before = None
            self._finish(sample)
        if sample is not None:
            self._disarm()
        self.step += 1
        self._arm()
        if self._sample is None and self._modules.anomaly is None and self._modules.attached:
            self._modules.detach()  # anomaly mode found its NaN/Inf; sampling needs no hooks now

    def _update_sample(self, weights: list[torch.Tensor]) -> list[torch.Tensor]:
        """The entries whose change measures the update: all of a small tensor, a fixed
        random sample of UPDATE_SAMPLE entries of a large one (copying every weight at
        every sampled step would cost as much as the optimizer step itself)."""
        if self._update_index is None:
            gen = torch.Generator().manual_seed(0)
            self._update_index = [
                None
                if w.numel() <= UPDATE_SAMPLE
                else torch.randint(0, w.numel(), (UPDATE_SAMPLE,), generator=gen).to(w.device)
                for w in weights
            ]
            scale = [
                1.0 if i is None else (w.numel() / UPDATE_SAMPLE) ** 0.5
                for w, i in zip(weights, self._update_index)
            ]
            self._update_scale = torch.tensor(scale, device=weights[0].device)
        return [
            w.clone() if index is None else w.reshape(-1).index_select(0, index)
            for w, index in zip(weights, self._update_index)
        ]

    def _finish(self, sample: Sample) -> None:
        loss = sample.pending.add(self._loss) if self._loss is not None else None
        sample.loss = loss
        scale = _loss_scale(self.scaler)
        lr = self.optimizer.param_groups[0].get("lr") if self.optimizer.param_groups else None
        rate = float(lr) if lr is not None else None
        record = build_record(sample, self.step, self._params, self._modules.types, scale, rate)
        record["time"] = round(time.time(), 3)
        begun = self.timeline.add(record)
        record["findings"] = [
            {"code": e.code, "name": e.name, "severity": e.severity, "since": e.start}
            for e in self.timeline.episodes
            if e.ended is None
        ]
        self.outputs.write_step(self, record, begun)

    def _on_anomaly(self, phase: str, module: str, op: str) -> None:
        if self._anomaly_found:
            return
        self._anomaly_found = True
        record = {
            "record": "anomaly",
            "step": self.step,
            "phase": phase,
            "module": module,
            "op": op,
        }
        episode = self.timeline.add_anomaly(record)
        self.outputs.write_anomaly(self, record, episode)
        # The hooks come off after this step (this runs inside the function mode's handler,
        # which must not be popped from under itself).
        self._modules.anomaly = None


def _layer_params(model: nn.Module) -> list[tuple[str, str, nn.Parameter]]:
    """(module name, parameter name, parameter) for every trainable-or-not parameter, each
    once (a tied weight belongs to the first module that holds it)."""
    seen: set[int] = set()
    result = []
    for name, module in model.named_modules():
        for pname, p in module.named_parameters(recurse=False):
            if id(p) in seen:
                continue
            seen.add(id(p))
            result.append((name, pname, p))
    return result


def _loss_scale(scaler: Any) -> float | None:
    if scaler is None or not getattr(scaler, "is_enabled", lambda: False)():
        return None
    return float(scaler.get_scale())


def rank_and_world() -> tuple[int, int]:
    dist = torch.distributed
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1
