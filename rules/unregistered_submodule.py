from __future__ import annotations

from dataclasses import dataclass, field

import libcst as cst

from gradlint import Invalid, Rule, Severity, Valid
from gradlint.project import ClassFacts, Deferred, FileSummary
from gradlint.semantics import registration
from gradlint.semantics.index import self_attribute, walk_statements


class UnregisteredSubmodule(Rule):
    """
    ## What it does
    Flags layers (or `nn.Parameter`s) kept in a plain Python list, dict or tuple on an
    `nn.Module` in `__init__` (`self.blocks = [nn.Linear(8, 8) for _ in range(3)]`, or
    `self.layers = []` followed by `self.layers.append(...)`) instead of `nn.ModuleList` /
    `nn.ModuleDict` / `nn.Sequential` (`nn.ParameterList` / `nn.ParameterDict`).

    ## Why is this bad?
    `nn.Module` registers a submodule only when it is assigned as an attribute directly or
    held by one of its containers. Layers in a plain list are invisible to it: their
    parameters are missing from `model.parameters()`, so the optimizer never updates them
    (they keep their random init while the loss still flows through them), `.to(device)`
    and `.half()` skip them, `state_dict()` does not save them, and `model.eval()` does not
    reach their dropout or batch-norm.

    ## Known limitations
    Layers count when they are torch layers (`torch.nn`, `torchvision.ops`, `timm.layers`),
    `nn.Module` subclasses defined in the same file, or CapWords classes imported relatively
    (`from .blocks import Block`); other imported classes count once the project phase finds
    them to be `nn.Module` subclasses. Layers wrapped in a helper that returns them
    (`init_(nn.Linear(...))`) count. A container argument counts when its annotation says it
    holds modules (`List[nn.Module]`, `*blocks: nn.Module`) or when a call in the same file
    passes it a plain list of layers.
    Parameter-free layers (activations, dropout, pooling) and losses are not reported.
    """

    CODE = "GL116"
    SEVERITY = Severity.ERROR
    IN_TESTS = True  # a real bug in test helpers too
    MESSAGE = (
        "`self.{attr}` keeps {what} in a plain {kind}, so they are not registered: "
        "`model.parameters()` misses them, they are never trained and `.to(device)` skips them"
    )
    HINT = (
        "Use nn.ModuleList(...) / nn.ModuleDict(...) (nn.ParameterList / nn.ParameterDict "
        "for parameters)"
    )

    VALID = [
        Valid("""
            from torch import nn
            class Net(nn.Module):
                def __init__(self):
                    super().__init__()
                    self.blocks = nn.ModuleList([nn.Linear(8, 8) for _ in range(3)])
        """),
        # lists of numbers, names, functions and plain tensors
        Valid("""
            import torch
            import torch.nn as nn
            import torch.nn.functional as F
            class Net(nn.Module):
                def __init__(self, dims=(64, 128)):
                    super().__init__()
                    self.dims = [64, 128, 256]
                    self.names = ("stem", "head")
                    self.acts = [F.relu, F.gelu]
                    self.anchors = [torch.tensor([1.0, 2.0]), torch.zeros(4)]
                    self.feature_info = [dict(num_chs=64, reduction=4, module="stem")]
        """),
        # the list is wrapped later in __init__ (torchvision / timm builders)
        Valid("""
            from torch import nn
            class VGG(nn.Module):
                def __init__(self, cfg):
                    super().__init__()
                    layers = []
                    for v in cfg:
                        layers += [nn.Conv2d(3, v, 3), nn.ReLU(inplace=True)]
                    self.features = nn.Sequential(*layers)
                    self.heads = []
                    for i in range(3):
                        self.heads.append(nn.Linear(512, 10))
                    self.heads = nn.ModuleList(self.heads)
        """),
        # each layer is also registered as an attribute or with add_module
        Valid("""
            from torch.nn import Conv2d, Module
            class FPN(Module):
                def __init__(self, n):
                    super().__init__()
                    self.inner_blocks = []
                    for i in range(n):
                        block = Conv2d(256, 256, 1)
                        self.add_module(f"inner{i}", block)
                        self.inner_blocks.append(block)
                    self.conv1 = Conv2d(3, 8, 3)
                    self.conv2 = Conv2d(8, 8, 3)
                    self.convs = [self.conv1, self.conv2]
        """),
        # not an nn.Module: a config or a plain Python helper
        Valid("""
            from torch import nn
            class Builder:
                def __init__(self):
                    self.layers = [nn.Linear(8, 8), nn.Linear(8, 8)]
        """),
        # parameter-free layers and losses lose nothing
        Valid("""
            from torch import nn
            from torch.nn import CrossEntropyLoss
            class Heads(nn.Module):
                def __init__(self):
                    super().__init__()
                    self.acts = [nn.ReLU(), nn.GELU(), nn.Identity()]
                    self.criteria = {"ce": CrossEntropyLoss(), "mse": nn.MSELoss()}
        """),
        # an imported class we cannot see might not be a module
        Valid("""
            from torch import nn
            from mylib.configs import StageConfig
            class Net(nn.Module):
                def __init__(self):
                    super().__init__()
                    self.stages = [StageConfig(64), StageConfig(128)]
        """),
        # a frozen teacher hidden from parameters() on purpose (a list of an argument)
        Valid("""
            from torch import nn
            class Distiller(nn.Module):
                def __init__(self, student, teacher):
                    super().__init__()
                    self.student = student
                    self._teacher = [teacher]
        """),
        # containers handed in as arguments and registered here
        Valid("""
            from typing import List, Sequence
            from torch import nn
            class Parallel(nn.Module):
                def __init__(self, paths: List[nn.Module], dims: Sequence[int], *more: nn.Conv2d):
                    super().__init__()
                    self.paths = nn.ModuleList(paths)
                    self.dims = dims
                    self.more = more
                    for i, block in enumerate(more):
                        self.add_module(f"more{i}", block)
            class Chain(nn.Module):
                def __init__(self, stages):
                    super().__init__()
                    self.stages = stages
            chain = Chain(nn.ModuleList([nn.Linear(4, 4), nn.Linear(4, 2)]))
        """),
        # a helper that returns something other than the layer it is given
        Valid("""
            import torch
            from torch import nn
            def describe(layer):
                return {"out": layer.out_features}
            class Head(nn.Module):
                def __init__(self):
                    super().__init__()
                    self.fc = nn.Linear(8, 2)
                    self.info = [describe(nn.Linear(8, 2))]
        """),
    ]
    INVALID = [
        Invalid(
            """
            from torch import nn
            class Net(nn.Module):
                def __init__(self):
                    super().__init__()
                    self.blocks = [nn.Linear(8, 8) for _ in range(3)]
        """,
            line=5,
            message="plain list",
        ),
        Invalid(
            """
            import torch.nn as nn
            class MultiHead(nn.Module):
                def __init__(self, tasks):
                    super().__init__()
                    self.heads = {"cls": nn.Linear(256, 10), "box": nn.Linear(256, 4)}
        """,
            line=5,
            message="plain dict",
        ),
        Invalid(
            """
            from torch import nn
            class Block(nn.Module):
                def __init__(self, dim):
                    super().__init__()
                    self.fc = nn.Linear(dim, dim)
            class Encoder(nn.Module):
                def __init__(self, depth):
                    super().__init__()
                    self.layers = []
                    for _ in range(depth):
                        self.layers.append(Block(64))
        """,
            line=9,
        ),
        Invalid(
            """
            import torch
            from torch import nn
            class Mixture(nn.Module):
                def __init__(self, k):
                    super().__init__()
                    self.means = [nn.Parameter(torch.randn(16)) for _ in range(k)]
        """,
            line=6,
            message="parameters",
        ),
        Invalid(
            """
            from torch import nn
            from .blocks import ResBlock
            class UNet(nn.Module):
                def __init__(self):
                    super().__init__()
                    downs = []
                    for ch in (64, 128, 256):
                        downs.append(ResBlock(ch))
                    self.downs = downs
        """,
            line=9,
        ),
        Invalid(
            """
            from torch import nn
            from torchvision.ops import Conv2dNormActivation
            class Stem(nn.Module):
                def __init__(self):
                    super().__init__()
                    self.pair = (Conv2dNormActivation(3, 8), nn.Conv2d(8, 3, 3))
        """,
            line=6,
            message="plain tuple",
        ),
        # transformers' Mask2Former pixel decoder (the projection is appended conditionally)
        Invalid(
            """
            from torch import nn
            class MaskedAttentionDecoder(nn.Module):
                def __init__(self, in_features, config):
                    super().__init__()
                    self.input_projections = []
                    for _ in range(3):
                        if in_features != config.hidden_dim:
                            proj = nn.Conv2d(in_features, config.hidden_dim, 1)
                            self.input_projections.append(proj)
                        else:
                            self.input_projections.append(nn.Sequential())
                    self.level_embed = nn.Embedding(3, config.hidden_dim)
        """,
            line=5,
        ),
        # a merging layer copies the modules it is given into a fresh plain list
        Invalid(
            """
            from typing import List, Optional
            import torch.nn as nn
            class Merge(nn.Module):
                def __init__(self, layers: Optional[List[nn.Module]] = None, dim: int = -1):
                    super().__init__()
                    self.dim = dim
                    if layers is not None:
                        self.parts = []
                        for layer in layers:
                            self.parts.append(layer)
        """,
            line=8,
        ),
        # `*modules` arrives as a tuple and is kept as one
        Invalid(
            """
            from torch import nn
            class MultiInput(nn.Module):
                def __init__(self, *stages: nn.Module):
                    super().__init__()
                    self.stages = stages
        """,
            line=5,
            message="plain tuple",
        ),
        # an RL critic wraps each head in an init helper that returns it
        Invalid(
            """
            from torch import nn
            from agents.util import init
            class Critic(nn.Module):
                def __init__(self, hidden, heads):
                    super().__init__()
                    def init_(m):
                        return init(m, nn.init.orthogonal_, lambda b: nn.init.zeros_(b))
                    self.q_heads = [init_(nn.Linear(hidden, 1)) for _ in range(heads)]
        """,
            line=8,
        ),
        # the model keeps the list its caller built: a chain of denoising networks
        Invalid(
            """
            import torch.nn as nn
            class Diffusion(nn.Module):
                def __init__(self, denoisers, decoder, steps):
                    super().__init__()
                    self.denoisers = denoisers
                    self.decoder = decoder
            nets = [nn.Sequential(nn.Linear(16, 32), nn.ReLU()) for _ in range(4)]
            model = Diffusion(nets, nn.Linear(16, 16), steps=4)
        """,
            line=5,
        ),
    ]

    def visit_ClassDef(self, node: cst.ClassDef) -> None:
        info = self.index.module_classes.get(node.name.value)
        if info is None or info.node is not node:
            return  # not an nn.Module subclass
        init = info.methods.get("__init__")
        if init is None or not isinstance(init.body, cst.IndentedBlock):
            return  # nothing is built here
        built = _Containers(self)
        built.arguments(node.name.value, init)
        for statement in walk_statements(init.body.body):
            if isinstance(statement, cst.For):
                built.loop(statement)
            if isinstance(statement, cst.SimpleStatementLine):
                for small in statement.body:
                    built.statement(small)
        if not built.on_self:
            return  # no plain list or dict on self
        registered = registration.registering_mentions(init.body.body)
        for attr, held in built.on_self.items():
            if f"self.{attr}" in registered or held.alias in registered:
                continue  # wrapped in a container or registered with add_module later
            what = {
                built.kind(item)
                for item in held.items
                if not (isinstance(item, cst.Name) and item.value in registered)
            }
            what.discard(None)
            if held.passed:
                what.add("layers")  # the caller's container of modules, kept as it came
            if what:
                self.report(
                    held.node,
                    attr=attr,
                    kind=held.kind,
                    what="parameters" if what == {"parameters"} else "layers",
                )
                continue
            imported = _imported_class(self, [built.resolve(item) for item in held.items])
            if imported is not None:  # the project phase knows whether it is an nn.Module
                self.defer(held.node, imported, attr=attr, kind=held.kind)

    @classmethod
    def resolve_deferred(cls, item: Deferred, facts: ClassFacts, where: FileSummary) -> str | None:
        return cls.MESSAGE.format(attr=item.data["attr"], kind=item.data["kind"], what="layers")


