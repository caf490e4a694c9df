"""Parent side: run the child process under a time limit and collect its JSON result."""

from __future__ import annotations

import importlib.util
import json
import os
import signal
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from gradlint.probe.spec import ProbeSpec

# The folder holding the `gradlint` package, so the child imports this very copy.
PACKAGE_ROOT = Path(__file__).resolve().parents[2]
INSTALL_HINT = "PyTorch is not installed; install the extra: pip install 'gradlint[probe]'"


class ProbeError(Exception):
    """The probe could not produce measurements; the message is one line for the user."""


def torch_available() -> bool:
    return importlib.util.find_spec("torch") is not None


def run_in_child(mode: str, spec: ProbeSpec) -> dict[str, Any]:
    """Run `mode` ("probe" or "gradcheck") for `spec` in a fresh interpreter."""
    if not torch_available():
        raise ProbeError(INSTALL_HINT)
    with tempfile.TemporaryDirectory(prefix="gradlint-probe-") as tmp:
        spec_file, result_file, stage_file = (
            Path(tmp) / n for n in ("spec.json", "result.json", "stage.txt")
        )
        spec_file.write_text(json.dumps(spec.to_dict()), encoding="utf-8")
        env = dict(os.environ)
        if not {"site-packages", "dist-packages"} & set(PACKAGE_ROOT.parts):
            # A source checkout: make the child import this copy. (An installed gradlint is
            # found anyway, and putting site-packages first could shadow the stdlib.)
            env["PYTHONPATH"] = os.pathsep.join(
                p for p in (str(PACKAGE_ROOT), env.get("PYTHONPATH", "")) if p
            )
        env.setdefault("PYTHONWARNINGS", "ignore")  # the user's warnings are not our output
        command = [
            sys.executable,
            "-m",
            "gradlint.probe.child",
            mode,
            str(spec_file),
            str(result_file),
            str(stage_file),
        ]
        process = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            cwd=spec.cwd or None,
            env=env,
            start_new_session=os.name == "posix",
        )
        try:
            _, stderr = process.communicate(timeout=spec.timeout)
        except subprocess.TimeoutExpired:
            _kill(process)
            stage = _read(stage_file) or "starting"
            raise ProbeError(
                f"{spec.target}: timed out after {spec.timeout:g} s while "
                f"{stage} (raise --timeout if the model is just slow)"
            ) from None
        except BaseException:  # Ctrl-C: the child has its own session and would live on
            _kill(process)
            raise
        result = _read(result_file)
        if result:
            payload = json.loads(result)
            if "error" in payload:
                raise ProbeError(f"{spec.target}: {payload['error']} (while {payload['stage']})")
            return dict(payload["ok"])
        raise ProbeError(f"{spec.target}: {_death(process.returncode, stderr, stage_file)}")


def _death(code: int, stderr: bytes, stage_file: Path) -> str:
    """Describe a child that exited without writing a result."""
    stage = _read(stage_file) or "starting"
    if code < 0:
        name = signal.Signals(-code).name if -code in signal.valid_signals() else str(-code)
        why = " (likely out of memory)" if -code == getattr(signal, "SIGKILL", 9) else ""
        return f"the probe process was killed by {name}{why} while {stage}"
    lines = [line for line in stderr.decode(errors="replace").splitlines() if line.strip()]
    last = lines[-1].strip() if lines else "no message"
    return f"the probe process exited with status {code} while {stage}: {last}"


def _kill(process: subprocess.Popen[bytes]) -> None:
    try:
        if os.name == "posix":
            os.killpg(process.pid, signal.SIGKILL)  # the child may have started workers
        else:
            process.kill()
    except ProcessLookupError:
        pass  # already gone
    process.communicate()


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return ""
