"""Focused tests of the training-step helpers in gradlint.semantics.training / recurrent."""

from __future__ import annotations

import textwrap

import libcst as cst
import pytest

from gradlint.semantics import recurrent
from gradlint.semantics.index import TorchIndex
from gradlint.semantics.training import TrainingFacts, training_facts


def facts_of(source: str) -> TrainingFacts:
    return training_facts(TorchIndex(cst.parse_module(textwrap.dedent(source))))


def index_of(source: str) -> TorchIndex:
    return TorchIndex(cst.parse_module(textwrap.dedent(source)))


# -- training steps --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "imports, build",
    [
        ("import torch", "torch.optim.Adam(model.parameters(), lr=1e-3)"),
        ("from torch import optim", "optim.Adam(model.parameters(), 1e-3)"),
        ("from torch.optim import Adam", "Adam(params=model.parameters(), lr=1e-3)"),
    ],
)
def test_step_found_with_construction(imports: str, build: str) -> None:
    facts = facts_of(f"""
        {imports}
        optimizer = {build}
        for epoch in range(3):
            for x in loader:
                loss = model(x).sum()
                loss.backward()
                optimizer.step()
    """)
    [step] = facts.steps
    assert step.construction is not None
    assert step.construction.name == "torch.optim.Adam"
    assert cst.Module([]).code_for_node(step.construction.lr) == "1e-3"  # type: ignore[arg-type]
    assert len(step.loops) == 2 and step.epoch_loop and not step.clipped
    assert facts.is_multi_epoch(step)


def test_unknowable_optimizer_is_matched_by_name_only() -> None:
    facts = facts_of("""
        def train(model, loader, opt_g, scheduler):
            for x in loader:
                model(x).sum().backward()
                opt_g.step()
                scheduler.step()
    """)
    [step] = facts.steps
    assert step.construction is None  # passed in: its construction is not visible
    assert facts.is_multi_epoch(step) is False


def test_scheduler_and_env_steps_are_not_optimizer_steps() -> None:
    facts = facts_of("""
        import torch
        sched = torch.optim.lr_scheduler.StepLR(opt, 10)
        loss.backward()
        sched.step()
        env.step(action)
    """)
    assert facts.steps == []


def test_amp_scaler_step_and_clipping_between() -> None:
    facts = facts_of("""
        import torch
        from torch.nn.utils import clip_grad_norm_
        optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
        scaler.scale(loss).backward()
        scaler.unscale_(optimizer)
        clip_grad_norm_(model.parameters(), 1.0)
        scaler.step(optimizer)
    """)
    [step] = facts.steps
    assert step.clipped
    assert isinstance(step.optimizer, cst.Name) and step.optimizer.value == "optimizer"


def test_epoch_loop_in_caller() -> None:
    facts = facts_of("""
        import torch.optim as optim
        def train_one_epoch(model, loader, optimizer):
            for x in loader:
                model(x).sum().backward()
                optimizer.step()
        optimizer = optim.Adam(model.parameters(), lr=1e-3)
        for epoch in range(10):
            train_one_epoch(model, loader, optimizer)
    """)
    [step] = facts.steps
    assert step.construction is not None  # found file-wide through the shared name
    assert facts.is_multi_epoch(step)


# -- file-wide facts -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "source, expected",
    [
        ("from torch.optim.lr_scheduler import StepLR\ns = StepLR(opt, 10)", True),
        ("import torch.optim as optim\ns = optim.lr_scheduler.CosineAnnealingLR(o, 5)", True),
        ("from transformers import get_cosine_schedule_with_warmup as g\ns = g(o, 1, 2)", True),
        ("for g in opt.param_groups:\n    g['lr'] = lr", True),
        ("adjust_learning_rate(opt, epoch)", True),
        ("def configure_optimizers(self):\n    return {'optimizer': o, 'lr_scheduler': s}", True),
        ("import torch\nopt = torch.optim.Adam(m.parameters(), lr=1e-3)", False),
        ("lr = 0.1 * decay", False),  # unknowable: a plain variable, no schedule
    ],
)
def test_has_lr_schedule(source: str, expected: bool) -> None:
    assert facts_of(source).has_lr_schedule is expected


