"""The gradient-flow chart draws zero and missing gradients as such (needs matplotlib)."""

from __future__ import annotations

import pytest

pytest.importorskip("matplotlib")

from gradlint.probe.plot import _kind, plot_gradient_flow  # noqa: E402
from gradlint.probe.spec import Thresholds  # noqa: E402
from gradlint.probe.stats import Location, ModuleStats, ParamStats, ProbeReport, StepReport  # noqa: E402,E501


def layer(name: str, grad: float | None, order: int, frozen: bool = False) -> ModuleStats:
    param = ParamStats(name="weight", shape=(4, 4), requires_grad=not frozen,
                       grad_none=grad is None, grad_norm=(grad or 0) * 4, weight_norm=1.0,
                       grad_mean_abs=grad or 0.0, grad_max_abs=grad or 0.0,
                       grad_nonzero=16 if grad else 0)
    return ModuleStats(name=name, type="Linear", kind="layer", order=order, calls=1,
                       out_std=1.0, act_grad_rms=grad, params=(param,))


def test_zero_and_missing_gradients_are_drawn_and_frozen_layers_left_out(tmp_path):
    layers = (layer("a", 1e-2, 0), layer("cut", None, 1), layer("zero", 0.0, 2),
              layer("frozen", None, 3, frozen=True), layer("head", 1e-1, 4))
    assert [_kind(m) for m in layers if m.trained_params] == ["some", "none", "zero", "some"]
    report = ProbeReport((StepReport(0, layers, 1.0),), Location("m.py", 1, name="M"), 8)
    chart = tmp_path / "flow.png"
    plot_gradient_flow(report, Thresholds(), chart)
    assert chart.read_bytes()[:4] == b"\x89PNG"


def test_a_wide_model_stays_within_the_page(tmp_path):
    import matplotlib.image

    layers = tuple(layer(f"l{i}", 1e-2, i) for i in range(300))
    report = ProbeReport((StepReport(0, layers, 1.0),), Location("m.py", 1, name="M"), 8)
    chart = tmp_path / "wide.png"
    plot_gradient_flow(report, Thresholds(), chart)
    height, width = matplotlib.image.imread(chart).shape[:2]
    assert width <= 2000 and height >= 500
