"""Focused tests of gradlint.semantics.training_schedule (clipping and scheduler order)."""

from __future__ import annotations

import textwrap

import libcst as cst
import pytest

from gradlint.semantics.index import TorchIndex
from gradlint.semantics.training import training_facts
from gradlint.semantics.training_schedule import early_scheduler_steps, ineffective_clips


def _index(source: str) -> TorchIndex:
    return TorchIndex(cst.parse_module(textwrap.dedent(source)))


def _code(index: TorchIndex, node: cst.CSTNode | None) -> str | None:
    return None if node is None else index.module.code_for_node(node)


# -- clipping ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "imports, clip",
    [
        ("import torch", "torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)"),
        ("from torch.nn.utils import clip_grad_value_", "clip_grad_value_(model.parameters(), 1)"),
    ],
)
def test_clip_after_the_step_names_the_step(imports: str, clip: str) -> None:
    index = _index(f"""
        {imports}
        for x in loader:
            optimizer.zero_grad()
            model(x).sum().backward()
            optimizer.step()
            {clip}
    """)
    [found] = ineffective_clips(training_facts(index))
    assert found.after_step
    assert _code(index, found.other) == "optimizer.step()"


def test_clip_before_backward_names_the_backward() -> None:
    index = _index("""
        import torch
        def train_step(model, batch, optimizer):
            optimizer.zero_grad()
            loss = model(batch)
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            loss.backward()
            optimizer.step()
    """)
    [found] = ineffective_clips(training_facts(index))
    assert not found.after_step
    assert _code(index, found.other) == "loss.backward()"


def test_clip_between_backward_and_step_is_fine() -> None:
    index = _index("""
        import torch
        for x in loader:
            optimizer.zero_grad()
            model(x).sum().backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
    """)
    assert ineffective_clips(training_facts(index)) == []


def test_clip_order_hidden_by_a_local_helper_is_unknown() -> None:
    index = _index("""
        import torch
        def run(model, x):
            model(x).sum().backward()
        for x in loader:
            optimizer.step()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            run(model, x)
    """)
    assert ineffective_clips(training_facts(index)) == []


def test_norm_read_with_an_infinite_bound_is_not_clipping() -> None:
    index = _index("""
        import math
        import torch
        for x in loader:
            optimizer.zero_grad()
            model(x).sum().backward()
            optimizer.step()
            norm = torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm=math.inf)
    """)
    assert ineffective_clips(training_facts(index)) == []


# -- schedulers -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "imports, build",
    [
        ("import torch", "torch.optim.lr_scheduler.StepLR(optimizer, 10)"),
        ("from torch.optim.lr_scheduler import OneCycleLR", "OneCycleLR(optimizer, 0.1, 1000)"),
    ],
)
def test_scheduler_at_the_top_of_the_epoch(imports: str, build: str) -> None:
    index = _index(f"""
        {imports}
        sched = {build}
        for epoch in range(10):
            sched.step()
            for x in loader:
                optimizer.zero_grad()
                model(x).sum().backward()
                optimizer.step()
    """)
    [found] = early_scheduler_steps(training_facts(index))
    assert found.helper is None
    assert _code(index, found.optimizer_step) == "optimizer.step()"


def test_scheduler_before_a_local_train_function_names_it() -> None:
    index = _index("""
        import torch
        scheduler = torch.optim.lr_scheduler.MultiStepLR(optimizer, [30, 60])
        def train_epoch():
            for x in loader:
                optimizer.zero_grad()
                model(x).sum().backward()
                optimizer.step()
        def main():
            for epoch in range(90):
                scheduler.step()
                train_epoch()
    """)
    [found] = early_scheduler_steps(training_facts(index))
    assert found.helper == "train_epoch"


def test_scheduler_of_a_local_class_is_unknown() -> None:
    index = _index("""
        class Warmup:
            def step(self):
                self.count += 1
        sched = Warmup()
        for epoch in range(10):
            sched.step()
            for x in loader:
                optimizer.zero_grad()
                model(x).sum().backward()
                optimizer.step()
    """)
    assert early_scheduler_steps(training_facts(index)) == []


def test_scheduler_behind_an_outer_epoch_guard_is_left_alone() -> None:
    index = _index("""
        import torch
        scheduler = torch.optim.lr_scheduler.StepLR(optimizer, 10)
        for epoch in range(10):
            if epoch > 0:
                if scheduler is not None:
                    scheduler.step()
            for x in loader:
                optimizer.zero_grad()
                model(x).sum().backward()
                optimizer.step()
    """)
    assert early_scheduler_steps(training_facts(index)) == []


def test_a_profiler_step_is_no_optimizer_step() -> None:
    index = _index("""
        import torch
        scheduler = torch.optim.lr_scheduler.StepLR(optimizer, 10)
        for x in loader:
            scheduler.step()
            prof.step()
    """)
    assert early_scheduler_steps(training_facts(index)) == []
