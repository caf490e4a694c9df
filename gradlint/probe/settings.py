"""Read and validate `[tool.gradlint.probe]`; merge it with command-line options."""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python < 3.11 only
    import tomli as tomllib

from gradlint.probe.hf import is_hf_target
from gradlint.probe.spec import (
    DEVICES,
    LOSSES,
    MODEL_DTYPES,
    OPTIMIZERS,
    ProbeSpec,
    SpecError,
    Thresholds,
    build_inputs,
    parse_named_range,
    parse_shape,
)

# Keys allowed both at the top of [tool.gradlint.probe] (defaults) and in each target table.
RUN_KEYS = (
    "input-shape",
    "input-dtype",
    "input-range",
    "input-fn",
    "loss",
    "loss-fn",
    "output",
    "steps",
    "optimizer",
    "lr",
    "seed",
    "device",
    "dtype",
    "timeout",
    "memory-limit",
)
TARGET_KEYS = ("target", "init-args", *RUN_KEYS)
TOP_KEYS = ("targets", "thresholds", *RUN_KEYS)


def read_probe_table(path: Path) -> dict[str, Any]:
    """The raw [tool.gradlint.probe] table of `path` (empty when absent)."""
    error = _config_error()
    try:
        with path.open("rb") as handle:
            document = tomllib.load(handle)
    except OSError as exc:
        raise error(f"{path}: cannot read configuration: {exc.strerror or exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise error(f"{path}: invalid TOML: {exc}") from None
    table = document.get("tool", {}).get("gradlint", {}).get("probe", {})
    if not isinstance(table, Mapping):
        raise error(f"{path}: [tool.gradlint.probe] must be a table")
    return dict(table)


def parse_probe_table(
    table: Mapping[str, Any], path: Path
) -> tuple[dict[str, Any], Thresholds, list[dict[str, Any]]]:
    """Validate the table; return (defaults, thresholds, target tables)."""
    error = _config_error()
    where = f"{path}: [tool.gradlint.probe]"
    _check_keys(table, TOP_KEYS, where)
    defaults = {k: v for k, v in table.items() if k in RUN_KEYS}
    thresholds_table = table.get("thresholds", {})
    if not isinstance(thresholds_table, Mapping):
        raise error(f"{where} 'thresholds' must be a table like {{ vanishing-ratio = 1e-4 }}")
    try:
        thresholds = Thresholds().with_values(dict(thresholds_table))
    except SpecError as exc:
        raise error(f"{where}.thresholds: {exc}") from None
    targets = table.get("targets", [])
    if not isinstance(targets, list) or not all(isinstance(t, Mapping) for t in targets):
        raise error(
            f"{where} 'targets' must be an array of tables: [[tool.gradlint.probe.targets]]"
        )
    for i, entry in enumerate(targets):
        here = f"{where} targets[{i}]"
        _check_keys(entry, TARGET_KEYS, here)
        if not isinstance(entry.get("target"), str):
            raise error(f"{here} needs key 'target' = \"path/to/file.py:ClassName\"")
        if not isinstance(entry.get("init-args", {}), Mapping):
            raise error(f"{here} 'init-args' must be a table like {{ hidden = 128 }}")
    # Fail early, naming the key: the defaults alone (inputs may come per target), then
    # each target merged over the defaults.
    make_spec({"input-shape": [1], **defaults, "target": "x.py:X"}, where, thresholds)
    for i, entry in enumerate(targets):
        make_spec({**defaults, **entry}, f"{where} targets[{i}]", thresholds)
    return defaults, thresholds, [dict(t) for t in targets]


def make_spec(
    values: Mapping[str, Any], where: str, thresholds: Thresholds, cwd: str | None = None
) -> ProbeSpec:
    """Build a ProbeSpec from kebab-case `values`; errors name `where` and the key."""
    error = _config_error()
    key = ""
    try:
        key = "target"
        _check_target(values.get("target"))
        key = "init-args"
        init = values.get("init-args", {})
        if isinstance(init, str):
            init = json.loads(init)
        if not isinstance(init, Mapping):
            raise SpecError("must be a JSON object / table of keyword arguments")
        key = "input-shape"
        shapes = [parse_shape(s) for s in _many(values.get("input-shape"), nested=True)]
        key = "input-dtype"
        dtypes = [str(d) for d in _many(values.get("input-dtype"), nested=False)]
        key = "input-range"
        ranges = [parse_named_range(r) for r in _many(values.get("input-range"), nested=True)]
        inputs = build_inputs(shapes, dtypes, ranges)
        if not inputs and not values.get("input-fn") and not is_hf_target(str(values["target"])):
            raise SpecError(
                "give at least one input shape (--input-shape 32,784) or an "
                "input function (input-fn)"
            )
        spec = ProbeSpec(
            target=str(values["target"]),
            init_args=dict(init),
            inputs=inputs,
            input_fn=_get(values, "input-fn", str, None),
            loss=_choice(values, "loss", LOSSES, "projection"),
            output=_output(values),
            loss_fn=_loss_fn(values),
            steps=_number(values, "steps", int, 1, minimum=1),
            optimizer=_choice(values, "optimizer", OPTIMIZERS, "sgd"),
            lr=_number(values, "lr", float, 0.01, minimum=0.0),
            seed=_number(values, "seed", int, 0, minimum=0),
            device=_choice(values, "device", DEVICES, "cpu"),
            dtype=_choice(values, "dtype", MODEL_DTYPES, "float32"),
            timeout=_number(values, "timeout", float, 120.0, minimum=0.001),
            memory_limit_mb=_get(values, "memory-limit", int, None),
            thresholds=thresholds,
            cwd=cwd,
        )
    except (SpecError, json.JSONDecodeError, KeyError) as exc:
        failing = getattr(exc, "key", key)
        raise error(f"{where} '{failing}': {exc}") from None
    return spec


def _output(values: Mapping[str, Any]) -> str | None:
    value = values.get("output")
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (str, int)) or str(value) == "":
        exc = SpecError(f"must be a key like logits or a position like 1, got {value!r}")
        exc.key = "output"  # type: ignore[attr-defined]
        raise exc
    return str(value)


