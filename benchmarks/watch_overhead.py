"""How much does `gradlint.watch` slow a real CPU training loop, at every=100 and every=1?

Run: python benchmarks/watch_overhead.py [--blocks 5] [--threads 1] [--models mlp,cnn,lstm]

A loop step is forward, cross entropy, zero_grad, backward, clip_grad_norm_ and an Adam step
on pre-generated batches. Each model trains in blocks of 100 steps, timed in user-mode CPU
time of this process (one thread), which a busy machine inflates far less than wall time;
kernel time is left out because it is mostly page faults of the memory allocator returning
and re-taking memory, which vary tenfold between identical blocks, watched or not. Watched
and plain blocks run on the same model and optimizer (so memory placement is the same): a
watched block attaches a fresh `Watch` before its timer starts and closes it after it stops
(its one-off set-up and end-of-run report are no per-step cost, but its first sampled step's
set-up is timed: an upper bound). Every round runs, for each `every`, a plain block right
next to a watched one, in the order plain, watched one round and watched, plain the next, so
drift and load from other processes hit both alike. The overhead is the median over rounds
of watched/plain - 1 within a pair, printed with its spread (lowest and highest pair). The
log is written to a temporary folder.
"""

from __future__ import annotations

import argparse
import gc
import io
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

try:
    import resource
except ImportError:  # not on Windows
    resource = None  # type: ignore[assignment]

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a plain checkout

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from torch import nn  # noqa: E402

from gradlint.watcher.core import Watch  # noqa: E402

BLOCK = 100  # steps per timed block: exactly one sampled step at every=100
EVERY = (100, 1)


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


def cpu_time() -> float:
    """User-mode CPU seconds of this process (all CPU time where getrusage is missing)."""
    if resource is None:
        return time.process_time()
    return resource.getrusage(resource.RUSAGE_SELF).ru_utime


def loop(model: nn.Module, optimizer: torch.optim.Optimizer,
         data: list[tuple[torch.Tensor, torch.Tensor]]) -> float:
    """One block: CPU seconds per step of a plain training loop over `data`."""
    gc.collect()  # every block starts with the same collector state
    start = cpu_time()
    for x, y in data:
        loss = F.cross_entropy(model(x), y)
        optimizer.zero_grad()
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
    return (cpu_time() - start) / len(data)


def measure(kind: str, blocks: int, folder: Path) -> tuple[list[float], dict[int, list[float]]]:
    """Seconds per step of every plain block, and of each `every`'s watched blocks (the pair
    of plain[i] is the i-th watched block of its `every`, in the order of EVERY per round)."""
    torch.manual_seed(0)
    model = MODELS[kind][1]()
    data = batches(kind, BLOCK)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)

    def watched(every: int) -> float:
        watch = Watch(model, optimizer, every=every, log=folder / f"{kind}-{every}.jsonl",
                      report=False, stream=io.StringIO())
        try:
            return loop(model, optimizer, data)
        finally:
            watch.close()

    plain: list[float] = []
    times: dict[int, list[float]] = {every: [] for every in EVERY}
    loop(model, optimizer, data)  # warm-up: allocator, Adam state, first watch set-up
    for every in EVERY:
        watched(every)
    for round_ in range(blocks):
        for every in EVERY if round_ % 2 == 0 else EVERY[::-1]:
            if round_ % 2 == 0:
                base, cost = loop(model, optimizer, data), watched(every)
            else:
                cost, base = watched(every), loop(model, optimizer, data)
            plain.append(base)
            times[every].append(cost)
    return plain, times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--blocks", type=int, default=5,
                        help="rounds; each times a plain and a watched block per `every`")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--models", default="mlp,cnn,lstm")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {args.threads} thread(s), user CPU time, "
          f"{args.blocks} rounds of plain/watched block pairs of {BLOCK} steps; overhead: "
          "median of per-pair ratios [lowest, highest] and fastest watched block over "
          "fastest plain one (load only ever slows a block)")
    print(f"{'model':<34} {'plain ms':>9} " + " ".join(f"{f'every={e}':>33}" for e in EVERY))
    with tempfile.TemporaryDirectory() as folder:
        for kind in args.models.split(","):
            plain, times = measure(kind, args.blocks, Path(folder))
            cells = " ".join(_overhead(plain, times[e], EVERY.index(e)) for e in EVERY)
            print(f"{MODELS[kind][0]:<34} {statistics.median(plain) * 1e3:9.2f} {cells}",
                  flush=True)


def _overhead(plain: list[float], watched: list[float], position: int) -> str:
    """Per-pair ratios of one `every` (its pairs are every len(EVERY)-th plain block, from
    `position` on even rounds and from the other end of the round on odd ones)."""
    bases = []
    for round_ in range(len(watched)):
        slot = position if round_ % 2 == 0 else len(EVERY) - 1 - position
        bases.append(plain[round_ * len(EVERY) + slot])
    ratios = [cost / base - 1 for cost, base in zip(watched, bases)]
    cell = (f"{statistics.median(ratios):+.1%} [{min(ratios):+.1%}, {max(ratios):+.1%}] "
            f"{min(watched) / min(plain) - 1:+.1%}")
    return f"{cell:>33}"


if __name__ == "__main__":
    main()
