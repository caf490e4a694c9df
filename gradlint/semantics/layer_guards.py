"""Which layers a test picks: `isinstance(m, nn.Linear)`, `type(m) == nn.Linear`,
`type(m) in (nn.Conv2d, nn.Linear)` and the class-name idiom of GAN and pix2pix code
(`classname = m.__class__.__name__; if classname.find('Conv') != -1:`)."""

from __future__ import annotations

from collections.abc import Callable, Mapping

import libcst as cst

from gradlint.semantics import init, tables
from gradlint.semantics.index import TorchIndex
from gradlint.semantics.names import dotted_name

Guards = dict[str, frozenset[str]]  # variable -> qualified layer types it is known to hold
_Match = Callable[[str], bool]


def _torch_classes() -> frozenset[str]:
    found: set[str] = set()
    for value in vars(tables).values():
        if isinstance(value, frozenset):
            found.update(
                v
                for v in value
                if isinstance(v, str) and v.startswith(tables.NN) and "." not in v[len(tables.NN) :]
            )
    return frozenset(found)


# torch.nn classes that class-name tests are matched against (`'Conv'` -> Conv1d, Conv2d, ...)
TORCH_CLASSES = _torch_classes()


def layer_guards(
    index: TorchIndex, test: cst.BaseExpression, local: Mapping[str, cst.BaseExpression]
) -> Guards:
    """variable -> the layer types an `if` test lets through, for every kind of type test."""
    return {
        **init.isinstance_guard(index, test),
        **_type_guard(index, test),
        **_class_name_guard(test, local),
    }


def is_layer_test(
    index: TorchIndex, test: cst.BaseExpression, local: Mapping[str, cst.BaseExpression]
) -> bool:
    """The test only asks what kind of layer a variable is (type tests, `hasattr(m, 'weight')`,
    `m.bias is not None`), so it does not single out some layers of a sweep by name or option."""
    if isinstance(test, cst.BooleanOperation):
        return is_layer_test(index, test.left, local) and is_layer_test(index, test.right, local)
    if isinstance(test, cst.Call) and isinstance(test.func, cst.Name):
        if test.func.value in ("isinstance", "hasattr"):
            return True
    if (
        isinstance(test, cst.Comparison)
        and len(test.comparisons) == 1
        and isinstance(test.comparisons[0].operator, cst.IsNot)
        and isinstance(test.comparisons[0].comparator, cst.Name)
        and test.comparisons[0].comparator.value == "None"
    ):
        return True
    return bool(_type_guard(index, test) or _class_name_guard(test, local))


def _type_guard(index: TorchIndex, test: cst.BaseExpression) -> Guards:
    """{`m`: {torch.nn.Linear}} for the tutorial idiom `if type(m) == nn.Linear:` / `in (..)`."""
    if not (isinstance(test, cst.Comparison) and len(test.comparisons) == 1):
        return {}
    left, (target,) = test.left, test.comparisons
    if not (
        isinstance(left, cst.Call)
        and isinstance(left.func, cst.Name)
        and left.func.value == "type"
        and len(left.args) == 1
        and isinstance(target.operator, (cst.Equal, cst.Is, cst.In))
    ):
        return {}
    subject = dotted_name(left.args[0].value)
    right = target.comparator
    elements = (
        [el.value for el in right.elements]
        if isinstance(right, (cst.Tuple, cst.List, cst.Set))
        else [right]
    )
    if subject is None:
        return {}
    return {subject: frozenset(index.qualified(el) or "?" for el in elements)}


