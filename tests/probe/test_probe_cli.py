"""The `probe` and `gradcheck` click commands, run through CliRunner (the child is real)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

from click.testing import CliRunner  # noqa: E402
from probe_helpers import MODELS  # noqa: E402

from gradlint.probe.cli import gradcheck_command, probe_command  # noqa: E402

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def run(monkeypatch):
    monkeypatch.chdir(MODELS)

    def invoke(command, *args: str):
        return CliRunner().invoke(command, list(args), catch_exceptions=False)

    return invoke


def one_error_line(result) -> str:
    output = result.output.strip()
    assert result.exit_code == 2, output
    assert "Traceback" not in output
    assert len(output.splitlines()) == 1, output
    return output


def test_probe_reports_vanishing_gradient_with_a_layer_table(run):
    result = run(probe_command, "sigmoid_mlp.py:DeepSigmoidMLP", "--input-shape", "64,32")
    assert result.exit_code == 1, result.output
    lines = result.output.splitlines()
    assert lines[2].split()[:4] == ["#", "layer", "type", "out"]
    assert any(line.split()[:3] == ["0", "net.0", "Linear"] and "VANISHING" in line
               for line in lines)
    assert "sigmoid_mlp.py:7:1: GL201 vanishing-gradient [warning]" in result.output
    from gradlint.registry import find_rule

    if find_rule("GL101") is not None:
        assert "GL101 deep-saturating-stack: CONFIRMED: GL201" in result.output


def test_probe_json_and_plot_for_a_clean_model(run, tmp_path):
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        plot = []  # the chart is optional; the JSON part still runs
    else:
        plot = ["--plot", str(tmp_path / "flow.png")]
    result = run(probe_command, "relu_mlp.py:DeepReluMLP", "--init-args", '{"depth": 20}',
                 "--input-shape", "64,32", "--format", "json", *plot)
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["findings"] == []
    assert data["location"]["line"] == 13 and data["location"]["name"] == "DeepReluMLP"
    assert [m["name"] for m in data["layers"] if m["kind"] == "layer"][:2] == ["layers.0",
                                                                                "layers.1"]
    assert 0.1 < data["ratios"]["act_grad"] < 10
    assert data["cross_check"]["available"] is True
    if plot:
        assert (tmp_path / "flow.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_softmax_probabilities_under_cross_entropy(run):
    result = run(probe_command, "softmax_classifier.py:SoftmaxClassifier",
                 "--input-shape", "64,32", "--loss", "cross_entropy")
    assert "note: the outputs are probabilities (non-negative, rows sum to 1); cross entropy " \
           "on them passes 0.1x of the gradient" in result.output
    from gradlint.registry import find_rule

    if find_rule("GL106") is not None:  # a confirmed static error fails the run
        assert result.exit_code == 1, result.output
        assert "GL106 softmax-before-cross-entropy: CONFIRMED" in result.output
    else:
        assert result.exit_code == 0, result.output


def test_import_error_is_one_line(run):
    output = one_error_line(run(probe_command, "raises_at_import.py:Model",
                                "--input-shape", "4,4"))
    assert output == ("gradlint probe: error: raises_at_import.py:Model: ImportError: No module "
                      "named 'company_internal_layers' (while importing "
                      "raises_at_import.py:Model)")


def test_hang_is_killed_after_the_timeout(run):
    output = one_error_line(run(probe_command, "broken.py:Hangs", "--input-shape", "4,4",
                                "--timeout", "3"))
    assert "timed out after 3 s" in output


def test_absurd_allocation_is_one_line(run):
    output = one_error_line(run(probe_command, "broken.py:Hog", "--input-shape", "4,4",
                                "--memory-limit", "2048"))
    assert "can't allocate memory" in output or "MemoryError" in output


def test_bad_options_fail_before_running(run):
    output = one_error_line(run(probe_command, "relu_mlp.py", "--input-shape", "4,4"))
    assert "target must look like path/to/file.py:ClassName" in output
    output = one_error_line(run(probe_command, "relu_mlp.py:DeepReluMLP",
                                "--input-shape", "4,32", "--input-dtype", "long"))
    assert "integer inputs need --input-range LOW,HIGH: the model has no nn.Embedding" in output
    output = one_error_line(run(probe_command, "relu_mlp.py:TwoInputs",
                                "--input-shape", "4,x"))
    assert "input shape must be integers" in output
    output = one_error_line(run(probe_command, "relu_mlp.py:TwoInputs", "--input-shape", "4,4",
                                "--threshold", "vanish=1"))
    assert "unknown threshold 'vanish'" in output


def test_without_torch_the_extra_is_named(run, monkeypatch):
    import gradlint.probe.cli as cli

    monkeypatch.setattr(cli, "torch_available", lambda: False)
    for command in (probe_command, gradcheck_command):
        output = one_error_line(run(command, "relu_mlp.py:TwoInputs", "--input-shape", "4,4"))
        assert "pip install 'gradlint[probe]'" in output


def test_gradcheck_passes_and_fails(run):
    ok = run(gradcheck_command, "autograd_fn.py:Cube", "--input-shape", "3,4")
    assert ok.exit_code == 0, ok.output
    assert "input 0 (3, 4): worst relative error" in ok.output and "PASS" in ok.output
    bad = run(gradcheck_command, "autograd_fn.py:WrongCube", "--input-shape", "3,4",
              "--format", "json")
    assert bad.exit_code == 1, bad.output
    data = json.loads(bad.output)
    assert data["passed"] is False
    assert data["inputs"][0]["relative_error"] == pytest.approx(1 / 3, rel=1e-3)


def test_probe_through_a_real_python_process(tmp_path):
    """The whole path as a user runs it: `python -m gradlint probe` starting the child."""
    env = dict(os.environ, PYTHONPATH=str(REPO))
    proc = subprocess.run(
        [sys.executable, "-m", "gradlint", "probe", "zero_init.py:ZeroInitMLP",
         "--input-shape", "8,32", "--format", "json"],
        cwd=MODELS, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1, proc.stderr
    data = json.loads(proc.stdout)
    assert [f["code"] for f in data["findings"]] == ["GL207"]
    assert data["findings"][0]["path"] == "zero_init.py"


def test_output_selects_what_enters_the_loss(run):
    result = run(probe_command, "heads.py:TwoHeads", "--input-shape", "16,32", "--format", "json")
    assert result.exit_code == 0, result.output  # both heads enter the default loss
    result = run(probe_command, "heads.py:TwoHeads", "--input-shape", "16,32",
                 "--output", "logits_main")
    assert result.exit_code == 1, result.output
    assert "`aux.weight`, `aux.bias` get no gradient" in result.output
    output = one_error_line(run(probe_command, "heads.py:TwoHeads", "--input-shape", "16,32",
                                "--output", "nope"))
    assert "--output 'nope': the output has keys logits_main, recon" in output


def test_user_loss_function(run):
    result = run(probe_command, "heads.py:TwoHeads", "--input-shape", "16,32",
                 "--loss-fn", "heads.py:main_only")
    assert result.exit_code == 1, result.output
    assert "loss heads.py:main_only" in result.output
    assert "`aux.weight`, `aux.bias` get no gradient" in result.output
    output = one_error_line(run(probe_command, "heads.py:TwoHeads", "--input-shape", "16,32",
                                "--loss-fn", "heads.py:not_a_scalar"))
    assert "--loss-fn must return a scalar tensor" in output


def test_vocabulary_is_inferred_and_ranges_apply_to_the_inputs_they_name(run):
    result = run(probe_command, "heads.py:TokenTagger", "--input-shape", "8,12",
                 "--input-shape", "8,12", "--input-dtype", "long", "--input-dtype", "float",
                 "--format", "json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["layers"][0]["name"] == "embed"
    output = one_error_line(run(probe_command, "relu_mlp.py:TwoInputs", "--input-shape", "4,32",
                                "--input-shape", "4,8", "--input-range", "2=0,1"))
    assert "--input-range names input 2, but there are 2" in output


def test_named_and_single_ranges():
    from gradlint.probe.spec import build_inputs, parse_named_range

    both = [(4, 12), (4, 12)]
    ids, feature = build_inputs(both, ["long", "float"], [parse_named_range("0,100")])
    assert (ids.low, ids.high) == (0, 100) and feature.high is None  # float stays N(0, 1)
    ids, feature = build_inputs(both, ["long", "float"], [parse_named_range("1=-1,1")])
    assert ids.high is None and (feature.low, feature.high) == (-1, 1)


def test_factory_of_a_library_model_points_at_the_factory(run):
    pytest.importorskip("transformers")
    result = run(probe_command, "heads.py:library_bert", "--input-shape", "8,16",
                 "--input-dtype", "long", "--format", "json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["location"]["path"] == "heads.py"
    assert data["location"]["name"] == "library_bert"


def test_gradcheck_default_tolerance_is_tight(run):
    bad = run(gradcheck_command, "autograd_fn.py:SlightlyWrongSquare", "--input-shape", "3,4")
    assert bad.exit_code == 1, bad.output
    assert "atol 1e-07, rtol 1e-05" in bad.output
    loose = run(gradcheck_command, "autograd_fn.py:SlightlyWrongSquare", "--input-shape", "3,4",
                "--atol", "1e-5", "--rtol", "1e-3")
    assert loose.exit_code == 0, loose.output


def test_gradcheck_domain_and_non_tensor_arguments_could_not_run(run):
    output = one_error_line(run(gradcheck_command, "autograd_fn.py:Log", "--input-shape", "3,4"))
    assert "could not run: the output has NaN/Inf on inputs drawn from N(0, 1)" in output
    ok = run(gradcheck_command, "autograd_fn.py:Log", "--input-shape", "3,4",
             "--input-range", "0.5,2")
    assert ok.exit_code == 0, ok.output
    output = one_error_line(run(gradcheck_command, "autograd_fn.py:SumAlong",
                                "--input-shape", "3,4"))
    assert "takes (x, dim); 1 tensor input(s) given and gradcheck cannot generate dim" in output


def test_gradgradcheck(run):
    ok = run(gradcheck_command, "autograd_fn.py:Cube", "--input-shape", "2,3", "--gradgrad")
    assert ok.exit_code == 0, ok.output
    assert "second derivatives (gradgradcheck): ok" in ok.output
    bad = run(gradcheck_command, "autograd_fn.py:FirstOrderOnlyCube", "--input-shape", "2,3",
              "--gradgrad")
    assert bad.exit_code == 1, bad.output
    assert "second derivatives (gradgradcheck): MISMATCH" in bad.output
    assert "PASS" not in bad.output


@pytest.mark.slow
def test_transformers_model_from_a_type_name_or_a_config_file(run, tmp_path):
    """No factory file, no weights, no network: hf:MODEL_TYPE scaled small, or a JSON."""
    pytest.importorskip("transformers")
    result = run(probe_command, "hf:bert", "--format", "json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["location"]["name"] == "BertModel"
    assert data["layers"][0]["name"] == "embeddings.word_embeddings"
    config = tmp_path / "tiny.json"
    config.write_text(json.dumps({
        "model_type": "gpt2", "architectures": ["GPT2LMHeadModel"], "vocab_size": 300,
        "n_embd": 32, "n_layer": 1, "n_head": 2, "bos_token_id": 0, "eos_token_id": 0}))
    result = run(probe_command, f"hf:{config}", "--input-shape", "4,16", "--input-dtype",
                 "long", "--format", "json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["location"]["name"] == "GPT2LMHeadModel"
    output = one_error_line(run(probe_command, "hf:no_such.json"))
    assert "no such config file: no_such.json" in output
