"""[tool.gradlint.probe]: reading, validation errors naming file and key, CI-style runs."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest

from gradlint.config import ConfigError
from gradlint.probe.settings import make_spec, parse_probe_table, read_probe_table
from gradlint.probe.spec import InputSpec, Thresholds

MODELS = Path(__file__).parent / "models"


def write(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "pyproject.toml"
    path.write_text("[tool.gradlint]\nselect = [\"GL1\"]\n\n" + textwrap.dedent(body))
    return path


def parse(tmp_path: Path, body: str):
    path = write(tmp_path, body)
    return parse_probe_table(read_probe_table(path), path)


def test_targets_inherit_defaults_and_thresholds(tmp_path):
    defaults, thresholds, targets = parse(tmp_path, """
        [tool.gradlint.probe]
        steps = 3
        thresholds = { vanishing-ratio = 1e-5, dead-fraction = 0.9 }

        [[tool.gradlint.probe.targets]]
        target = "models/mlp.py:MLP"
        init-args = { hidden = 128 }
        input-shape = [32, 784]

        [[tool.gradlint.probe.targets]]
        target = "models.lm:build"
        input-shape = [[4, 64], [4, 64]]
        input-dtype = ["long", "float"]
        input-range = [[0, 30000], [0, 1]]
        loss = "cross_entropy"
        steps = 1
    """)
    assert thresholds == Thresholds(vanishing_ratio=1e-5, dead_fraction=0.9)
    first = make_spec({**defaults, **targets[0]}, "here", thresholds)
    assert (first.steps, first.init_args, first.inputs) == (3, {"hidden": 128},
                                                           (InputSpec((32, 784)),))
    second = make_spec({**defaults, **targets[1]}, "here", thresholds)
    assert second.steps == 1 and second.loss == "cross_entropy"
    assert second.inputs == (InputSpec((4, 64), "long", 0, 30000),
                             InputSpec((4, 64), "float", 0, 1))


@pytest.mark.parametrize("body, message", [
    ("[tool.gradlint.probe]\nstep = 3\n", "[tool.gradlint.probe] unknown key 'step' (did you "
                                          "mean 'steps'?)"),
    ("[tool.gradlint.probe]\nthresholds = { vanishing = 1 }\n", "unknown threshold 'vanishing'"),
    ("[[tool.gradlint.probe.targets]]\ninput-shape = [2, 2]\n",
     "targets[0] needs key 'target'"),
    ("[[tool.gradlint.probe.targets]]\ntarget = \"m.py:M\"\ninput-shape = [2, 2]\nloss = \"l1\"\n",
     "targets[0] 'loss': must be one of projection, cross_entropy, mse, bce_logits"),
    ("[[tool.gradlint.probe.targets]]\ntarget = \"m.py:M\"\ninput-shape = [2, 0]\n",
     "targets[0] 'input-shape': input shape must be positive"),
    ("[[tool.gradlint.probe.targets]]\ntarget = \"m.py:M\"\ninput-shape = [2, 2]\nsteps = 0\n",
     "targets[0] 'steps': must be an integer >= 1"),
    ("[[tool.gradlint.probe.targets]]\ntarget = \"m.py\"\ninput-shape = [2, 2]\n",
     "targets[0] 'target': target must look like"),
    ("[tool.gradlint.probe]\ntargets = 3\n", "'targets' must be an array of tables"),
])
def test_invalid_config_names_file_and_key(tmp_path, body, message):
    with pytest.raises(ConfigError) as info:
        parse(tmp_path, body)
    text = str(info.value)
    assert text.startswith(str(tmp_path / "pyproject.toml"))
    assert message in text


def test_invalid_toml_is_a_config_error(tmp_path):
    path = tmp_path / "pyproject.toml"
    path.write_text("[tool.gradlint.probe\n")
    with pytest.raises(ConfigError, match="invalid TOML"):
        read_probe_table(path)


def test_config_targets_are_all_probed(tmp_path, monkeypatch):
    """`gradlint probe` with no argument probes every configured target (CI use)."""
    pytest.importorskip("torch")
    from click.testing import CliRunner

    from gradlint.probe.cli import probe_command

    (tmp_path / "models").symlink_to(MODELS, target_is_directory=True)
    write(tmp_path, """
        [tool.gradlint.probe]
        timeout = 60

        [[tool.gradlint.probe.targets]]
        target = "models/relu_mlp.py:DeepReluMLP"
        init-args = { depth = 4 }
        input-shape = [16, 32]

        [[tool.gradlint.probe.targets]]
        target = "models/relu_mlp.py:TwoInputs"
        input-fn = "models/relu_mlp.py:example_inputs"
    """)
    work = tmp_path / "sub"
    work.mkdir()
    monkeypatch.chdir(work)  # the config is found above the working folder
    result = CliRunner().invoke(probe_command, ["--format", "json"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    runs = json.loads(result.output)
    assert [r["target"] for r in runs] == ["models/relu_mlp.py:DeepReluMLP",
                                           "models/relu_mlp.py:TwoInputs"]
    assert runs[1]["batch_size"] == 16
    result = CliRunner().invoke(probe_command, ["--steps", "0"])
    assert result.exit_code == 2


def test_no_target_and_no_config_is_an_error(tmp_path, monkeypatch):
    pytest.importorskip("torch")
    from click.testing import CliRunner

    from gradlint.probe.cli import probe_command

    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(probe_command, [])
    assert result.exit_code == 2
    assert "no TARGET given and no [[tool.gradlint.probe.targets]]" in result.output


def test_output_loss_fn_named_ranges_and_hf_targets(tmp_path):
    defaults, thresholds, targets = parse(tmp_path, """
        [[tool.gradlint.probe.targets]]
        target = "models/two.py:Net"
        input-shape = [[4, 12], [4, 12]]
        input-dtype = ["long", "float"]
        input-range = ["1=-1,1"]
        output = "logits"
        loss-fn = "losses.py:my_loss"

        [[tool.gradlint.probe.targets]]
        target = "hf:bert"
    """)
    spec = make_spec({**defaults, **targets[0]}, "here", thresholds)
    assert (spec.output, spec.loss_fn) == ("logits", "losses.py:my_loss")
    assert spec.inputs == (InputSpec((4, 12), "long"), InputSpec((4, 12), "float", -1, 1))
    assert make_spec(targets[1], "here", thresholds).inputs == ()  # token ids by default
    with pytest.raises(ConfigError, match="'loss-fn': must look like"):
        make_spec({**targets[0], "loss-fn": "nofunction"}, "here", thresholds)