def _class_name_guard(test: cst.BaseExpression, local: Mapping[str, cst.BaseExpression]) -> Guards:
    """{`m`: {Conv1d, Conv2d, ...}} for `classname.find('Conv') != -1`, `'Conv' in classname`,
    `classname == 'Linear'`, `classname.startswith('Conv')`, and `or`/`and` chains of them."""
    if isinstance(test, cst.BooleanOperation):
        left, right = _class_name_guard(test.left, local), _class_name_guard(test.right, local)
        if isinstance(test.operator, cst.And):
            return {**left, **right}
        if left.keys() != right.keys():
            return {}  # `or` over different variables, or with another kind of test
        return {name: left[name] | right[name] for name in left}
    found = _name_test(test)
    if found is None:
        return {}
    subject_node, match = found
    subject = _class_name_subject(subject_node, local)
    if subject is None:
        return {}
    types = frozenset(name for name in TORCH_CLASSES if match(name[len(tables.NN) :]))
    return {subject: types or frozenset({"?"})}


def _name_test(test: cst.BaseExpression) -> tuple[cst.BaseExpression, _Match] | None:
    """(the tested string, what it must match) for a one-comparison test on a string."""
    if isinstance(test, cst.Call) and isinstance(test.func, cst.Attribute):
        if test.func.attr.value == "startswith" and len(test.args) == 1:
            prefix = _string(test.args[0].value)
            if prefix is not None:
                return test.func.value, lambda name: name.startswith(prefix)
        return None
    if not (isinstance(test, cst.Comparison) and len(test.comparisons) == 1):
        return None
    left, operator, right = test.left, test.comparisons[0].operator, test.comparisons[0].comparator
    if (  # `classname.find('Conv') != -1` / `>= 0` / `> -1`
        isinstance(left, cst.Call)
        and isinstance(left.func, cst.Attribute)
        and left.func.attr.value == "find"
        and len(left.args) == 1
        and _is_found(operator, right)
    ):
        part = _string(left.args[0].value)
        if part is not None:
            return left.func.value, lambda name: part in name
    if isinstance(operator, cst.In):
        part = _string(left)
        if part is not None:  # `'Conv' in classname`
            return right, lambda name: part in name
        names = _strings(right)
        if names is not None:  # `classname in ('Conv2d', 'Linear')`
            return left, lambda name: name in names
    if isinstance(operator, cst.Equal):
        exact = _string(right)
        if exact is not None:  # `classname == 'Linear'`
            return left, lambda name: name == exact
    return None


def _is_found(operator: cst.BaseCompOp, right: cst.BaseExpression) -> bool:
    value = _int(right)
    if isinstance(operator, cst.NotEqual):
        return value == -1
    if isinstance(operator, cst.GreaterThanEqual):
        return value == 0
    if isinstance(operator, cst.GreaterThan):
        return value == -1
    return False


def _int(node: cst.BaseExpression) -> int | None:
    if isinstance(node, cst.Integer):
        return int(node.value)
    if (
        isinstance(node, cst.UnaryOperation)
        and isinstance(node.operator, cst.Minus)
        and isinstance(node.expression, cst.Integer)
    ):
        return -int(node.expression.value)
    return None


def _class_name_subject(
    node: cst.BaseExpression, local: Mapping[str, cst.BaseExpression]
) -> str | None:
    """`m` for `m.__class__.__name__`, `type(m).__name__`, or a name bound to either."""
    if isinstance(node, cst.Name) and node.value in local:
        node = local[node.value]
    if not (isinstance(node, cst.Attribute) and node.attr.value == "__name__"):
        return None
    owner = node.value
    if isinstance(owner, cst.Attribute) and owner.attr.value == "__class__":
        return dotted_name(owner.value)
    if (
        isinstance(owner, cst.Call)
        and isinstance(owner.func, cst.Name)
        and owner.func.value == "type"
        and len(owner.args) == 1
    ):
        return dotted_name(owner.args[0].value)
    return None


def _string(node: cst.BaseExpression) -> str | None:
    if isinstance(node, cst.SimpleString):
        value = node.evaluated_value
        return value if isinstance(value, str) else None
    return None


def _strings(node: cst.BaseExpression) -> frozenset[str] | None:
    if not isinstance(node, (cst.Tuple, cst.List, cst.Set)):
        return None
    found = [_string(element.value) for element in node.elements]
    return frozenset(s for s in found if s is not None) if all(found) else None
