"""What a sampled step costs: the function mode only where functional activations are, and
statistics of large outputs from evenly spaced entries, with NaN/Inf still found anywhere."""

from __future__ import annotations

import json
import math

import pytest

torch = pytest.importorskip("torch")
from torch import nn  # noqa: E402

from gradlint.watcher import collect  # noqa: E402
from gradlint.watcher.record import read_runs  # noqa: E402

from .models import Mlp, train  # noqa: E402


@pytest.fixture
def mode_entries(monkeypatch):
    """How many forwards ran inside the watch's function mode."""
    entered = []
    enter = collect.FunctionWatch.__enter__

    def counting(self):
        entered.append(1)
        return enter(self)

    monkeypatch.setattr(collect.FunctionWatch, "__enter__", counting)
    return entered


def _activations(record):
    return {a["name"]: a for a in record["activations"]}


def test_activation_modules_are_measured_without_the_function_mode(tmp_path, mode_entries):
    model = nn.Sequential(
        nn.Linear(16, 32), nn.ReLU(), nn.Linear(32, 32), nn.Sigmoid(), nn.Linear(32, 4)
    )
    log = tmp_path / "run.jsonl"
    train(model, 4, every=1, log=log)
    # the first sampled forward looks for functional activations; it found none
    assert len(mode_entries) == 1
    for record in read_runs(log)[-1].steps:
        acts = _activations(record)
        assert acts["1"]["type"] == "ReLU" and 0 <= acts["1"]["dead_fraction"] < 1
        assert acts["3"]["type"] == "Sigmoid" and acts["3"]["saturated_fraction"] is not None
        assert [a["order"] for a in record["activations"]] == sorted(
            a["order"] for a in record["activations"]
        )


def _squash(x):
    return torch.tanh(x)


class HiddenTanh(nn.Module):
    """Its activation is called through a helper outside the class."""

    def __init__(self) -> None:
        super().__init__()
        self.fc, self.out = nn.Linear(16, 32), nn.Linear(32, 4)

    def forward(self, x):
        return self.out(_squash(self.fc(x)))


def test_a_functional_activation_found_by_the_first_sample_is_watched_after(tmp_path, mode_entries):
    assert not collect.names_functional_activation(HiddenTanh())
    assert collect.names_functional_activation(Mlp())  # F.relu and torch.tanh in forward
    log = tmp_path / "run.jsonl"
    train(HiddenTanh(), 6, every=2, log=log)
    steps = read_runs(log)[-1].steps
    assert len(mode_entries) == len(steps) == 3
    assert all(_activations(r)["tanh"]["type"] == "functional tanh" for r in steps)


class Poison(nn.Module):
    """Puts NaN in entry 1 of its input, never among the evenly spaced entries, when on."""

    def __init__(self) -> None:
        super().__init__()
        self.on = False

    def forward(self, x):
        if not self.on:
            return x
        x = x.clone()
        x.view(-1)[1] = math.nan
        return x


def test_large_outputs_are_summarised_from_a_sample_and_nan_is_found_anywhere(tmp_path):
    model = nn.Sequential(nn.Linear(16, 4096), nn.ReLU(), Poison(), nn.Linear(4096, 4))
    assert 32 * 4096 > 16 * collect.SAMPLE
    log = tmp_path / "run.jsonl"

    def poison(step, model, optimizer, x):
        model[2].on = step == 2

    watch, _ = train(model, 3, every=1, log=log, fault=poison, lr=0.0)
    first, _, poisoned = read_runs(log)[-1].steps
    assert first["layers"][0]["out_std"] > 0 and not first["nonfinite_modules"]
    assert 0 <= _activations(first)["1"]["dead_fraction"] < 0.1  # fresh: almost all fire
    (nan,) = [e for e in watch.episodes if e.code == "GL205"]
    assert (nan.start, nan.where) == (2, "2")
    assert [m["name"] for m in poisoned["nonfinite_modules"]] == ["2", ""]
    assert poisoned["layers"][-1]["nonfinite_forward"]
    line = log.read_text().splitlines()[-2]  # the poisoned step, before the end record
    assert json.loads(line)["step"] == 2 and '"nan"' in line


def test_the_sampled_standard_deviation_is_close_to_the_full_one():
    torch.manual_seed(0)
    for shape in ((32, 16, 32, 32), (512, 2000), (64, 4097)):
        out = torch.randn(shape) * torch.linspace(0.5, 2.0, shape[-1])
        assert float(collect._std(out)) == pytest.approx(float(out.std()), rel=0.05)
    out[0, 5] = math.inf
    assert math.isnan(float(collect._std(out)))
    relu = torch.randn(32, 4096).relu()
    relu[:, ::2] = 0.0  # every other unit dead
    assert float(collect._tail_fraction(relu, "dead")) == pytest.approx(0.5, abs=0.05)
