"""gradlint.watch in a plain training loop: what it records and when verdicts begin."""

from __future__ import annotations

import json
import math

import pytest

torch = pytest.importorskip("torch")
from torch import nn  # noqa: E402

import gradlint  # noqa: E402
from gradlint.watcher.record import read_runs  # noqa: E402

from .models import DeepSigmoid, Mlp, train  # noqa: E402


def _episodes(watch, code):
    return [e for e in watch.episodes if e.code == code]


def test_records_every_nth_step_with_a_stable_schema(tmp_path):
    log = tmp_path / "run.jsonl"
    watch, report = train(Mlp(), 10, every=3, log=log)
    run = read_runs(log)[-1]
    assert [r["step"] for r in run.steps] == [0, 3, 6, 9]
    assert run.header["schema"] == 1 and run.header["every"] == 3
    assert run.end is not None and run.end["step"] == 10
    record = run.steps[0]
    assert [layer["name"] for layer in record["layers"]] == ["fc1", "fc2", "out"]
    fc1 = record["layers"][0]
    assert fc1["grad_norm"] > 0 and fc1["weight_norm"] > 0 and 0 < fc1["update_ratio"] < 1
    names = {a["name"]: a for a in record["activations"]}
    assert names["relu"]["dead_fraction"] is not None  # functional F.relu in forward
    assert names["tanh"]["saturated_fraction"] is not None  # functional torch.tanh
    assert record["batch_size"] == 32
    assert "3 optimizer steps" not in report and "10 optimizer steps" in report


def test_gradient_norm_is_read_before_clipping_and_update_matches_sgd(tmp_path):
    model = Mlp()
    seen = {}

    def remember(step, model, optimizer, x):
        if step == 0:
            seen["weight"] = model.fc2.weight.detach().clone()

    log = tmp_path / "run.jsonl"
    train(model, 1, every=1, log=log, fault=remember, clip=1e-3)
    record = read_runs(log)[-1].steps[0]
    fc2 = next(layer for layer in record["layers"] if layer["name"] == "fc2")
    weight = next(p for p in fc2["params"] if p["name"] == "weight")
    # clipping to 1e-3 happened after backward; the watch saw the raw gradient
    assert record["grad_norm"] > 1e-2
    # SGD without momentum: |update| = lr * |clipped grad|, far below lr * |raw grad|
    moved = float((model.fc2.weight.detach() - seen["weight"]).norm())
    assert weight["update_norm"] == pytest.approx(moved, rel=1e-4)
    assert weight["update_norm"] < 0.05 * weight["grad_norm"] / 10


def test_a_learning_rate_jump_is_dated_at_the_first_sampled_step_after_it(tmp_path):
    def jump(step, model, optimizer, x):
        if step == 23:
            for group in optimizer.param_groups:
                group["lr"] = 50.0

    watch, report = train(Mlp(), 40, every=5, log=tmp_path / "run.jsonl", fault=jump)
    faults = [e for e in watch.episodes if e.code in ("GL202", "GL205")]
    assert faults, report
    assert min(e.start for e in faults) == 25
    assert all(e.start >= 25 for e in watch.episodes), report
    assert "from step 25" in report


def test_nan_weights_name_the_step_and_the_module(tmp_path):
    def poison(step, model, optimizer, x):
        if step == 16:  # a sampled step: forward shows where NaN enters
            with torch.no_grad():
                model.fc2.weight[0, 0] = math.nan

    watch, report = train(Mlp(), 30, every=4, log=tmp_path / "run.jsonl", fault=poison)
    (nan,) = _episodes(watch, "GL205")
    assert (nan.start, nan.where) == (16, "fc2")
    assert "NaN/Inf first at step 16 in `fc2`" in report


def test_anomaly_mode_names_the_exact_step_and_operation(tmp_path):
    def infinite_input(step, model, optimizer, x):
        if step == 13:
            x[0, 0] = math.inf

    log = tmp_path / "run.jsonl"
    watch, report = train(Mlp(), 20, every=10, log=log, fault=infinite_input, anomaly=True)
    (nan,) = _episodes(watch, "GL205")
    assert (nan.start, nan.where) == (13, "fc1.linear")
    anomalies = read_runs(log)[-1].anomalies
    assert [(a["step"], a["module"], a["op"]) for a in anomalies] == [(13, "fc1", "linear")]