@pytest.mark.parametrize(
    "source, expected",
    [
        ("import lightning.pytorch as pl\nt = pl.Trainer(gradient_clip_val=0.5)", True),
        ("from transformers import TrainingArguments as A\na = A(max_grad_norm=1.0)", True),
        ("p.register_hook(lambda g: g.clamp(-1, 1))", True),
        ("import lightning.pytorch as pl\nt = pl.Trainer(gradient_clip_val=None)", False),
        ("p.register_hook(log_grad)", False),  # unknowable hook body: not counted
    ],
)
def test_clipping_elsewhere(source: str, expected: bool) -> None:
    assert facts_of(source).clipping_elsewhere is expected


# -- models ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "imports, prefix", [("from torch import nn", "nn."), ("import torch", "torch.nn.")]
)
def test_rnn_in_class_through_submodules(imports: str, prefix: str) -> None:
    index = index_of(f"""
        {imports}
        class Encoder({prefix}Module):
            def __init__(self):
                super().__init__()
                self.body = {prefix}Sequential({prefix}Embedding(10, 4), {prefix}GRU(4, 4))
        class Model({prefix}Module):
            def __init__(self):
                super().__init__()
                self.encoder = Encoder()
    """)
    assert recurrent.rnn_in_class(index, "Model") == "GRU"


def test_local_class_named_lstm_is_not_torch() -> None:
    index = index_of("""
        from torch import nn
        class LSTM(nn.Module):
            def __init__(self):
                super().__init__()
                self.fc = nn.Linear(4, 4)
        model = LSTM()
    """)
    assert recurrent.rnn_in_class(index, "LSTM") is None


def test_rnn_of_the_optimizers_model() -> None:
    facts = facts_of("""
        import torch
        from torch import nn
        model = nn.LSTM(8, 8).to("cuda")
        model = torch.compile(model)
        optimizer = torch.optim.Adam(model.parameters())
        model(x)[0].sum().backward()
        optimizer.step()
    """)
    [step] = facts.steps
    assert facts.rnn_layer(step) == "LSTM"


def test_rnn_of_unknown_model_is_unknown() -> None:
    facts = facts_of("""
        import torch
        from mymodels import build
        model = build(cfg)
        optimizer = torch.optim.Adam(model.parameters())
        loss.backward()
        optimizer.step()
    """)
    [step] = facts.steps
    assert facts.rnn_layer(step) is None


def test_facts_are_built_once_per_index() -> None:
    index = index_of("import torch\n")
    assert training_facts(index) is training_facts(index)


def test_rnn_of_a_submodule_attribute() -> None:
    facts = facts_of("""
        import torch
        from torch import nn
        class Seq2Seq(nn.Module):
            def __init__(self):
                super().__init__()
                self.encoder = nn.GRU(8, 8)
                self.head = nn.Linear(8, 2)
        model = Seq2Seq()
        enc_opt = torch.optim.Adam(model.encoder.parameters())
        head_opt = torch.optim.Adam(model.head.parameters())
        loss.backward()
        enc_opt.step()
        head_opt.step()
    """)
    assert [facts.rnn_layer(step) for step in facts.steps] == ["GRU", None]


@pytest.mark.parametrize(
    "build, lr",
    [
        ("create_optimizer_v2(model, 'adamw', lr=1e-3)", "1e-3"),
        ("create_optimizer(args, model)", None),  # lr hides inside `args`: unknowable
    ],
)
def test_timm_factories_take_lr_by_keyword_only(build: str, lr: str | None) -> None:
    facts = facts_of(f"""
        from timm.optim import create_optimizer, create_optimizer_v2
        optimizer = {build}
        loss.backward()
        optimizer.step()
    """)
    [step] = facts.steps
    assert step.construction is not None
    found = step.construction.lr
    assert (cst.Module([]).code_for_node(found) if found is not None else None) == lr


def test_bare_step_function_is_not_a_step() -> None:
    facts = facts_of("""
        def step():
            return 1
        loss.backward()
        step()
    """)
    assert facts.steps == [] and not facts.has_lr_schedule