def _loss_fn(values: Mapping[str, Any]) -> str | None:
    value = _get(values, "loss-fn", str, None)
    if value is not None:
        try:
            _check_target(value)
        except SpecError:
            exc = SpecError(f'must look like "losses.py:my_loss" or "pkg.mod:func", got {value!r}')
            exc.key = "loss-fn"  # type: ignore[attr-defined]
            raise exc from None
    return value  # type: ignore[no-any-return]


def _check_target(value: Any) -> None:
    from gradlint.probe.target import TargetError, split_target

    if not isinstance(value, str):
        raise SpecError(f'must be a string like "path/to/file.py:ClassName", got {value!r}')
    if is_hf_target(value):
        return  # hf:MODEL_TYPE or hf:config.json
    try:
        split_target(value)
    except TargetError as exc:
        raise SpecError(str(exc)) from None


def _many(value: Any, nested: bool) -> list[Any]:
    """One value or several: '32,784', [32, 784], [[32, 784], [32, 10]], ('32,784', ...)."""
    if value is None:
        return []
    if isinstance(value, tuple):
        return list(value)
    if isinstance(value, list) and value and (not nested or isinstance(value[0], (list, str))):
        return list(value)
    return [value]


def _get(values: Mapping[str, Any], key: str, kind: type, default: Any) -> Any:
    value = values.get(key, default)
    if value is not None and (isinstance(value, bool) or not isinstance(value, kind)):
        exc = SpecError(f"must be {'a string' if kind is str else 'an integer'}, got {value!r}")
        exc.key = key  # type: ignore[attr-defined]
        raise exc
    return value


def _choice(values: Mapping[str, Any], key: str, choices: tuple[str, ...], default: str) -> str:
    value = values.get(key, default)
    if value not in choices:
        exc = SpecError(f"must be one of {', '.join(choices)}, got {value!r}")
        exc.key = key  # type: ignore[attr-defined]
        raise exc
    return str(value)


def _number(values: Mapping[str, Any], key: str, kind: type, default: float, minimum: float) -> Any:
    value = values.get(key, default)
    ok = not isinstance(value, bool) and isinstance(value, (int, float) if kind is float else int)
    if not ok or value < minimum:
        exc = SpecError(
            f"must be {'a number' if kind is float else 'an integer'} >= {minimum:g}, got {value!r}"
        )
        exc.key = key  # type: ignore[attr-defined]
        raise exc
    return kind(value)


def _check_keys(table: Mapping[str, Any], allowed: tuple[str, ...], where: str) -> None:
    from gradlint.config import did_you_mean

    for key in table:
        if key not in allowed:
            raise _config_error()(f"{where} unknown key '{key}'{did_you_mean(key, allowed)}")


def _config_error() -> type[Exception]:
    from gradlint.config import ConfigError

    return ConfigError