def test_vanishing_gradient_from_step_0(tmp_path):
    watch, report = train(DeepSigmoid(), 6, every=2, log=tmp_path / "run.jsonl")
    (vanishing,) = _episodes(watch, "GL201")
    assert vanishing.start == 0 and vanishing.ended is None
    assert "vanishing gradient from step 0" in report


def test_dead_functional_relu_since_the_step_its_bias_collapsed(tmp_path):
    def kill(step, model, optimizer, x):
        if step == 7:
            with torch.no_grad():
                model.fc1.bias.fill_(-100.0)

    watch, report = train(Mlp(), 12, every=3, log=tmp_path / "run.jsonl", fault=kill, lr=0.0)
    (dead,) = _episodes(watch, "GL203")
    assert dead.start == 9
    assert "`relu`" in dead.message and "100% of units" in dead.message


def test_healthy_training_gives_no_verdict(tmp_path):
    watch, report = train(Mlp(), 20, every=2, log=tmp_path / "run.jsonl")
    assert watch.episodes == [], report
    assert "no runtime findings" in report


def test_hooks_are_gone_after_close_and_the_with_form_closes(tmp_path):
    model = Mlp()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    with gradlint.watch(model, optimizer, every=1, log=tmp_path / "a.jsonl", report=False):
        model(torch.randn(4, 16)).sum().backward()
        optimizer.step()
    assert not model._forward_hooks and not model.fc1._forward_pre_hooks
    assert not optimizer._optimizer_step_pre_hooks and not optimizer._optimizer_step_post_hooks
    assert all(not p._post_accumulate_grad_hooks for p in model.parameters())


def test_gradient_accumulation_reads_the_summed_gradient(tmp_path):
    model = nn.Linear(4, 2)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.0)
    log = tmp_path / "run.jsonl"
    with gradlint.watch(model, optimizer, every=1, log=log, report=False):
        x = torch.randn(8, 4)
        for _ in range(3):
            model(x).sum().backward()
        expected = float(model.weight.grad.norm())
        optimizer.step()
    layer = read_runs(log)[-1].steps[0]["layers"][0]
    weight = next(p for p in layer["params"] if p["name"] == "weight")
    assert weight["grad_norm"] == pytest.approx(expected, rel=1e-5)
    assert layer["calls"] == 3


def test_loss_scale_under_a_grad_scaler_and_unscaled_norms(tmp_path):
    model = nn.Linear(4, 2)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.0)
    scaler = torch.amp.GradScaler("cpu", init_scale=1024.0)
    log = tmp_path / "run.jsonl"
    x = torch.randn(8, 4)
    with gradlint.watch(model, optimizer, every=1, log=log, scaler=scaler, report=False):
        scaler.scale(model(x).sum()).backward()
        scaled = float(model.weight.grad.norm())
        scaler.step(optimizer)
        scaler.update()
    record = read_runs(log)[-1].steps[0]
    assert record["loss_scale"] == 1024.0
    weight = next(p for p in record["layers"][0]["params"] if p["name"] == "weight")
    assert weight["grad_norm"] == pytest.approx(scaled / 1024.0, rel=1e-5)


def test_every_must_be_a_positive_integer(tmp_path):
    model = nn.Linear(2, 2)
    with pytest.raises(ValueError, match="every must be an integer >= 1"):
        gradlint.watch(model, torch.optim.SGD(model.parameters(), lr=0.1), every=0)


def test_a_second_run_appends_to_the_log(tmp_path):
    log = tmp_path / "run.jsonl"
    train(Mlp(), 2, every=1, log=log)
    train(Mlp(), 3, every=1, log=log)
    runs = read_runs(log)
    assert [len(r.steps) for r in runs] == [2, 3]
    assert all(json.loads(line) for line in log.read_text().splitlines())


@pytest.mark.slow  # importing TensorBoard's event writer and reader takes ~20 s here
def test_tensorboard_scalars_when_tensorboard_is_installed(tmp_path):
    pytest.importorskip("tensorboard")
    board = tmp_path / "tb"
    train(Mlp(), 3, every=1, log=None, tensorboard=board)
    (events,) = board.glob("events.out.tfevents.*")
    assert events.stat().st_size > 0
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    tags = EventAccumulator(str(board)).Reload().Tags()["scalars"]
    assert {"gradlint/grad_norm", "gradlint/grad_rms/fc1", "gradlint/update_ratio/out"} <= set(
        tags
    )
    assert "gradlint/dead_fraction/relu" in tags