@dataclass
class _Held:
    node: cst.CSTNode
    kind: str
    items: list[cst.BaseExpression] = field(default_factory=list)
    alias: str | None = None  # the local list assigned to `self.<attr>`
    passed: bool = False  # a parameter that arrives holding several modules


class _Containers:
    """Plain containers built in __init__, on self and in locals, and what they hold."""

    def __init__(self, rule: Rule) -> None:
        self.rule = rule
        self.on_self: dict[str, _Held] = {}
        self.local: dict[str, _Held] = {}
        self.layers: dict[str, cst.BaseExpression] = {}  # `block = Block(...)`
        self.given: dict[str, str] = {}  # parameters holding several modules -> their kind
        self.modules: set[str] = set()  # loop variables running over such a parameter

    def arguments(self, class_name: str, init: cst.FunctionDef) -> None:
        """Learn which parameters of __init__ arrive holding several modules."""
        index = self.rule.index
        self.given = registration.module_collection_params(index, init)
        if _stores_a_parameter(init, self.given):
            found = registration.params_given_layer_lists(index, class_name, init)
            self.given = {**found, **self.given}

    def loop(self, loop: cst.For) -> None:
        """`for layer in layers:` over such a parameter: `layer` is a module."""
        if isinstance(loop.iter, cst.Name) and loop.iter.value in self.given:
            if isinstance(loop.target, cst.Name):
                self.modules.add(loop.target.value)

    def kind(self, item: cst.BaseExpression) -> str | None:
        """What a held item is: "layers", "parameters" or None (not known)."""
        if isinstance(item, cst.Name) and item.value in self.modules:
            return "layers"
        return registration.layer_kind(self.rule.index, self.resolve(item))

    def statement(self, small: cst.CSTNode) -> None:
        if isinstance(small, cst.Assign) and len(small.targets) == 1:
            self._assign(small, small.targets[0].target, small.value)
        elif isinstance(small, cst.AnnAssign) and small.value is not None:
            self._assign(small, small.target, small.value)
        elif isinstance(small, cst.AugAssign) and isinstance(small.operator, cst.AddAssign):
            held = self._held(small.target)
            found = registration.container_items(small.value)
            if held is not None and found is not None:
                held.items.extend(found[1])
        elif isinstance(small, cst.Expr) and isinstance(small.value, cst.Call):
            self._grow(small.value)

    def _assign(
        self, node: cst.CSTNode, target: cst.BaseExpression, value: cst.BaseExpression
    ) -> None:
        if isinstance(target, cst.Subscript):
            held = self._held(target.value)  # `self.heads[name] = nn.Linear(...)`
            if held is not None:
                held.items.append(value)
            return
        found = registration.container_items(value)
        attr = self_attribute(target)
        if attr is not None:
            if found is not None:
                self.on_self[attr] = _Held(node, found[0], list(found[1]))
            elif isinstance(value, cst.Name) and value.value in self.local:
                local = self.local[value.value]
                self.on_self[attr] = _Held(node, local.kind, local.items, value.value)
            elif isinstance(value, cst.Name) and value.value in self.given:
                kind = self.given[value.value]
                self.on_self[attr] = _Held(node, kind, [], value.value, passed=True)
            else:
                self.on_self.pop(attr, None)  # reassigned, e.g. to nn.ModuleList(self.x)
        elif isinstance(target, cst.Name):
            if found is not None:
                self.local[target.value] = _Held(node, found[0], list(found[1]))
            else:
                self.local.pop(target.value, None)
                self.layers[target.value] = value

    def _grow(self, call: cst.Call) -> None:
        func = call.func
        if not (isinstance(func, cst.Attribute) and func.attr.value in registration.GROWTH_METHODS):
            return
        held = self._held(func.value)
        if held is None or not call.args:
            return
        method, last = func.attr.value, call.args[-1].value
        if method in ("extend", "update"):
            found = registration.container_items(last)
            held.items.extend(found[1] if found is not None else [])
        else:
            held.items.append(last)

    def resolve(self, item: cst.BaseExpression) -> cst.BaseExpression:
        """`block` -> `Block(64)` when `block = Block(64)` was assigned in __init__."""
        if isinstance(item, cst.Name):
            return self.layers.get(item.value, item)
        return item

    def _held(self, target: cst.BaseExpression) -> _Held | None:
        attr = self_attribute(target)
        if attr is not None:
            return self.on_self.get(attr)
        if isinstance(target, cst.Name):
            return self.local.get(target.value)
        return None


def _stores_a_parameter(init: cst.FunctionDef, known: dict[str, str]) -> bool:
    """Whether __init__ keeps a bare parameter on self (`self.blocks = blocks`), the one
    case where what callers pass needs looking up."""
    params = {p.name.value for p in init.params.params} - set(known)
    for statement in walk_statements(init.body.body):
        if not isinstance(statement, cst.SimpleStatementLine):
            continue
        for small in statement.body:
            if (
                isinstance(small, cst.Assign)
                and isinstance(small.value, cst.Name)
                and small.value.value in params
                and any(self_attribute(t.target) is not None for t in small.targets)
            ):
                return True
    return False


def _imported_class(rule: Rule, items: list[cst.BaseExpression]) -> str | None:
    """The first item built by a CapWords class imported from outside torch
    (`from layer_norm_lstm import LayerNormLSTMCell`), as this file's imports spell it."""
    for item in items:
        name = rule.index.call_name(item)
        if name is None or name.startswith(("torch.", "torchvision.", "numpy.")):
            continue
        if registration.CAPWORDS.match(name.rsplit(".", 1)[-1]):
            return name
    return None
