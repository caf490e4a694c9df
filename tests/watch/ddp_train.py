"""Run by test_watch_ddp under `torchrun --nproc_per_node 2` (CPU, gloo): each rank watches."""

from __future__ import annotations

import sys
from pathlib import Path

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn
from torch.nn.parallel import DistributedDataParallel

import gradlint


class Net(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc1 = nn.Linear(8, 16)
        self.out = nn.Linear(16, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(F.relu(self.fc1(x)))


def main() -> None:
    log, report = Path(sys.argv[1]), Path(sys.argv[2])
    torch.set_num_threads(1)
    dist.init_process_group("gloo")
    rank = dist.get_rank()
    torch.manual_seed(0)
    model = DistributedDataParallel(Net())
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05)
    torch.manual_seed(100 + rank)  # each rank its own batches
    with gradlint.watch(model, optimizer, every=2, log=log, report=False) as watch:
        for step in range(6):
            x = torch.randn(16, 8)
            if step == 3 and rank == 1:
                x[0, 0] = float("nan")  # a fault on one rank only
            loss = F.cross_entropy(model(x), torch.randint(0, 2, (16,)))
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    text = watch.report_text
    if rank == 0:
        report.write_text(text)
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
