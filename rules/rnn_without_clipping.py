from __future__ import annotations

import re

import libcst as cst

from gradlint import Invalid, Rule, Severity, Valid
from gradlint.findings import Edit, Fix
from gradlint.project import ClassFacts, Deferred, FileSummary
from gradlint.semantics import recurrent
from gradlint.semantics.index import TorchIndex
from gradlint.semantics.nodes import findall
from gradlint.semantics.training import TrainingStep, training_facts

# `# torch.nn.utils.clip_grad_norm_(...)`: the author turned clipping off, short sequences or not
_CLIPPING_COMMENTED = re.compile(r"#[^\n]*clip_grad_(norm|value)")


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
    sit in the same function. Under Lightning's automatic optimization (a LightningModule
    holding an RNN whose `training_step` returns the loss) the finding sits on each
    `Trainer(...)` of the file without `gradient_clip_val`, or on `training_step` when the
    file builds no Trainer (a `LightningCLI` file is left alone: its YAML may clip).

    Recurrences that cannot explode are not reported: files whose every named sequence
    length (`seq_len`, `TIME_STEP`, `BPTT_T`, `T_horizon`, `chunk_len`, `--bptt` defaults,
    a literal `x_data` list, message-passing `episodes`/`n_hops`) is at most 20, and files
    whose every RNN layer is stepped inside a `for _ in range(<20 or fewer>)` loop (a
    GRUCell updating graph nodes for three rounds), unless a commented-out `clip_grad_norm_` shows that
    the author switched clipping off.
    """

    CODE = "GL104"
    # a training step is a `backward()` (or `manual_backward()`) followed by `step()`, or a
    # LightningModule's `training_step` under automatic optimization
    NEEDS = ("backward", "training_step")
    SEVERITY = Severity.WARNING
    PREVIEW = True  # below 9 in 10 right on labelled real code (benchmarks/quality)
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
        # truncated BPTT over 20-step chunks of an echo stream: too short to explode
        Valid("""
            import torch
            from torch import nn
            BPTT_T = 20
            class Echo(nn.Module):
                def __init__(self):
                    super().__init__()
                    self.rnn = nn.RNN(1, 4, nonlinearity="relu", batch_first=True)
                    self.out = nn.Linear(4, 1)
                def forward(self, x, h):
                    y, h = self.rnn(x, h)
                    return self.out(y), h
            model = Echo()
            optimizer = torch.optim.RMSprop(model.parameters(), lr=1e-3)
            data = EchoStream(truncated_length=BPTT_T)
            h = None
            for x, y in data:
                optimizer.zero_grad()
                out, h = model(x, h)
                h = h.detach()
                criterion(out, y).backward()
                optimizer.step()
        """),
        # a GRUCell as a graph network's node update: three rounds of message passing
        Valid("""
            import torch
            from torch import nn
            class MPNN(nn.Module):
                def __init__(self, dim):
                    super().__init__()
                    self.message = nn.Linear(dim, dim)
                    self.update = nn.GRUCell(dim, dim)
                def forward(self, h, adj):
                    for _ in range(3):
                        h = self.update(adj @ self.message(h), h)
                    return h.sum(0)
            net = MPNN(64)
            opt = torch.optim.Adam(net.parameters(), lr=1e-3)
            for graph, target in graphs:
                loss = (net(graph.x, graph.adj) - target).pow(2).mean()
                opt.zero_grad()
                loss.backward()
                opt.step()
        """),
        # a toy: learn "hello" -> "ohlol", a five-step sequence written out by hand
        Valid("""
            import torch
            x_data = [1, 0, 2, 3, 3]
            inputs = torch.eye(4)[x_data].view(-1, 1, 4)
            cell = torch.nn.RNNCell(4, 4)
            optimizer = torch.optim.Adam(cell.parameters(), lr=0.1)
            for epoch in range(15):
                hidden = torch.zeros(1, 4)
                loss = 0
                for x, y in zip(inputs, labels):
                    hidden = cell(x, hidden)
                    loss = loss + criterion(hidden, y)
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
        """),
        # Lightning's automatic optimization, with the Trainer clipping
        Valid("""
            import pytorch_lightning as pl
            import torch
            from torch import nn
            class Forecaster(pl.LightningModule):
                def __init__(self):
                    super().__init__()
                    self.lstm = nn.LSTM(8, 64, batch_first=True)
                    self.head = nn.Linear(64, 1)
                def training_step(self, batch, batch_idx):
                    x, y = batch
                    out, _ = self.lstm(x)
                    return nn.functional.mse_loss(self.head(out[:, -1]), y)
                def configure_optimizers(self):
                    return torch.optim.Adam(self.parameters(), lr=1e-3)
            trainer = pl.Trainer(max_epochs=50, gradient_clip_val=1.0)
            trainer.fit(Forecaster(), loader)
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
        # Lightning's automatic optimization: the Trainer sets no gradient_clip_val
        Invalid(
            """
            import pytorch_lightning as pl
            import torch
            from torch import nn
            class Forecaster(pl.LightningModule):
                def __init__(self):
                    super().__init__()
                    self.lstm = nn.LSTM(8, 64, batch_first=True)
                    self.head = nn.Linear(64, 1)
                def training_step(self, batch, batch_idx):
                    x, y = batch
                    out, _ = self.lstm(x)
                    return nn.functional.mse_loss(self.head(out[:, -1]), y)
                def configure_optimizers(self):
                    return torch.optim.Adam(self.parameters(), lr=1e-3)
            trainer = pl.Trainer(max_epochs=50)
            trainer.fit(Forecaster(), loader)
        """,
            line=15,
            message="Forecaster",
        ),
        # a LightningModule whose RNN sits in a submodule of the same file, no Trainer here
        Invalid(
            """
            import lightning as L
            from torch import nn, optim
            class Encoder(nn.Module):
                def __init__(self):
                    super().__init__()
                    self.gru = nn.GRU(32, 32)
            class Tagger(L.LightningModule):
                def __init__(self):
                    super().__init__()
                    self.encoder = Encoder()
                def training_step(self, batch, batch_idx):
                    return self.encoder(batch)[0].mean()
                def configure_optimizers(self):
                    return optim.Adam(self.parameters())
        """,
            line=11,
            message="nn.GRU",
        ),
        # short sentences, but the clipping calls were commented out before the steps
        Invalid(
            """
            import torch
            from torch import nn
            MAX_LENGTH = 20
            encoder = nn.GRU(256, 256)
            encoder_optimizer = torch.optim.Adam(encoder.parameters(), lr=1e-4)
            for src, tgt in pairs:
                out, h = encoder(src)
                loss = criterion(out, tgt)
                loss.backward()
                # torch.nn.utils.clip_grad_norm_(encoder.parameters(), 50.0)
                encoder_optimizer.step()
        """,
            line=11,
            message="nn.GRU",
        ),
        # a character model unrolled over 200-character chunks: long BPTT, no clipping
        Invalid(
            """
            import argparse
            import torch
            from torch import nn
            parser = argparse.ArgumentParser()
            parser.add_argument("--chunk_len", type=int, default=200)
            args = parser.parse_args()
            class CharModel(nn.Module):
                def __init__(self):
                    super().__init__()
                    self.embed = nn.Embedding(100, 128)
                    self.gru = nn.GRU(128, 128)
                    self.out = nn.Linear(128, 100)
            decoder = CharModel()
            decoder_optimizer = torch.optim.Adam(decoder.parameters(), lr=0.01)
            for step in range(2000):
                hidden = None
                loss = 0
                for c in range(args.chunk_len):
                    output, hidden = decoder(inp[:, c], hidden)
                    loss = loss + criterion(output, target[:, c])
                loss.backward()
                decoder_optimizer.step()
        """,
            line=22,
            message="nn.GRU",
        ),
    ]

    def visit_Module(self, node: cst.Module) -> None:
        facts = training_facts(self.index)
        if facts.clipping_elsewhere:
            return  # Trainer(gradient_clip_val=...), a clamping hook, max_grad_norm=...
        if recurrent.short_recurrence(self.index) and not _CLIPPING_COMMENTED.search(
            self.index.source
        ):
            return  # a handful of time steps or message-passing rounds: nothing to explode
        self._lightning_automatic()
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

    def _lightning_automatic(self) -> None:
        """A LightningModule holding an RNN whose `training_step` returns the loss: Lightning
        runs backward and step itself, so only `Trainer(gradient_clip_val=...)` clips."""
        source = self.index.source
        if "training_step" not in source or "Lightning" not in source:
            return  # cheap gate: no Lightning module here
        if "automatic_optimization" in source or "LightningCLI" in source:
            return  # manual optimization (seen as a step), or a Trainer configured in YAML
        for name, info in self.index.module_classes.items():
            lightning = any(
                (self.index.qualified(base.value) or "").endswith("LightningModule")
                for base in info.node.bases
            )
            training_step = info.methods.get("training_step")
            if not lightning or training_step is None:
                continue
            layer = recurrent.rnn_in_class(self.index, name)
            if layer is None:
                continue
            trainers = [
                call
                for call in findall(self.context.module, cst.Call)
                if (self.index.call_name(call) or "").startswith("lightning")
                and (self.index.call_name(call) or "").endswith(".Trainer")
            ]
            for where in trainers or [training_step.name]:
                self.report(where, message=self._LIGHTNING_MESSAGE.format(cls=name, layer=layer))

    _LIGHTNING_MESSAGE = (
        "Lightning trains `{cls}`, which holds an `nn.{layer}`, with no `gradient_clip_val` on "
        "the Trainer; backprop through time multiplies the gradient by the recurrent matrix "
        "once per time step, so gradients can explode on long sequences"
    )

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
        line_text = self.index.source.splitlines()[where.start.line - 1]
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
