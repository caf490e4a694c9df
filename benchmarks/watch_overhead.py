"""How much does `gradlint.watch` slow a real CPU training loop, at every=100 and every=1?

Run: python benchmarks/watch_overhead.py [--blocks 5] [--threads 1] [--models mlp,cnn,lstm]

Each model is trained three times side by side from the same start: a plain loop, the same
loop under `gradlint.watch(every=100)` and under `gradlint.watch(every=1)`. A loop step is
forward, cross entropy, zero_grad, backward, clip_grad_norm_ and an Adam step on
pre-generated batches. Blocks of 100 steps alternate between the three loops, so load from
other processes hits all alike, and each block is timed in CPU time of this process (one
thread), which a busy machine inflates far less than wall time; the table shows median
milliseconds per step and the overhead of the median block over the plain one. Watches are
attached before timing (their one-off set-up is not a per-step cost) and write their
JSON-lines log to a temporary folder.
"""

from __future__ import annotations

import argparse
import copy
import io
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a plain checkout

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from torch import nn  # noqa: E402

from gradlint.watcher.core import Watch  # noqa: E402

BLOCK = 100  # steps per timed block: exactly one sampled step at every=100


class Mlp(nn.Module):
    """MNIST-sized classifier."""

    def __init__(self) -> None:
        super().__init__()
        self.fc1, self.fc2, self.out = nn.Linear(784, 512), nn.Linear(512, 512), nn.Linear(512, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(F.relu(self.fc2(F.relu(self.fc1(x)))))


def cnn() -> nn.Module:
    def block(cin: int, cout: int) -> list[nn.Module]:
        return [nn.Conv2d(cin, cout, 3, padding=1), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)]

    return nn.Sequential(*block(3, 16), nn.MaxPool2d(2), *block(16, 32), nn.MaxPool2d(2),
                         *block(32, 32), nn.Flatten(), nn.Linear(32 * 8 * 8, 10))


class LstmLm(nn.Module):
    """Word-level language model: embedding, 2-layer LSTM, tied-size decoder."""

    def __init__(self, vocab: int = 2000) -> None:
        super().__init__()
        self.embed = nn.Embedding(vocab, 128)
        self.lstm = nn.LSTM(128, 256, num_layers=2, batch_first=True)
        self.decoder = nn.Linear(256, vocab)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.decoder(self.lstm(self.embed(ids))[0])
        return out.reshape(-1, out.shape[-1])


def batches(kind: str, count: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    if kind == "mlp":
        return [(torch.randn(64, 784), torch.randint(0, 10, (64,))) for _ in range(count)]
    if kind == "cnn":
        return [(torch.randn(32, 3, 32, 32), torch.randint(0, 10, (32,))) for _ in range(count)]
    ids = [torch.randint(0, 2000, (16, 33)) for _ in range(count)]
    return [(i[:, :-1], i[:, 1:].reshape(-1)) for i in ids]


MODELS: dict[str, tuple[str, Callable[[], nn.Module]]] = {
    "mlp": ("MLP 784-512-512-10, batch 64", Mlp),
    "cnn": ("CNN 3 conv+bn, 32x3x32x32", cnn),
    "lstm": ("LSTM LM 2x256, vocab 2000, 16x32", LstmLm),
}


def loop(model: nn.Module, data: list[tuple[torch.Tensor, torch.Tensor]]) -> Callable[[], float]:
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    model.optimizer = optimizer  # type: ignore[assignment]  # for the watch below

    def run() -> float:
        start = time.process_time()
        for x, y in data:
            loss = F.cross_entropy(model(x), y)
            optimizer.zero_grad()
            loss.backward()
            nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
        return time.process_time() - start

    return run


def measure(kind: str, blocks: int, folder: Path) -> tuple[float, float, float]:
    torch.manual_seed(0)
    base = MODELS[kind][1]()
    data = batches(kind, BLOCK)
    plain, sparse, dense = (copy.deepcopy(base) for _ in range(3))
    runs = {name: loop(m, data) for name, m in (("plain", plain), ("100", sparse), ("1", dense))}
    watches = [
        Watch(m, m.optimizer, every=every, log=folder / f"{kind}-{every}.jsonl", report=False,
              stream=io.StringIO())
        for m, every in ((sparse, 100), (dense, 1))
    ]
    for run in runs.values():  # warm-up block each
        run()
    times: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(blocks):
        for name, run in runs.items():
            times[name].append(run())
    for watch in watches:
        watch.close()
    return tuple(statistics.median(times[n]) / BLOCK for n in ("plain", "100", "1"))  # type: ignore[return-value]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--blocks", type=int, default=5, help="timed 100-step blocks per loop")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--models", default="mlp,cnn,lstm")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {args.threads} thread(s), process CPU time, median of "
          f"{args.blocks} alternating blocks of {BLOCK} steps")
    print(f"{'model':<34} {'plain ms':>9} {'every=100':>10} {'overhead':>9} {'every=1':>8} "
          f"{'overhead':>9}")
    with tempfile.TemporaryDirectory() as folder:
        for kind in args.models.split(","):
            plain, sparse, dense = measure(kind, args.blocks, Path(folder))
            print(f"{MODELS[kind][0]:<34} {plain * 1e3:9.2f} {sparse * 1e3:10.2f} "
                  f"{sparse / plain - 1:9.1%} {dense * 1e3:8.2f} {dense / plain - 1:9.1%}")


if __name__ == "__main__":
    main()
