"""GradientProbe: the context-manager API, hook hygiene, and what it measures."""

from __future__ import annotations

import dataclasses
import math

import pytest

torch = pytest.importorskip("torch")
from torch import nn  # noqa: E402

from gradlint.probe import GradientProbe, ProbeReport  # noqa: E402


def small_net(inplace: bool = True) -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(8, 16), nn.ReLU(inplace=inplace), nn.Linear(16, 4))


def hook_count(model: nn.Module) -> int:
    return sum(len(m._forward_hooks) for m in model.modules())


def test_hooks_are_removed_after_the_block():
    model = small_net()
    with GradientProbe(model) as probe:
        assert hook_count(model) > 0
        model(torch.randn(4, 8)).sum().backward()
    assert hook_count(model) == 0
    assert probe.report().steps[0].layers


def test_hooks_are_removed_when_the_block_raises():
    model = small_net()
    with pytest.raises(ValueError, match="user error"):
        with GradientProbe(model):
            model(torch.randn(4, 8))
            raise ValueError("user error")
    assert hook_count(model) == 0


def test_report_is_only_available_after_the_block():
    model = small_net()
    with GradientProbe(model) as probe:
        with pytest.raises(RuntimeError, match="after the with block"):
            probe.report()


def test_report_holds_plain_python_values_only():
    model = small_net()
    with GradientProbe(model) as probe:
        model(torch.randn(4, 8)).sum().backward()
    report = probe.report()

    def walk(value: object) -> None:
        assert not isinstance(value, torch.Tensor)
        if dataclasses.is_dataclass(value):
            for f in dataclasses.fields(value):
                walk(getattr(value, f.name))
        elif isinstance(value, (list, tuple)):
            for item in value:
                walk(item)
        elif isinstance(value, dict):
            for item in value.values():
                walk(item)
        else:
            assert value is None or isinstance(value, (bool, int, float, str))

    walk(report)
    assert ProbeReport.from_dict(report.to_dict()) == report


def test_inplace_relu_still_yields_output_gradients():
    model = small_net(inplace=True)
    with GradientProbe(model) as probe:
        model(torch.randn(32, 8)).sum().backward()
    first, last = probe.report().steps[0].layers
    assert first.name == "0" and last.name == "2"
    assert first.act_grad_rms is not None and first.act_grad_rms > 0
    assert last.act_grad_rms == pytest.approx(1.0)  # d(sum)/d(out) is all ones
    assert first.dead_fraction is None and first.out_std is not None


def test_gradient_wrt_output_matches_autograd():
    torch.manual_seed(0)
    layer = nn.Linear(8, 3)
    model = nn.Sequential(layer, nn.Tanh())
    x = torch.randn(5, 8)
    with GradientProbe(model) as probe:
        out = layer(x)
        out.retain_grad()
        model[1](out).pow(2).sum().backward()
    expected = out.grad
    stats = probe.report().steps[0].layers[0]
    assert stats.act_grad_rms == pytest.approx(float(expected.pow(2).mean().sqrt()), rel=1e-5)
    weight = next(p for p in stats.params if p.name == "weight")
    assert weight.grad_norm == pytest.approx(float(layer.weight.grad.norm()), rel=1e-6)
    assert weight.weight_norm == pytest.approx(float(layer.weight.detach().norm()), rel=1e-6)


def test_shared_layer_called_twice_is_accumulated():
    torch.manual_seed(0)
    shared = nn.Linear(6, 6)

    class Twice(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.shared = shared

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.shared(torch.relu(self.shared(x)))

    model = Twice()
    with GradientProbe(model) as probe:
        model(torch.randn(4, 6)).sum().backward()
    (layer,) = probe.report().steps[0].layers
    assert layer.calls == 2


def test_unused_layer_is_reported_without_a_gradient():
    class Unused(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.used = nn.Linear(4, 4)
            self.spare = nn.Linear(4, 4)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.used(x)

    model = Unused()
    with GradientProbe(model) as probe:
        model(torch.randn(8, 4)).sum().backward()
    report = probe.report()
    spare = next(m for m in report.steps[0].layers if m.name == "spare")
    assert all(p.grad_none for p in spare.params)
    (finding,) = [f for f in report.findings() if f.code == "GL206"]
    assert "`spare.weight`" in finding.message and "used" not in finding.message


def test_findings_point_at_the_defining_class():
    class Local(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.fc = nn.Linear(4, 4)
            nn.init.zeros_(self.fc.weight)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.fc(x).sum(dim=1, keepdim=True) * 0 + self.fc(x)

    model = Local()
    with GradientProbe(model) as probe:
        model(torch.randn(8, 4)).sum().backward()
    findings = probe.report().findings()
    assert findings, "an all-zero weight with identical gradient rows must be reported"
    assert findings[0].path.endswith("test_probe_hooks.py")
    import inspect

    assert findings[0].line == inspect.getsourcelines(Local)[1]
    assert not math.isnan(findings[0].end_column)
