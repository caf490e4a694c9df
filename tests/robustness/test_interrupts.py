"""Ctrl-C and the per-file time limit stop work; no rule guard may swallow them."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import libcst as cst
import pytest

from gradlint import Rule, Severity, interrupts
from gradlint.config import Config
from gradlint.engine import lint_source
from gradlint.guard import run_deep

from .conftest import BAD

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "bad" / "char_rnn.py"


class Disguised(Rule):
    """
    ## What it does
    Turns an interrupt into a KeyError the way libcst has been seen to, when a file says so.

    ## Why is this bad?
    It is a test double.
    """

    CODE = "GL194"
    SEVERITY = Severity.INFO
    MESSAGE = "never reported"

    def visit_Module(self, node: cst.Module) -> None:
        if "CHAINED" in node.code:
            try:
                raise KeyboardInterrupt
            except KeyboardInterrupt:
                raise KeyError("node") from None  # __context__ still holds the interrupt
        if "SIGNALLED" in node.code:
            try:
                os.kill(os.getpid(), signal.SIGINT)
                time.sleep(5)
            except KeyboardInterrupt:
                pass  # swallowed somewhere below gradlint...
            raise KeyError("node")  # ...and something else raised in its place


@pytest.fixture
def sigint(monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    previous = signal.getsignal(signal.SIGINT)
    monkeypatch.setattr(interrupts, "_REQUESTED", [])
    interrupts.handle_interrupts()
    yield
    signal.signal(signal.SIGINT, previous)


@pytest.mark.parametrize("marker", ["CHAINED", "SIGNALLED"])
def test_an_interrupt_in_disguise_is_never_a_rule_crash(sigint, marker: str) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(KeyboardInterrupt):
        lint_source(BAD + f"# {marker}\n", "model.py", Config(), [Disguised])


def test_an_ordinary_key_error_is_still_a_rule_crash(sigint) -> None:  # type: ignore[no-untyped-def]
    class Plain(Disguised):
        def visit_Module(self, node: cst.Module) -> None:
            raise KeyError("node")

    result = lint_source(BAD, "model.py", Config(), [Plain])
    assert [f.code for f in result.findings] == ["GL000"]


# the console script, less the interpreter's start-up (an interrupt there is Python's own)
SCRIPT = "import sys, gradlint.cli; print('ready', flush=True); gradlint.cli.main()"


def test_ctrl_c_during_fix_exits_130_and_leaves_files_whole(tmp_path: Path) -> None:
    """A real SIGINT at different moments of a `--fix` run over many files: every file is
    either untouched or completely fixed, and the exit code says "interrupted"."""
    fixed = tmp_path / "reference.py"
    shutil.copy(EXAMPLE, fixed)
    run = [sys.executable, "-c", SCRIPT, "--no-cache", "-j", "1", "--select", "GL104,GL105"]
    run.append("--fix")
    subprocess.run([*run, str(fixed)], capture_output=True, check=False, timeout=120)
    original, complete = EXAMPLE.read_bytes(), fixed.read_bytes()
    assert original != complete
    outcomes = set()
    for delay in (0.1, 0.4, 0.8, 1.5, 2.5):
        tree = tmp_path / f"run{delay}"
        tree.mkdir()
        for i in range(60):
            shutil.copy(EXAMPLE, tree / f"m{i:02}.py")
        pipes = {"stdout": subprocess.PIPE, "stderr": subprocess.PIPE}
        process = subprocess.Popen([*run, str(tree)], **pipes)  # type: ignore[call-overload]
        assert process.stdout.readline() == b"ready\n"
        time.sleep(delay)
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=120)
        states = {p.read_bytes() for p in tree.iterdir()}
        assert states <= {original, complete}, "a file was left half-fixed"
        assert sorted(p.name for p in tree.iterdir()) == [f"m{i:02}.py" for i in range(60)]
        assert b"Traceback" not in err and b"Aborted" not in err and b"GL000" not in out
        if process.returncode == 130:
            assert err.decode().strip().endswith("gradlint: interrupted")
            outcomes.add("untouched" if states == {original} else "partly")
        else:
            # it finished before the signal (the GL105 finding has no fix, so it remains: exit
            # 1), or the signal landed while the interpreter was exiting, after the last write
            assert process.returncode in (1, -signal.SIGINT), err.decode()
            assert states == {complete}
            outcomes.add("finished")
    assert outcomes & {"untouched", "partly"}, "no run was interrupted: raise the file count"


def test_a_timeout_stops_work_on_the_deep_stack_too() -> None:
    finished: list[bool] = []

    def work() -> None:
        for _ in range(50):
            time.sleep(0.1)
        finished.append(True)

    limit = sys.getrecursionlimit()
    start = time.perf_counter()
    with pytest.raises(interrupts.FileTimeout), interrupts.time_limit(1):
        run_deep(work)
    assert time.perf_counter() - start < 3
    time.sleep(0.5)
    assert not finished, "the deep thread was left running"
    assert sys.getrecursionlimit() == limit


def test_the_deep_stack_holds_what_the_default_one_cannot() -> None:
    def depth(n: int) -> int:
        return 0 if n == 0 else 1 + depth(n - 1)

    with pytest.raises(RecursionError):
        depth(20_000)
    assert run_deep(lambda: depth(20_000)) == 20_000


_INTERRUPT_WHILE_LOADING = """
import sys

class Interrupting:
    def find_spec(self, name, path=None, target=None):
        if name == "click":
            raise KeyboardInterrupt
        return None

sys.meta_path.insert(0, Interrupting())
from gradlint.launch import main
main()
"""


def test_ctrl_c_while_the_command_loads_is_one_line_and_exit_130() -> None:
    """The entry point catches an interrupt that lands in an import, before the CLI's own
    handler exists: no traceback, the interrupt's exit code."""
    process = subprocess.run(
        [sys.executable, "-c", _INTERRUPT_WHILE_LOADING, "--version"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert process.returncode == 130
    assert process.stderr == "gradlint: interrupted\n"
    assert process.stdout == ""
