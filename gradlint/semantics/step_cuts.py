"""Cuts in training code: what reaches `loss.backward()` outside a module's `forward`.

A training step (a `train()` function, a trainer method, a script or notebook at module
level) cuts the graph silently in two shapes; every other cut makes `backward()` raise:

* the whole loss is cut from the model and wrapped again as a new tensor that requires grad
  (`torch.tensor(loss.item(), requires_grad=True)`, `Variable(out.data, requires_grad=True)`):
  `backward()` runs, and no parameter of the model gets a gradient;
* one term of a loss that still trains is cut (`ce + lam * aux.item()`, a term computed under
  `torch.no_grad()`, feature maps detached before a distillation loss): that term adds
  nothing to the gradient.

Models are the callables the step calls (`model(x)`, `self.net(x)`, `G(z)`); losses and
criteria only pass their inputs through, and teacher / EMA / target networks are constant.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field

import libcst as cst

from gradlint.semantics.cut_flow import EMPTY, Cut, Flow, Tracer, additive_terms, cut_of
from gradlint.semantics.gradient_cuts import is_stop_gradient_name
from gradlint.semantics.index import ModuleClass, TorchIndex
from gradlint.semantics.names import child_blocks, dotted_name
from gradlint.semantics.nodes import findall
from gradlint.semantics.registration import CAPWORDS, layer_kind
from gradlint.semantics.syntax import bare_name, is_name, mentioned_names

# words without which a file holds neither shape (checked on the file's text first)
CUT_WORDS = ("requires_grad", "no_grad", ".item()", "detach()", ".data", ".numpy()")
# callables that combine their inputs (losses, criteria, metrics) rather than hold parameters
_COMBINER = re.compile(r"loss|criterion|crit$|objective|metric|distance|divergence", re.I)
_NO_CLASS = ModuleClass("", cst.ClassDef(cst.Name("_"), cst.IndentedBlock([])))


@dataclass(frozen=True)
class StepCut:
    cut: Cut
    backward: cst.Call  # the `backward()` call the cut value reaches
    term: bool  # only one term of a loss that still trains through the others


def may_cut_in_steps(source: str) -> bool:
    """Whether a file can hold a cut in a training step at all (a text check)."""
    return "backward" in source and any(word in source for word in CUT_WORDS)


def cuts_reaching_backward(
    index: TorchIndex, statements: Sequence[cst.CSTNode], owner: ModuleClass | None = None
) -> list[StepCut]:
    """Cuts that reach a `backward()` call in `statements` (nested definitions excluded);
    `owner` is the module class whose method holds them."""
    tracer = _StepTracer(index, owner or _NO_CLASS, set())
    tracer.run(statements, no_grad=False)
    return tracer.found


@dataclass
class _StepTracer(Tracer):
    found: list[StepCut] = field(default_factory=list)
    rewrapped: set[str] = field(default_factory=set)
    # loss name -> its additive terms that carry only cut values
    dead_terms: dict[str, list[Flow]] = field(default_factory=dict)

    def free_call(self, name: str) -> Flow:
        if _COMBINER.search(name) or is_stop_gradient_name(name):
            return EMPTY  # a criterion passes its inputs through; a teacher is constant
        return Flow(frozenset({"model:" + name}))

    def _self_root(self, attr: str, used: bool) -> Flow:
        if _COMBINER.search(attr):
            return EMPTY  # `self.criterion(out, y)`
        return super()._self_root(attr, used)

    def _assigned(self, node: cst.CSTNode, value: cst.BaseExpression, no_grad: bool) -> Flow:
        if isinstance(value, cst.Call) and self._builds_model(value):
            return Flow(frozenset({"model:" + (bare_name(value.func) or "")}))  # `model = Net()`
        return super()._assigned(node, value, no_grad)

    def _builds_model(self, value: cst.Call) -> bool:
        """`Net()`, `nn.Sequential(...)`, `nn.Linear(4, 2)`: a module that holds parameters."""
        bare = bare_name(value.func) or ""
        if _COMBINER.search(bare) or is_stop_gradient_name(bare):
            return False  # a criterion, a teacher
        if layer_kind(self.index, value) == "layers":
            return True
        name = self.index.call_name(value) or ""
        if name.startswith("torch.") and not name.startswith("torch.nn."):
            return False  # torch.tensor(...), torch.optim.Adam(...): no model
        return CAPWORDS.match(bare) is not None  # a class of this project or another library

    def _call(self, node: cst.Call) -> Flow:
        func = node.func
        if isinstance(func, cst.Attribute) and func.attr.value in ("argmax", "argmin"):
            return cut_of(node, f".{func.attr.value}()", self.flow(func.value))  # class indices
        return super()._call(node)

    def _small(self, node: cst.CSTNode, no_grad: bool) -> None:
        if isinstance(node, cst.Expr) and isinstance(node.value, cst.Call):
            target = _backward_target(node.value)
            if target is not None:
                self._backward(node.value, target)
                return
        before = dict(self.env)
        super()._small(node, no_grad)
        self._track_rewraps(node)
        if isinstance(node, cst.Assign) and len(node.targets) == 1:
            target = node.targets[0].target
            if isinstance(target, cst.Name):
                self._terms(target.value, node.value, before, keep=False)
        elif isinstance(node, cst.AugAssign) and isinstance(node.target, cst.Name):
            if isinstance(node.operator, (cst.AddAssign, cst.SubtractAssign)):
                self._terms(node.target.value, node.value, before, keep=True)

    def _branches(self, node: cst.If, no_grad: bool) -> None:
        """As the base class, and a loss's dead terms from any branch are kept: `loss = ce +
        aux.item()` under `if use_aux:` with `loss = ce` under `else:` still cuts `aux`."""
        before_env, before_terms = dict(self.env), dict(self.dead_terms)
        env, terms = dict(before_env), dict(before_terms)
        for block in child_blocks(node):
            self.env, self.dead_terms = dict(before_env), dict(before_terms)
            self.run(block, no_grad)
            for name, value in self.env.items():
                env[name] = env.get(name, EMPTY) | value
            for name, dead in self.dead_terms.items():
                known = terms.get(name, [])
                terms[name] = known + [flow for flow in dead if flow not in known]
        self.env, self.dead_terms = env, terms

    def _track_rewraps(self, node: cst.CSTNode) -> None:
        """Names holding a tensor made a new leaf that requires grad, or computed from one."""
        if isinstance(node, cst.Assign):
            value = node.value
            names = {n for t in node.targets for n in mentioned_names(t.target)}
            if isinstance(node.targets[0].target, cst.Attribute):  # `x.requires_grad = True`
                if is_name(value, "True") and node.targets[0].target.attr.value == "requires_grad":
                    self.rewrapped |= mentioned_names(node.targets[0].target.value)
                return
            if _rewraps(value) or mentioned_names(value) & self.rewrapped:
                self.rewrapped |= names
            else:
                self.rewrapped -= names
        elif isinstance(node, cst.Expr) and _rewraps(node.value):
            self.rewrapped |= mentioned_names(node.value)  # `loss.requires_grad_()`

    def _terms(
        self, name: str, value: cst.BaseExpression, before: dict[str, Flow], keep: bool
    ) -> None:
        """Remember the terms of `name = a + b` (or `name += b`) that carry only cut values."""
        saved, self.env = self.env, before
        dead = [f for f in map(self.flow, additive_terms(value)) if f.cuts and not f.live]
        for term in additive_terms(value):
            if isinstance(term, cst.Name) and term.value != name:
                dead += self.dead_terms.get(term.value, [])  # `total = ce + aux_loss`
        self.env = saved
        kept = self.dead_terms.get(name, []) if keep or name in _variables(value) else []
        self.dead_terms[name] = kept + dead

    def _backward(self, call: cst.Call, target: cst.BaseExpression) -> None:
        flow = self.flow(target)
        found: list[StepCut] = []
        rewrapped = bool(mentioned_names(target) & self.rewrapped)
        # the last cut is the one nearest the loss; earlier ones (`hidden.detach()` in
        # truncated backprop) are deliberate and merely carried along
        if not flow.live and flow.cuts and rewrapped:
            last = flow.cuts[-1][1]
            found = [StepCut(Cut(last.node, last.operation, True), call, False)]
        elif flow.live and isinstance(target, cst.Name):
            terms = self.dead_terms.get(target.value, [])
            found = [StepCut(term.cuts[-1][1], call, True) for term in terms]
        seen = {step.cut.node for step in self.found}
        for step in found:
            if step.cut.node not in seen:  # loops are traced twice
                seen.add(step.cut.node)
                self.found.append(step)


def _variables(node: cst.CSTNode) -> set[str]:
    """The variables an expression reads: `outputs` in `outputs.loss`, not the attribute
    `loss` (so `loss = outputs.loss` starts a new loss rather than extending the last one)."""
    attributes = {
        id(cst.ensure_type(a, cst.Attribute).attr) for a in findall(node, cst.Attribute)
    }
    return {
        cst.ensure_type(n, cst.Name).value
        for n in findall(node, cst.Name)
        if id(n) not in attributes
    }


def _rewraps(value: cst.BaseExpression) -> bool:
    """`torch.tensor(v, requires_grad=True)`, `Variable(x.data, requires_grad=True)`,
    `x.detach().requires_grad_()`: a new leaf tensor that autograd will accept."""
    for node in findall(value, cst.Call):
        call = cst.ensure_type(node, cst.Call)
        if isinstance(call.func, cst.Attribute) and call.func.attr.value == "requires_grad_":
            if not call.args or is_name(call.args[0].value, "True"):
                return True
        for arg in call.args:
            keyword = arg.keyword.value if arg.keyword is not None else ""
            if keyword == "requires_grad" and is_name(arg.value, "True"):
                return True
    return False


def _backward_target(call: cst.Call) -> cst.BaseExpression | None:
    """`loss` in `loss.backward()`, `scaler.scale(loss).backward()`,
    `accelerator.backward(loss)` and `torch.autograd.backward(loss)`."""
    func = call.func
    if not isinstance(func, cst.Attribute) or func.attr.value != "backward":
        return None
    receiver = func.value
    if call.args and call.args[0].keyword is None and not isinstance(receiver, cst.Call):
        if dotted_name(receiver) in ("torch.autograd", "autograd") or _is_accelerator(receiver):
            return call.args[0].value
        return None  # `x.backward(gradient)`: a non-scalar output with its own gradient
    if (
        isinstance(receiver, cst.Call)
        and isinstance(receiver.func, cst.Attribute)
        and receiver.func.attr.value == "scale"
        and receiver.args
    ):
        return receiver.args[0].value  # AMP: `scaler.scale(loss).backward()`
    return receiver


def _is_accelerator(node: cst.BaseExpression) -> bool:
    name = (dotted_name(node) or "").rsplit(".", 1)[-1].lower()
    return "accelerator" in name or name in ("fabric", "engine")
