from __future__ import annotations

import libcst as cst

from gradlint import Invalid, Rule, Severity, Valid
from gradlint.findings import Edit, Fix
from gradlint.project import ClassFacts, Deferred, FileSummary
from gradlint.semantics.index import TorchIndex
from gradlint.semantics.training import TrainingStep, training_facts


class RnnWithoutClipping(Rule):
    """
    ## What it does
    Flags an optimizer `step()` that trains a model containing `nn.RNN`, `nn.LSTM`, `nn.GRU`
    (or their cells) when no gradient clipping runs between `backward()` and `step()` and
    none is configured elsewhere in the file (Lightning `Trainer(gradient_clip_val=...)`,
    a clamping gradient hook, a `max_grad_norm` setting).

    ## Why is this bad?
    Backpropagation through time multiplies the gradient by the same recurrent weight matrix
    once per time step. When that matrix's largest singular value is above 1 the gradient
    grows geometrically with sequence length: one long or unusual batch yields a huge update
    that throws the weights far away, and the loss jumps or turns into NaN. LSTM and GRU
    gating tames vanishing gradients, not exploding ones. Clipping the gradient norm
    (`torch.nn.utils.clip_grad_norm_`) bounds every update and is standard practice for
    recurrent models.

    ## Fix
    `--fix` inserts `torch.nn.utils.clip_grad_norm_(<the parameters the optimizer was built
    with>, max_norm=1.0)` right before the step (and `scaler.unscale_(optimizer)` first under
    AMP). This changes training: review the threshold; 1.0 is a common default for RNNs.

    ## Known limitations
    A model class imported from another file of the linted tree is followed through the
    imports (relative imports, `import pkg.mod as m`, re-exports in `__init__.py`); classes
    from outside the tree are unknown, and a clipping helper defined elsewhere is not seen.
    When the optimizer's model cannot be resolved, the rule reports only if every model
    built in the file holds an RNN; otherwise it stays quiet. `backward()` and `step()` must
    sit in the same function. Lightning's automatic optimization has no visible `step()`
    and is left to `Trainer(gradient_clip_val=...)`.
    """

    CODE = "GL104"
    # a training step is a `backward()` (or `manual_backward()`) followed by `step()`
    NEEDS = ("backward",)
    SEVERITY = Severity.WARNING
    MESSAGE = (
        "this step trains an `nn.{layer}` without gradient clipping; backprop through time "
        "multiplies the gradient by the recurrent matrix once per time step, so gradients "
        "can explode on long sequences"
    )
    HINT = (
        "Call torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm=1.0) between "
        "backward() and step() (after scaler.unscale_(optimizer) with AMP)"
    )

    VALID = [
        Valid("""
            import torch
            from torch import nn
            class Seq2Seq(nn.Module):
                def __init__(self):
                    super().__init__()
                    self.rnn = nn.LSTM(32, 64, batch_first=True)
                    self.head = nn.Linear(64, 10)
            model = Seq2Seq()
            optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
            for x, y in loader:
                optimizer.zero_grad()
                loss = criterion(model(x), y)
                loss.backward()
                torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm=1.0)
                optimizer.step()
        """),
        # AMP: unscale, clip, then scaler.step
        Valid("""
            import torch
            from torch import nn
            model = nn.GRU(16, 32).cuda()
            optimizer = torch.optim.AdamW(model.parameters(), lr=3e-4)
            scaler = torch.cuda.amp.GradScaler()
            for x in loader:
                with torch.autocast("cuda"):
                    loss = model(x)[0].pow(2).mean()
                scaler.scale(loss).backward()
                scaler.unscale_(optimizer)
                torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
                scaler.step(optimizer)
                scaler.update()
        """),
        # Hugging Face Accelerate clips through the accelerator
        Valid("""
            from accelerate import Accelerator
            from torch import nn, optim
            accelerator = Accelerator()
            model = nn.LSTM(8, 8)
            optimizer = optim.Adam(model.parameters())
            model, optimizer = accelerator.prepare(model, optimizer)
            for batch in loader:
                loss = model(batch)[0].sum()
                accelerator.backward(loss)
                if accelerator.sync_gradients:
                    accelerator.clip_grad_norm_(model.parameters(), 1.0)
                optimizer.step()
                optimizer.zero_grad()
        """),
        # element-wise clipping inside a gradient-accumulation loop
        Valid("""
            import torch.optim as optim
            from torch import nn
            from torch.nn.utils import clip_grad_value_
            rnn = nn.RNN(4, 4)
            opt = optim.SGD(rnn.parameters(), lr=0.1)
            for step, batch in enumerate(loader):
                loss = rnn(batch)[0].mean() / 4
                loss.backward()
                if (step + 1) % 4 == 0:
                    clip_grad_value_(rnn.parameters(), 0.5)
                    opt.step()
                    opt.zero_grad()
        """),
        # a CNN has no recurrence: nothing to clip for
        Valid("""
            import torch
            from torch import nn
            model = nn.Sequential(nn.Conv2d(3, 16, 3), nn.ReLU(), nn.Flatten(), nn.LazyLinear(10))
            optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
            for images, labels in loader:
                optimizer.zero_grad()
                nn.functional.cross_entropy(model(images), labels).backward()
                optimizer.step()
        """),
        # a local class that happens to be called LSTM but is a plain MLP
        Valid("""
            import torch
            from torch import nn
            class LSTM(nn.Module):
                def __init__(self):
                    super().__init__()
                    self.fc = nn.Linear(10, 10)
            model = LSTM()
            optimizer = torch.optim.Adam(model.parameters())
            for x in loader:
                model(x).sum().backward()
                optimizer.step()
        """),
        # Lightning: the Trainer clips
        Valid("""
            import lightning.pytorch as pl
            import torch
            from torch import nn
            class LitLM(pl.LightningModule):
                def __init__(self):
                    super().__init__()
                    self.lstm = nn.LSTM(32, 32)
                    self.automatic_optimization = False
                def training_step(self, batch, idx):
                    opt = self.optimizers()
                    loss = self.lstm(batch)[0].sum()
                    self.manual_backward(loss)
                    opt.step()
                def configure_optimizers(self):
                    return torch.optim.Adam(self.parameters(), lr=1e-3)
            trainer = pl.Trainer(max_epochs=5, gradient_clip_val=0.5)
        """),
        # evaluation only: no backward, no step
        Valid("""
            import torch
            from torch import nn
            model = nn.LSTM(8, 8)
            model.load_state_dict(torch.load("lstm.pt"))
            model.eval()
            with torch.no_grad():
                for x in loader:
                    out, _ = model(x)
        """),
        # the clipping lives in a helper called between backward and step
        Valid("""
            import torch
            from torch import nn
            class Tagger(nn.Module):
                def __init__(self):
                    super().__init__()
                    self.rnn = nn.GRU(50, 100, bidirectional=True)
            def clip(model):
                torch.nn.utils.clip_grad_norm_(model.parameters(), 5.0)
            model = Tagger()
            optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
            for x in loader:
                model(x)[0].sum().backward()
                clip(model)
                optimizer.step()
                scheduler.step()
        """),
        # a gradient hook clamps every gradient as it is computed
        Valid("""
            import torch
            from torch import nn
            model = nn.LSTM(8, 8)
            for p in model.parameters():
                p.register_hook(lambda g: torch.clamp(g, -1.0, 1.0))
            optimizer = torch.optim.Adam(model.parameters())
            for x in loader:
                model(x)[0].sum().backward()
                optimizer.step()
        """),
        # optimizer built for an unknown model, and a CNN also built here: unsure, quiet
        Valid("""
            from torch import nn, optim
            encoder = nn.LSTM(8, 8)
            decoder = nn.Conv1d(8, 8, 3)
            optimizer = optim.Adam(params, lr=1e-3)
            for x in loader:
                loss = decoder(encoder(x)[0]).sum()
                loss.backward()
                optimizer.step()
        """),
        # fine-tuning only the linear head of a recurrent model: no BPTT in its gradient
        Valid("""
            import torch
            from torch import nn
            class Classifier(nn.Module):
                def __init__(self):
                    super().__init__()
                    self.lstm = nn.LSTM(32, 64)
                    self.head = nn.Linear(64, 2)
            model = Classifier()
            model.lstm.requires_grad_(False)
            optimizer = torch.optim.Adam(model.head.parameters(), lr=1e-3)
            for x, y in loader:
                loss = criterion(model(x), y)
                loss.backward()
                optimizer.step()
        """),
        # not torch's nn: an unrelated package
        Valid("""
            from mylib import nn
            from torch import optim
            model = nn.LSTM(8, 8)
            optimizer = optim.Adam(model.parameters())
            for x in loader:
                model(x).backward()
                optimizer.step()
        """),
    ]
    INVALID = [
        Invalid(
            """
            import torch
            from torch import nn
            class Seq2Seq(nn.Module):
                def __init__(self):
                    super().__init__()
                    self.rnn = nn.LSTM(32, 64, batch_first=True)
                    self.head = nn.Linear(64, 10)
            model = Seq2Seq()
            optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
            for x, y in loader:
                optimizer.zero_grad()
                loss = criterion(model(x), y)
                loss.backward()
                optimizer.step()
        """,
            line=14,
            message="nn.LSTM",
            fixed="""
            import torch
            from torch import nn
            class Seq2Seq(nn.Module):
                def __init__(self):
                    super().__init__()
                    self.rnn = nn.LSTM(32, 64, batch_first=True)
                    self.head = nn.Linear(64, 10)
            model = Seq2Seq()
            optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
            for x, y in loader:
                optimizer.zero_grad()
                loss = criterion(model(x), y)
                loss.backward()
                torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm=1.0)
                optimizer.step()
        """,
        ),
        # AMP without unscale_ + clip
        Invalid(
            """
            import torch
            from torch import nn
            model = nn.GRU(16, 32).cuda()
            optimizer = torch.optim.AdamW(model.parameters(), lr=3e-4)
            scaler = torch.cuda.amp.GradScaler()
            for x in loader:
                with torch.autocast("cuda"):
                    loss = model(x)[0].pow(2).mean()
                scaler.scale(loss).backward()
                scaler.step(optimizer)
                scaler.update()
        """,
            line=10,
            message="nn.GRU",
        ),
        # the RNN sits in a submodule inside an nn.Sequential; `from torch.optim import Adam`
        Invalid(
            """
            from torch import nn
            from torch.optim import Adam
            class Encoder(nn.Module):
                def __init__(self):
                    super().__init__()
                    self.body = nn.Sequential(nn.Embedding(100, 16), nn.RNN(16, 16))
            class Model(nn.Module):
                def __init__(self):
                    super().__init__()
                    self.encoder = Encoder()
            def train(model, loader, optimizer):
                for x in loader:
                    model(x).sum().backward()
                    optimizer.step()
            model = Model()
            train(model, loader, Adam(model.parameters(), lr=1e-3))
        """,
            line=14,
            message="nn.RNN",
        ),
        # optimizer's model unknown, but every model built here is recurrent
        Invalid(
            """
            import torch.nn as nn
            import torch.optim as optim
            class CharRNN(nn.Module):
                def __init__(self):
                    super().__init__()
                    self.cell = nn.LSTMCell(64, 128)
            net = CharRNN()
            opt = optim.RMSprop(get_params(net), lr=1e-3)
            for epoch in range(10):
                for x in batches:
                    opt.zero_grad()
                    net(x).mean().backward()
                    opt.step()
        """,
            line=13,
            message="LSTMCell",
        ),
        # Lightning manual optimization, no clip_gradients and no Trainer clipping
        Invalid(
            """
            import lightning.pytorch as pl
            import torch
            from torch import nn
            class LitLM(pl.LightningModule):
                def __init__(self):
                    super().__init__()
                    self.lstm = nn.LSTM(32, 32)
                    self.automatic_optimization = False
                def training_step(self, batch, idx):
                    opt = self.optimizers()
                    loss = self.lstm(batch)[0].sum()
                    self.manual_backward(loss)
                    opt.step()
                def configure_optimizers(self):
                    return torch.optim.Adam(self.parameters(), lr=1e-3)
            trainer = pl.Trainer(max_epochs=5)
        """,
            line=13,
            message="nn.LSTM",
        ),
        # clipping *before* backward clips stale gradients
        Invalid(
            """
            import torch
            from torch import nn
            lm = nn.LSTM(8, 8)
            optimizer = torch.optim.SGD(lm.parameters(), lr=1.0)
            for x in loader:
                torch.nn.utils.clip_grad_norm_(lm.parameters(), 1.0)
                lm(x)[0].sum().backward()
                optimizer.step()
        """,
            line=8,
        ),
    ]

    def visit_Module(self, node: cst.Module) -> None:
        facts = training_facts(self.index)
        if facts.clipping_elsewhere:
            return  # Trainer(gradient_clip_val=...), a clamping hook, max_grad_norm=...
        for step in facts.steps:
            if step.clipped:
                continue  # clipped between backward and step
            layer = facts.rnn_layer(step)
            if layer is not None:
                self.report(step.step, layer=layer, fix=self._clip_fix(step))
                continue
            imported = facts.imported_model(step)
            if imported is not None:
                self.defer(step.step, imported)  # the project phase knows that class

    def _clip_fix(self, step: TrainingStep) -> Fix | None:
        """Insert `clip_grad_norm_(<the optimizer's parameters>, max_norm=1.0)` before the step
        (after `scaler.unscale_(optimizer)` under AMP); None when that cannot be written safely."""
        built = step.construction
        if built is None or built.params is None or not _is_parameters_call(built.params):
            return None  # param groups or generators: the right parameters are not obvious
        clip = _clip_function(self.index)
        if clip is None:
            return None  # neither `torch` nor `nn` is imported under its usual name
        where = self.position(step.step)
        line_text = self.context.module.code.splitlines()[where.start.line - 1]
        indent = line_text[: len(line_text) - len(line_text.lstrip())]
        if line_text.strip() != self.context.module.code_for_node(step.step).strip():
            return None  # the step shares its line with other code
        params = self.context.module.code_for_node(built.params)
        lines = []
        receiver = step.step.func.value if isinstance(step.step.func, cst.Attribute) else None
        if (
            receiver is not None
            and step.step.args
            and "scaler" in self.context.module.code_for_node(receiver)
        ):
            optimizer = self.context.module.code_for_node(step.step.args[0].value)
            lines.append(
                f"{indent}{self.context.module.code_for_node(receiver)}.unscale_({optimizer})\n"
            )
        lines.append(f"{indent}{clip}({params}, max_norm=1.0)\n")
        edit = Edit(where.start.line, 1, where.start.line, 1, "".join(lines))
        return Fix("clip the gradient norm to 1.0 before the optimizer step", (edit,))

    @classmethod
    def resolve_deferred(cls, item: Deferred, facts: ClassFacts, where: FileSummary) -> str | None:
        if facts.rnn is None:
            return None  # the imported model holds no recurrent layer
        return (
            f"this step trains `{facts.name}` ({where.path}:{facts.line}), which holds an "
            f"`nn.{facts.rnn}`, without gradient clipping; backprop through time multiplies the "
            "gradient by the recurrent matrix once per time step, so gradients can explode"
        )


def _is_parameters_call(node: cst.BaseExpression) -> bool:
    """`model.parameters()` / `self.net.parameters()`: one model's parameters, nothing else."""
    return (
        isinstance(node, cst.Call)
        and not node.args
        and isinstance(node.func, cst.Attribute)
        and node.func.attr.value == "parameters"
    )


def _clip_function(index: TorchIndex) -> str | None:
    for local, target in index.names.aliases.items():
        if target == "torch" and local == "torch":
            return "torch.nn.utils.clip_grad_norm_"
    for local, target in index.names.aliases.items():
        if target == "torch.nn":
            return f"{local}.utils.clip_grad_norm_"
    return None
