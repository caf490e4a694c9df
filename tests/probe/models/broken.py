"""Model files that misbehave while being imported or built."""

import os
import time

import torch
from torch import nn

if os.environ.get("GRADLINT_TEST_RAISE_AT_IMPORT"):
    raise RuntimeError("this model file fails at import")


class Hangs(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        while True:  # e.g. waiting for a dataset server that never answers
            time.sleep(0.05)


class Hog(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        # 64 GiB in 256 MiB blocks; address space counts even before the pages are touched
        self.blocks = [torch.empty(64, 1024, 1024) for _ in range(256)]


class NotAModule:
    pass


class NaNModel(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(32, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.log(self.fc(x))  # log of negative numbers: NaN
