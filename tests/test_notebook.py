"""Jupyter notebooks: cells joined into one program, IPython lines skipped, cell positions."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from gradlint.cli import cli
from gradlint.notebook import NotebookError, neutralise, read_notebook

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "notebooks" / "char_rnn.ipynb"

MODEL_CELL = """\
class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(
            nn.Linear(8, 8), nn.Sigmoid(),
            nn.Linear(8, 8), nn.Sigmoid(),
            nn.Linear(8, 8), nn.Sigmoid(),
            nn.Linear(8, 8), nn.Sigmoid(),
        )"""


def notebook(*cells: str | tuple[str, str], language: str = "python") -> str:
    """nbformat 4 JSON; a plain string is a code cell, ("markdown", text) another kind."""
    items = []
    for cell in cells:
        kind, text = cell if isinstance(cell, tuple) else ("code", cell)
        lines = text.split("\n")
        source = [line + "\n" for line in lines[:-1]] + [lines[-1]]
        item: dict[str, object] = {"cell_type": kind, "metadata": {}, "source": source}
        if kind == "code":
            item.update(execution_count=None, outputs=[])
        items.append(item)
    document = {"cells": items, "metadata": {"language_info": {"name": language}},
                "nbformat": 4, "nbformat_minor": 5}
    return json.dumps(document, indent=1)


def lint(tmp_path: Path, text: str, *args: str, name: str = "nb.ipynb") -> tuple[int, str]:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    result = CliRunner().invoke(cli, [*args, "--no-cache", str(path)])
    return result.exit_code, result.output


def test_finding_names_the_cell_and_the_line_in_it(tmp_path: Path) -> None:
    text = notebook(("markdown", "# title"), "import torch\nfrom torch import nn", MODEL_CELL)
    code, output = lint(tmp_path, text)
    assert code == 1
    # the Sequential is on line 4 of the third cell (the markdown cell counts, as in Jupyter)
    assert f"{tmp_path.as_posix()}/nb.ipynb:cell 3:4:21: GL101 " in output


def test_cells_are_counted_as_the_notebook_shows_them(tmp_path: Path) -> None:
    """Markdown and raw cells count, before, between and after the code cells."""
    text = notebook(("markdown", "# setup"), "import torch\nfrom torch import nn", ("raw", "x"),
                    ("markdown", "## model"), "", MODEL_CELL, ("markdown", "done"))
    code, output = lint(tmp_path, text, "--format", "full")
    assert code == 1
    assert "nb.ipynb:cell 6:4:21: GL101 " in output
    assert "4 |         self.body = nn.Sequential(" in output  # the line, read from cell 6


def test_example_notebook_end_to_end() -> None:
    """The model is defined in cell 3 and trained in cell 7 (the fifth code cell: two markdown
    cells come before it), between magics."""
    result = CliRunner().invoke(
        cli, ["--no-cache", "--preview", "--format", "concise", str(EXAMPLE)]
    )
    assert result.exit_code == 1
    lines = result.output.splitlines()
    assert [re.sub(r"^.*char_rnn\.ipynb:", "", line).split(" ")[:3] for line in lines[:-1]] == [
        ["cell", "7:3:17:", "GL105"], ["cell", "7:11:13:", "GL104"]]
    assert lines[-1] == "Found 2 findings in 1 file (1 checked)."


def test_magics_shell_escapes_and_help_are_skipped_without_shifting_lines() -> None:
    cell = ["%load_ext autoreload", "!pip install torch", "files = !ls", "nn.Linear?",
            "??nn", "for i in range(3):", "    %time f(i)", "x = 1"]
    out = neutralise(cell)
    assert len(out) == len(cell)
    assert out[:5] == ["pass  # %load_ext autoreload", "pass  # !pip install torch",
                       "pass  # files = !ls", "pass  # nn.Linear?", "pass  # ??nn"]
    assert out[5:] == ["for i in range(3):", "    pass  # %time f(i)", "x = 1"]


def test_cell_magic_comments_out_the_whole_cell() -> None:
    assert neutralise(["%%bash", "echo hi", "  ls"]) == ["# %%bash", "# echo hi", "#   ls"]


def test_line_continuation_of_a_magic_is_skipped_too() -> None:
    assert neutralise(["%pip install a \\", "    b", "x = 1"]) == [
        "pass  # %pip install a \\", "#     b", "x = 1"]


def test_percent_inside_brackets_or_after_a_backslash_is_modulo() -> None:
    cell = ["total = (steps", "         % every)", "rest = steps \\", "    % every",
            'doc = """', "%not a magic inside a string", '"""', "%time f()"]
    assert neutralise(cell) == cell[:-1] + ["pass  # %time f()"]


def test_help_with_wildcards_and_automagic_shell_commands() -> None:
    cell = ["torch.*Tensor?", "cd data", "pip install torchvision", "ls -l", "ls = [1, 2]"]
    assert neutralise(cell) == ["pass  # torch.*Tensor?", "pass  # cd data",
                                "pass  # pip install torchvision", "pass  # ls -l", "ls = [1, 2]"]


def test_a_cell_whose_first_line_is_indented_is_dedented_as_ipython_does() -> None:
    cell = ["    x = 1", "    if x:", "        y = 2"]
    assert neutralise(cell) == ["x = 1", "if x:", "    y = 2"]


def test_a_notebook_that_cannot_parse_names_the_cell(tmp_path: Path) -> None:
    _, output = lint(tmp_path, notebook("import torch", "x = (1,"))
    assert "cell 2:" in output and "GL001" in output


def test_magics_do_not_move_findings(tmp_path: Path) -> None:
    plain = notebook("import torch\nfrom torch import nn", MODEL_CELL)
    magic = notebook("%matplotlib inline\n!nvidia-smi\nimport torch\nfrom torch import nn",
                     "%time x = 1\n" + MODEL_CELL)
    _, first = lint(tmp_path, plain)
    _, second = lint(tmp_path, magic)
    assert "cell 2:4:21: GL101" in first
    assert "cell 2:5:21: GL101" in second  # one magic line above it in its own cell


def test_noqa_works_per_line_inside_a_cell(tmp_path: Path) -> None:
    quiet = MODEL_CELL.replace("nn.Sequential(", "nn.Sequential(  # noqa: GL101")
    code, output = lint(tmp_path, notebook("import torch\nfrom torch import nn", quiet))
    assert code == 0, output


def test_broken_notebook_json_is_gl001(tmp_path: Path) -> None:
    code, output = lint(tmp_path, '{"cells": [')
    assert code == 1
    assert re.search(r"nb\.ipynb:1:1: GL001 not valid notebook JSON", output), output


def test_json_without_cells_is_gl001(tmp_path: Path) -> None:
    code, output = lint(tmp_path, '{"torch": 1}')
    assert code == 1 and "GL001 not a Jupyter notebook" in output


def test_syntax_error_in_a_cell_is_reported_in_that_cell(tmp_path: Path) -> None:
    code, output = lint(tmp_path, notebook("import torch", "x = 1\ndef broken(:\n    pass"))
    assert code == 1
    assert "nb.ipynb:cell 2:2:" in output and "GL001 syntax error" in output


def test_non_python_notebook_is_refused_by_the_reader() -> None:
    with pytest.raises(NotebookError, match="julia"):
        read_notebook(notebook("using Flux", language="julia"))


@pytest.mark.parametrize("metadata", [
    {"language_info": {"name": "R"}},
    {"kernelspec": {"name": "ir", "language": "R", "display_name": "R"}},
])
def test_an_r_notebook_is_skipped_with_a_note(tmp_path: Path, metadata: dict[str, object]) -> None:
    document = json.loads(notebook("library(torch)\nx <- torch_randn(2, 3)"))
    document["metadata"] = metadata
    (tmp_path / "analysis.ipynb").write_text(json.dumps(document), encoding="utf-8")
    result = CliRunner().invoke(cli, ["--no-cache", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert "GL001" not in result.stdout
    note = f"{tmp_path.as_posix()}/analysis.ipynb: skipped, notebook language is 'r'"
    assert result.stderr.startswith(f"gradlint: note: {note}")


def test_folders_find_notebooks_but_not_checkpoints(tmp_path: Path) -> None:
    shutil.copy(EXAMPLE, tmp_path / "train.ipynb")
    (tmp_path / ".ipynb_checkpoints").mkdir()
    shutil.copy(EXAMPLE, tmp_path / ".ipynb_checkpoints" / "train-checkpoint.ipynb")
    result = CliRunner().invoke(cli, ["--no-cache", "--preview", str(tmp_path)])
    assert result.exit_code == 1
    assert "train.ipynb:cell 7:" in result.output
    assert "checkpoint" not in result.output


def test_json_output_has_the_cell(tmp_path: Path) -> None:
    code, output = lint(
        tmp_path, EXAMPLE.read_text(encoding="utf-8"), "--format", "json", "-q", "--preview"
    )
    items = json.loads(output)
    assert {(i["cell"], i["line"], i["code"]) for i in items} == {(7, 3, "GL105"), (7, 11, "GL104")}


def test_plain_files_have_a_null_cell_in_json(tmp_path: Path) -> None:
    (tmp_path / "m.py").write_text("import torch\nfrom torch import nn\n" + MODEL_CELL + "\n")
    result = CliRunner().invoke(cli, ["--format", "json", "--no-cache", str(tmp_path / "m.py")])
    assert [item["cell"] for item in json.loads(result.output)] == [None]


def test_full_output_shows_the_line_from_the_cell(tmp_path: Path) -> None:
    _, output = lint(tmp_path, EXAMPLE.read_text(encoding="utf-8"), "--format", "full",
                     "--select", "GL104")
    assert "11 |             optimizer.step()" in output


def test_github_annotates_the_file_with_the_cell_in_the_message(tmp_path: Path) -> None:
    _, output = lint(tmp_path, EXAMPLE.read_text(encoding="utf-8"), "--format", "github",
                     "--select", "GL104")
    (line,) = output.splitlines()
    assert line.startswith("::warning file=")
    assert ",line=" not in line
    assert "::cell 7, line 11: this step trains" in line


def test_sarif_puts_the_cell_in_message_and_properties(tmp_path: Path) -> None:
    _, output = lint(tmp_path, EXAMPLE.read_text(encoding="utf-8"), "--format", "sarif",
                     "--select", "GL104")
    (entry,) = json.loads(output)["runs"][0]["results"]
    assert entry["properties"] == {"cell": 7, "cellLine": 11, "cellColumn": 13}
    assert entry["message"]["text"].startswith("cell 7, line 11: ")
    assert entry["locations"][0]["physicalLocation"]["region"] == {"startLine": 1}


def test_gitlab_report_has_the_cell(tmp_path: Path) -> None:
    _, output = lint(tmp_path, EXAMPLE.read_text(encoding="utf-8"), "--format", "gitlab",
                     "--select", "GL104")
    (issue,) = json.loads(output)
    assert issue["location"]["lines"]["begin"] == 11
    assert "cell 7, line 11:" in issue["description"]


def test_stdin_notebook(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["--stdin-filename", "nb.ipynb", "--select", "GL104"],
                                input=EXAMPLE.read_bytes())
    assert result.exit_code == 1
    assert "nb.ipynb:cell 7:11:13: GL104" in result.output


def test_cached_run_reports_the_same_cells(tmp_path: Path) -> None:
    shutil.copy(EXAMPLE, tmp_path / "train.ipynb")
    args = ["--cache-dir", str(tmp_path / "cache"), "--preview", str(tmp_path / "train.ipynb")]
    first = CliRunner().invoke(cli, args)
    second = CliRunner().invoke(cli, args)
    assert first.output == second.output
    assert "cell 7:11:13: GL104" in second.output


def test_notebook_without_torch_is_skipped_but_a_broken_one_is_not(tmp_path: Path) -> None:
    (tmp_path / "plain.ipynb").write_text(notebook("x = 1"), encoding="utf-8")
    (tmp_path / "broken.ipynb").write_text("{", encoding="utf-8")
    result = CliRunner().invoke(cli, ["--no-cache", str(tmp_path)])
    assert "broken.ipynb:1:1: GL001" in result.output
    assert "plain.ipynb" not in result.output


def test_fix_edits_the_cell_and_nothing_else(tmp_path: Path) -> None:
    """Fixes carry positions in the joined cells; they are written back into the one cell."""
    path = tmp_path / "train.ipynb"
    shutil.copy(EXAMPLE, path)
    before = json.loads(path.read_text(encoding="utf-8"))
    diff = CliRunner().invoke(cli, ["--no-cache", "--diff", "--select", "GL104", str(path)])
    assert diff.exit_code == 1 and f"+++ {path.as_posix()}:cell 7\n" in diff.output
    result = CliRunner().invoke(cli, ["--no-cache", "--fix", "--select", "GL104", str(path)])
    assert result.exit_code == 0, result.output
    after = json.loads(path.read_text(encoding="utf-8"))
    changed = [i for i, (a, b) in enumerate(zip(before["cells"], after["cells"])) if a != b]
    assert changed == [6] and len(after["cells"]) == len(before["cells"])
    assert any("clip_grad_norm_" in line for line in after["cells"][6]["source"])
    assert after["metadata"] == before["metadata"]


CROSSFILE = Path(__file__).resolve().parent / "fixtures" / "crossfile"


def test_a_notebook_trains_a_model_from_a_module_and_shadows_nothing(tmp_path: Path) -> None:
    """`models.ipynb` sorts before `models/`; the project must still resolve `models`."""
    tree = tmp_path / "crossfile"
    shutil.copytree(CROSSFILE, tree)
    script = (tree / "train_rnn.py").read_text(encoding="utf-8")
    (tree / "train_rnn.py").unlink()
    imports, _, rest = script.partition("\n\n\n")
    (tree / "models.ipynb").write_text(notebook("import torch\nx = 1"), encoding="utf-8")
    (tree / "train.ipynb").write_text(notebook(imports, "%time\n" + rest), encoding="utf-8")
    result = CliRunner().invoke(cli, ["--select", "GL104", "--no-cache", "-q", str(tree)])
    assert result.exit_code == 1, result.output
    (line,) = result.output.splitlines()
    assert "train.ipynb:cell 2:" in line and "GL104" in line and "models/rnn.py" in line


def test_a_cell_that_does_not_parse_costs_only_itself(tmp_path: Path) -> None:
    """An exercise notebook with a blank to fill in (`criterion = # TODO`): the other cells
    keep their findings, and the syntax error names its own cell and line."""
    path = tmp_path / "exercise.ipynb"
    model = (
        "import torch.nn.functional as F\nfrom torch import nn\n"
        "class Net(nn.Module):\n    def __init__(self):\n        super().__init__()\n"
        "        self.fc = nn.Linear(4, 2)\n    def forward(self, x):\n"
        "        return F.dropout(self.fc(x), 0.5)"
    )
    blank = "criterion = # TODO: choose a loss\noptimizer = None"
    typo = "import torch\nw = torch.zeros(3)\nw.require_grad = True"
    path.write_text(notebook(model, ("markdown", "Fill in:"), blank, typo), encoding="utf-8")
    result = CliRunner().invoke(cli, ["--no-cache", "--select", "GL001,GL122,GL126", str(path)])
    assert result.exit_code == 1
    found = [
        (line.split(":cell ")[1].split(":")[:2], line.split(": ")[1][:5])
        for line in result.output.splitlines()
        if ":cell " in line
    ]
    assert found == [(["1", "8"], "GL122"), (["3", "1"], "GL001"), (["4", "3"], "GL126")]


def test_lines_named_in_a_message_are_counted_in_their_cell(tmp_path: Path) -> None:
    """`which ends in a sigmoid (line 6)` names the line in the cell that holds it, the way
    the notebook shows it, not the line of all code cells joined."""
    path = tmp_path / "gan.ipynb"
    model = (
        "import torch\nfrom torch import nn\nclass D(nn.Module):\n    def __init__(self):\n"
        "        super().__init__()\n"
        "        self.f = nn.Sequential(nn.Linear(4, 1), nn.Sigmoid())\n"
        "    def forward(self, x):\n        return self.f(x)"
    )
    train = (
        "model = D()\ncriterion = nn.BCELoss()\nfor x, y in loader:\n"
        "    loss = criterion(model(x), y)\n    loss.backward()"
    )
    path.write_text(notebook(model, ("markdown", "Training"), train), encoding="utf-8")
    result = CliRunner().invoke(cli, ["--no-cache", "--select", "GL107", str(path)])
    assert "cell 3:4:12: GL107" in result.output
    assert "ends in a sigmoid (cell 1, line 6)" in result.output, result.output
