"""Findings that need two files: a model defined in one, trained in another."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from gradlint.cli import cli

FIXTURE = Path(__file__).parent / "fixtures" / "crossfile"


def test_rnn_model_imported_through_a_package_reexport_is_followed(tmp_path: Path) -> None:
    tree = tmp_path / "crossfile"
    shutil.copytree(FIXTURE, tree)
    result = CliRunner().invoke(cli, ["--select", "GL104", "--no-cache", "-q", str(tree)])
    lines = result.output.splitlines()
    assert result.exit_code == 1, result.output
    assert len(lines) == 1
    assert lines[0].startswith(f"{tree.as_posix()}/train_rnn.py:14:13: GL104 ")
    assert "`Encoder` (" in lines[0] and "models/rnn.py:5" in lines[0] and "nn.GRU" in lines[0]


def test_the_same_loop_over_a_cnn_from_another_file_stays_quiet(tmp_path: Path) -> None:
    tree = tmp_path / "crossfile"
    shutil.copytree(FIXTURE, tree)
    (tree / "train_rnn.py").unlink()
    result = CliRunner().invoke(cli, ["--select", "GL104", "--no-cache", str(tree)])
    assert result.exit_code == 0, result.output


def test_noqa_silences_a_cross_file_finding(tmp_path: Path) -> None:
    tree = tmp_path / "crossfile"
    shutil.copytree(FIXTURE, tree)
    script = tree / "train_rnn.py"
    script.write_text(
        script.read_text().replace("optimizer.step()", "optimizer.step()  # noqa: GL104")
    )
    result = CliRunner().invoke(cli, ["--select", "GL104", "--no-cache", str(tree)])
    assert result.exit_code == 0, result.output


def test_linting_only_the_script_follows_its_imports(tmp_path: Path) -> None:
    """pre-commit and editors name one file: the model it imports is read, not reported."""
    tree = tmp_path / "crossfile"
    shutil.copytree(FIXTURE, tree)
    rnn = tree / "models" / "rnn.py"
    rnn.write_text(rnn.read_text() + "\nstack = nn.Sequential(*[nn.Sigmoid() for _ in range(4)])\n")
    script = str(tree / "train_rnn.py")
    result = CliRunner().invoke(cli, ["--no-cache", "-q", "--format", "json", script])
    assert result.exit_code == 1, result.output
    found = json.loads(result.output)
    assert {Path(f["path"]).name for f in found} == {"train_rnn.py"}  # models/ is never reported
    (gru,) = [f for f in found if f["code"] == "GL104"]
    assert gru["line"] == 14 and "models/rnn.py:5" in gru["message"]


def test_a_followed_import_is_found_from_another_working_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    tree = tmp_path / "crossfile"
    shutil.copytree(FIXTURE, tree)
    (tree / "pyproject.toml").write_text("[tool.gradlint]\nselect = ['GL104']\n")
    monkeypatch.chdir(tree / "models")
    result = CliRunner().invoke(cli, ["--no-cache", "-q", "../train_rnn.py"])
    assert result.exit_code == 1, result.output
    assert result.output.startswith("../train_rnn.py:14:13: GL104 ")


def test_excluded_and_outside_files_are_not_followed(tmp_path: Path) -> None:
    tree = tmp_path / "crossfile"
    shutil.copytree(FIXTURE, tree)
    (tree / "pyproject.toml").write_text("[tool.gradlint]\nextend-exclude = ['models']\n")
    script = str(tree / "train_rnn.py")
    result = CliRunner().invoke(cli, ["--select", "GL104", "--no-cache", script])
    assert result.exit_code == 0, result.output  # the models folder is excluded
    project = tmp_path / "project"
    project.mkdir()
    (project / "pyproject.toml").write_text("[tool.gradlint]\n")
    shutil.move(str(tree / "train_rnn.py"), project / "train_rnn.py")
    (project / "models").symlink_to(tree / "models")  # resolves outside the project root
    script = str(project / "train_rnn.py")
    result = CliRunner().invoke(cli, ["--select", "GL104", "--no-cache", script])
    assert result.exit_code == 0, result.output


def test_following_is_bounded(tmp_path: Path) -> None:
    """A chain of re-exports longer than the budget is given up, not walked to the end."""
    from gradlint.config import Config
    from gradlint.follow import ImportFollower
    from gradlint.project import FileSummary, Project

    for i in range(5):
        (tmp_path / f"m{i}.py").write_text(f"from m{i + 1} import Net\n")
    (tmp_path / "m5.py").write_text("from torch import nn\nclass Net(nn.Module):\n    pass\n")
    origin = FileSummary(path=str(tmp_path / "train.py"), module="train")
    config = Config(root=tmp_path)
    found = Project([origin], ImportFollower(config, [origin]).load).find_class("m0.Net", origin)
    assert found is not None and found[0].module == "m5"
    follower = ImportFollower(config, [origin], limit=3)
    assert Project([origin], follower.load).find_class("m0.Net", origin) is None
    assert follower.left == 0


def test_cross_entropy_on_a_softmax_model_from_another_file(tmp_path: Path) -> None:
    tree = tmp_path / "crossfile"
    shutil.copytree(FIXTURE, tree)
    result = CliRunner().invoke(
        cli, ["--select", "GL106", "--no-cache", "-q", "--format", "json", str(tree)]
    )
    assert result.exit_code == 1, result.output
    # the fixture's configuration extends the selection with GL104
    (finding,) = [f for f in json.loads(result.output) if f["code"] == "GL106"]
    assert finding["path"].endswith("train_classifier.py") and finding["line"] == 13
    assert finding["severity"] == "warning"
    assert (
        "`SoftmaxClassifier`" in finding["message"]
        and "models/classifier.py:6" in finding["message"]
    )


def test_a_piped_buffer_follows_its_imports(tmp_path: Path) -> None:
    tree = tmp_path / "crossfile"
    shutil.copytree(FIXTURE, tree)
    script = tree / "train_rnn.py"
    args = ["--select", "GL104", "--no-cache", "-q", "--stdin-filename", str(script)]
    result = CliRunner().invoke(cli, args, input=script.read_text())
    assert result.exit_code == 1, result.output
    assert result.output.startswith(f"{script.as_posix()}:14:13: GL104 ")


def test_followed_summaries_come_from_the_cache(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import gradlint.engine

    tree = tmp_path / "crossfile"
    shutil.copytree(FIXTURE, tree)
    cache = ["--select", "GL104", "--cache-dir", str(tmp_path / "cache")]
    assert CliRunner().invoke(cli, [*cache, str(tree)]).exit_code == 1  # fills the cache
    parsed: list[str] = []
    real = gradlint.engine.lint_source

    def spy(source: str | bytes, path: str, *args: object, **kwargs: object) -> object:
        parsed.append(Path(path).name)
        return real(source, path, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(gradlint.engine, "lint_source", spy)
    script = tree / "train_rnn.py"
    script.write_text(script.read_text() + "\n")  # the script changed, the models did not
    result = CliRunner().invoke(cli, [*cache, "-q", str(script)])
    assert result.exit_code == 1 and "GL104" in result.output, result.output
    assert parsed == ["train_rnn.py"]


def _package(tmp_path: Path, ends: str, loss: str) -> Path:
    """A package whose models share a base class; a trainer takes any of them."""
    tree = tmp_path / "proj"
    (tree / "pkg" / "models").mkdir(parents=True)
    (tree / "pkg" / "__init__.py").write_text("")
    (tree / "pkg" / "models" / "__init__.py").write_text("")
    (tree / "pkg" / "models" / "base.py").write_text(
        "import torch\n\n\nclass Base(torch.nn.Module):\n    def forward(self, x):\n"
        "        raise NotImplementedError\n"
    )
    (tree / "pkg" / "models" / "mlp.py").write_text(
        "import torch.nn as nn\nimport torch.nn.functional as F\nfrom .base import Base\n\n\n"
        "class Mlp(Base):\n    def __init__(self):\n        super().__init__()\n"
        "        self.fc = nn.Linear(4, 3)\n\n    def forward(self, x):\n"
        f"        out = {ends}(self.fc(x), dim=1)\n        return out\n"
    )
    (tree / "pkg" / "trainer.py").write_text(
        "import torch.nn.functional as F\nfrom pkg.models.base import Base\n\n\n"
        "def compute_loss(model: Base, x, y):\n    scores = model(x)\n"
        f"    return F.{loss}(scores, y)\n"
    )
    return tree


def test_a_subclass_ending_in_softmax_is_reported_where_its_forward_is(tmp_path: Path) -> None:
    tree = _package(tmp_path, "F.softmax", "cross_entropy")
    result = CliRunner().invoke(cli, ["--select", "GL106", "--no-cache", "-q", str(tree)])
    lines = result.output.splitlines()
    assert result.exit_code == 1, result.output
    assert len(lines) == 1 and "/pkg/models/mlp.py:12:15: GL106 " in lines[0]
    assert "`Base` models (" in lines[0] and "trainer.py:7" in lines[0]


@pytest.mark.parametrize(
    ("ends", "loss"), [("F.log_softmax", "cross_entropy"), ("F.softmax", "mse_loss")]
)
def test_subclasses_and_losses_that_fit_stay_quiet(tmp_path: Path, ends: str, loss: str) -> None:
    tree = _package(tmp_path, ends, loss)
    result = CliRunner().invoke(cli, ["--select", "GL106", "--no-cache", "-q", str(tree)])
    assert result.exit_code == 0, result.output
