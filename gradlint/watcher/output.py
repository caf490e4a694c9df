"""Where a live watch writes: the JSON-lines log, TensorBoard, notices and the final report."""

from __future__ import annotations

import importlib.util
import sys
import time
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from gradlint import __version__
from gradlint.watcher.record import SCHEMA, dumps
from gradlint.watcher.report import RunSummary, check_static, render_text
from gradlint.watcher.timeline import Episode, merge_ranks

if TYPE_CHECKING:
    from gradlint.watcher.core import Watch


FLUSH_SECONDS = 1.0


def rank_log(path: Path, rank: int) -> Path:
    """Rank 0 writes `path`; rank r writes `<stem>.rank<r><suffix>` beside it."""
    return path if rank == 0 else path.with_name(f"{path.stem}.rank{rank}{path.suffix}")


class Outputs:
    """Opened lazily at the first record, once the process knows its rank."""

    def __init__(
        self,
        log: Path | None,
        tensorboard: Path | None,
        stream: TextIO | None,
        verbose: bool = True,
    ) -> None:
        self.log = log
        self.verbose = verbose
        self.tensorboard = tensorboard
        self.stream = stream
        self.rank, self.world = 0, 1
        self._file: TextIO | None = None
        self._writer: Any = None
        self._started = False
        self._flushed = 0.0
        if tensorboard is not None:
            if importlib.util.find_spec("tensorboard") is None:
                raise ImportError(
                    "gradlint.watch(tensorboard=...) needs TensorBoard: pip install tensorboard"
                ) from None

    def _start(self, watch: Watch) -> None:
        if self._started:
            return
        self._started = True
        from gradlint.watcher.core import rank_and_world

        self.rank, self.world = rank_and_world()
        watch.timeline.rank = self.rank
        if self.log is not None:
            path = rank_log(self.log, self.rank)
            path.parent.mkdir(parents=True, exist_ok=True)
            # Appended, never truncated: a log from an earlier run is not lost; readers take
            # the last run in the file.
            self._file = path.open("a", encoding="utf-8")
            self._write(
                {
                    "record": "run",
                    "schema": SCHEMA,
                    "gradlint": __version__,
                    "model": watch.location.name,
                    "location": asdict(watch.location),
                    "every": watch.every,
                    "rank": self.rank,
                    "world_size": self.world,
                    "anomaly": watch._anomaly,
                    "thresholds": asdict(watch.thresholds),
                    "started": round(time.time(), 3),
                }
            )
        if self.tensorboard is not None and self.rank == 0:
            from torch.utils.tensorboard import SummaryWriter

            self._writer = SummaryWriter(log_dir=str(self.tensorboard))

    def _write(self, record: dict[str, Any]) -> None:
        if self._file is not None:
            self._file.write(dumps(record) + "\n")
            now = time.monotonic()
            if now - self._flushed >= FLUSH_SECONDS or record["record"] != "step":
                self._file.flush()  # a crashed run loses at most the last second of records
                self._flushed = now

    def write_step(self, watch: Watch, record: dict[str, Any], begun: list[Episode]) -> None:
        self._start(watch)
        record["rank"] = self.rank
        self._write(record)
        if self._writer is not None:
            _scalars(self._writer, record)
        self._notice(begun)

    def write_anomaly(self, watch: Watch, record: dict[str, Any], episode: Episode | None) -> None:
        self._start(watch)
        record["rank"] = self.rank
        self._write(record)
        self._notice([episode] if episode else [])

    def _notice(self, begun: list[Episode]) -> None:
        if self.rank != 0 or not self.verbose:
            return
        for episode in begun:
            if episode.severity == "info":
                continue
            print(
                f"gradlint watch: {episode.code} {episode.name}: {episode.headline}: "
                f"{episode.message}",
                file=self.stream or sys.stderr,
            )

    def finish(self, watch: Watch, print_report: bool) -> str:
        self._start(watch)
        episodes = watch.timeline.episodes
        self._write(
            {
                "record": "end",
                "step": watch.step,
                "samples": watch.timeline.samples,
                "episodes": [e.to_dict() for e in episodes],
            }
        )
        gathered = _gather([e.to_dict() for e in episodes], self.world)
        if self._file is not None:
            self._file.close()
            self._file = None
        if self._writer is not None:
            self._writer.close()
            self._writer = None
        if self.rank != 0:
            return ""
        logs = []
        if self.log is not None:
            logs = [str(rank_log(self.log, r)) for r in range(self.world)]
        summary = RunSummary(
            location=watch.location,
            steps=watch.step,
            samples=watch.timeline.samples,
            every=watch.every,
            world_size=self.world,
            episodes=tuple(
                (e, tuple(r))
                for e, r in merge_ranks([[Episode.from_dict(d) for d in g] for g in gathered])
            ),
            last_step=watch.timeline.last_step,
            logs=tuple(logs),
        )
        text = render_text(summary, check_static(summary))
        if print_report:
            print(text, end="", file=self.stream or sys.stderr)
        return text


def _gather(mine: list[dict[str, Any]], world: int) -> list[list[dict[str, Any]]]:
    """Every rank's episodes on rank 0 (all ranks must call this: it is a collective)."""
    if world <= 1:
        return [mine]
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()):
        return [mine]  # the process group is gone (closed at exit): report this rank alone
    rank = dist.get_rank()
    gathered: list[Any] = [None] * world if rank == 0 else []
    dist.gather_object(mine, gathered if rank == 0 else None, dst=0)
    return [g for g in gathered if g is not None] if rank == 0 else [mine]


def _scalars(writer: Any, record: dict[str, Any]) -> None:
    step = record["step"]
    for key in ("grad_norm", "loss", "loss_scale", "lr"):
        value = record.get(key)
        if isinstance(value, (int, float)):
            writer.add_scalar(f"gradlint/{key}", value, step)
    for layer in record["layers"]:
        for key in ("grad_rms", "update_ratio"):
            value = layer.get(key)
            if isinstance(value, (int, float)):
                writer.add_scalar(f"gradlint/{key}/{layer['name'] or 'model'}", value, step)
    for act in record["activations"]:
        for key in ("dead_fraction", "saturated_fraction"):
            value = act.get(key)
            if isinstance(value, (int, float)):
                writer.add_scalar(f"gradlint/{key}/{act['name']}", value, step)
