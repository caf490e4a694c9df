"""Child-process entry point: import the user's code, run the probe, write JSON results.

Run as `python -m gradlint.probe.child MODE SPEC.json RESULT.json STAGE.txt`. Everything
the user's code can do (raise, hang, exhaust memory) stays inside this process; the parent
turns it into a one-line probe error.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

from gradlint.probe.spec import ProbeSpec

ERROR_EXIT = 3


class Stage:
    """What the child is doing, written to a file so the parent can name it on a timeout."""

    def __init__(self, path: str) -> None:
        self.path = Path(path)
        self.current = "starting"

    def set(self, text: str) -> None:
        self.current = text
        self.path.write_text(text, encoding="utf-8")


def apply_memory_limit(spec: ProbeSpec) -> None:
    """Cap the address space so a runaway allocation fails as an exception, not an OOM kill."""
    if spec.memory_limit_mb == 0 or spec.device != "cpu":
        return  # CUDA reserves huge virtual ranges; an address-space cap breaks it
    try:
        import resource
    except ImportError:  # not on this platform (Windows)
        return
    limit = (spec.memory_limit_mb or _physical_memory_mb()) * 1024 * 1024
    if limit <= 0:
        return
    _, hard = resource.getrlimit(resource.RLIMIT_AS)
    if hard != resource.RLIM_INFINITY:
        limit = min(limit, hard)
    resource.setrlimit(resource.RLIMIT_AS, (limit, hard))


def _physical_memory_mb() -> int:
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE") // (1024 * 1024)
    except (ValueError, OSError, AttributeError):
        return 0


def run(mode: str, spec: ProbeSpec, stage: Stage) -> dict[str, Any]:
    stage.set("setting limits")
    apply_memory_limit(spec)
    stage.set("importing torch")
    import random

    import torch

    random.seed(spec.seed)  # the model's own init must be reproducible too
    torch.manual_seed(spec.seed)

    from gradlint.probe.hf import build_hf, is_hf_target
    from gradlint.probe.target import build_model, import_object, split_target

    if mode == "probe" and is_hf_target(spec.target):
        stage.set(f"building {spec.target}")
        model, location, default = build_hf(spec.target, spec.init_args, spec.cwd)
        example = default if not spec.inputs and not spec.input_fn else None
        if spec.input_fn:
            example = import_object(spec.input_fn, spec.cwd)()
        return _probe(spec, stage, model, location, example)
    _, name = split_target(spec.target)
    stage.set(f"importing {spec.target}")
    obj = import_object(spec.target, spec.cwd)
    if mode == "gradcheck":
        from gradlint.probe.gradcheck import run_gradcheck

        stage.set(f"running gradcheck on {name}")
        return run_gradcheck(spec, obj, name)
    example = None
    if spec.input_fn:
        stage.set(f"calling {spec.input_fn}")
        example = import_object(spec.input_fn, spec.cwd)()
    stage.set(f"building {name}")
    model, location = build_model(obj, spec.init_args, name)
    return _probe(spec, stage, model, location, example)


def _probe(
    spec: ProbeSpec, stage: Stage, model: Any, location: Any, example: Any
) -> dict[str, Any]:
    from gradlint.probe.target import TargetError, import_object

    user_loss = None
    if spec.loss_fn:
        stage.set(f"importing {spec.loss_fn}")
        user_loss = import_object(spec.loss_fn, spec.cwd)
        if not callable(user_loss):
            raise TargetError(f"{spec.loss_fn} is not a function")
    from gradlint.probe.execute import run_probe

    stage.set(f"running {location.name} forward and backward")
    result: dict[str, Any] = run_probe(spec, model, location, example, user_loss).to_dict()
    return result


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    if len(text) > 300:
        text = text[:297] + "..."
    from gradlint.probe.target import TargetError

    if isinstance(exc, TargetError):
        return text  # our own message about the target; the class name adds nothing
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def main(argv: list[str]) -> int:
    mode, spec_path, result_path, stage_path = argv
    stage = Stage(stage_path)
    spec = ProbeSpec.from_dict(json.loads(Path(spec_path).read_text(encoding="utf-8")))
    if spec.cwd:
        os.chdir(spec.cwd)
    try:
        payload: dict[str, Any] = {"ok": run(mode, spec, stage)}
        code = 0
    # Labelled boundary: user code may raise anything, SystemExit and MemoryError included;
    # the parent reports it as one line.
    except BaseException as exc:  # noqa: BLE001
        payload = {"error": _one_line(exc), "stage": stage.current}
        code = ERROR_EXIT
    Path(result_path).write_text(json.dumps(payload), encoding="utf-8")
    return code


if __name__ == "__main__":
    sys.stdout.flush()
    os._exit(main(sys.argv[1:]))  # skip interpreter teardown: user objects may misbehave there
