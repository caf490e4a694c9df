"""How much slower is a forward+backward pass under GradientProbe than without it?

Run: python benchmarks/probe_overhead.py [--repeats 20] [--threads N]

For each model, alternates a plain forward+backward with the same pass inside GradientProbe
(--repeats pairs after warm-up) and prints the medians and the median per-pair ratio, then
the fixed start-up cost of `gradlint probe` (child interpreter + torch import) measured on
a tiny model.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a plain checkout

import torch  # noqa: E402
from torch import nn  # noqa: E402

from gradlint.probe import GradientProbe  # noqa: E402


def mlp() -> tuple[nn.Module, torch.Tensor]:
    layers: list[nn.Module] = []
    for _ in range(8):
        layers += [nn.Linear(1024, 1024), nn.ReLU()]
    return nn.Sequential(*layers, nn.Linear(1024, 10)), torch.randn(256, 1024)


def cnn() -> tuple[nn.Module, torch.Tensor]:
    def block(cin: int, cout: int) -> list[nn.Module]:
        return [nn.Conv2d(cin, cout, 3, padding=1), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)]

    model = nn.Sequential(*block(3, 32), *block(32, 32), nn.MaxPool2d(2), *block(32, 64),
                          *block(64, 64), nn.MaxPool2d(2), nn.Flatten(),
                          nn.Linear(64 * 8 * 8, 10))
    return model, torch.randn(64, 3, 32, 32)


def lstm() -> tuple[nn.Module, torch.Tensor]:
    class Tagger(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.lstm = nn.LSTM(64, 256, num_layers=2, batch_first=True)
            self.head = nn.Linear(256, 10)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            out: torch.Tensor = self.head(self.lstm(x)[0])
            return out

    return Tagger(), torch.randn(32, 100, 64)


MODELS: dict[str, Callable[[], tuple[nn.Module, torch.Tensor]]] = {
    "mlp 8x1024 (batch 256)": mlp, "cnn 4 conv+bn (64x3x32x32)": cnn,
    "lstm 2x256 (32x100x64)": lstm,
}


def paired(plain: Callable[[], None], probed: Callable[[], None], repeats: int
           ) -> tuple[float, float, float]:
    """Median plain time, median probed time and median per-pair ratio.

    Plain and probed passes alternate, so load from other processes hits both alike."""
    for _ in range(2):
        plain()
        probed()
    times: list[tuple[float, float]] = []
    for _ in range(repeats):
        start = time.perf_counter()
        plain()
        middle = time.perf_counter()
        probed()
        times.append((middle - start, time.perf_counter() - middle))
    return (statistics.median(t[0] for t in times), statistics.median(t[1] for t in times),
            statistics.median(t[1] / t[0] for t in times))


def measure(model: nn.Module, x: torch.Tensor, repeats: int
            ) -> tuple[tuple[float, float, float], tuple[float, float, float]]:
    r = None

    def plain() -> None:
        nonlocal r
        model.zero_grad(set_to_none=True)
        out = model(x)
        r = torch.randn(out.shape[1:]) if r is None else r
        ((out * r).sum() / out.shape[0]).backward()

    def probed(symmetry: bool) -> Callable[[], None]:
        def step() -> None:
            with GradientProbe(model, check_symmetry=symmetry):
                plain()
        return step

    return paired(plain, probed(False), repeats), paired(plain, probed(True), max(3, repeats // 4))


def startup_cost() -> float:
    """Wall time of `gradlint probe` on a tiny model: interpreter + torch import + IPC."""
    from gradlint.probe.runner import run_in_child
    from gradlint.probe.spec import InputSpec, ProbeSpec

    root = Path(__file__).resolve().parents[1]
    spec = ProbeSpec(target="tests/probe/models/zero_init.py:ZeroInitMLP",
                     inputs=(InputSpec((8, 32)),), cwd=str(root))
    start = time.perf_counter()
    run_in_child("probe", spec)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    print(f"torch {torch.__version__}, {args.threads} threads, medians over {args.repeats} "
          "alternating pairs")
    print(f"{'model':<28} {'plain ms':>9} {'probe ms':>9} {'ratio':>6} "
          f"{'1st pass ms':>12} {'ratio':>6}")
    for name, build in MODELS.items():
        model, x = build()
        (plain, probed, ratio), (_, first, first_ratio) = measure(model, x, args.repeats)
        print(f"{name:<28} {plain * 1e3:9.1f} {probed * 1e3:9.1f} {ratio:6.2f} "
              f"{first * 1e3:12.1f} {first_ratio:6.2f}")
    print("(1st pass = the initial step, which also checks every weight for symmetric units)")
    print(f"fixed start-up of `gradlint probe` (child process, torch import, tiny model): "
          f"{startup_cost():.2f} s")


if __name__ == "__main__":
    main()
