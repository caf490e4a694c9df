"""Module naming and cross-file name resolution of the project phase."""

from __future__ import annotations

from pathlib import Path

from gradlint.project import ClassFacts, FileSummary, Project, module_name


def _touch(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("")
    return path


def test_module_name_follows_package_folders(tmp_path: Path) -> None:
    _touch(tmp_path / "proj" / "pkg" / "__init__.py")
    _touch(tmp_path / "proj" / "pkg" / "models" / "__init__.py")
    rnn = _touch(tmp_path / "proj" / "pkg" / "models" / "rnn.py")
    script = _touch(tmp_path / "proj" / "train.py")
    assert module_name(rnn) == ("pkg.models.rnn", False)
    assert module_name(tmp_path / "proj" / "pkg" / "models" / "__init__.py") == ("pkg.models", True)
    assert module_name(script) == ("train", False)


def _summary(module: str, *, package: bool = False, imports: dict[str, str] | None = None,
             classes: tuple[str, ...] = ()) -> FileSummary:
    return FileSummary(
        path=module.replace(".", "/") + ".py",
        module=module,
        is_package=package,
        imports=imports or {},
        classes={name: ClassFacts(name=name, line=1, rnn="LSTM") for name in classes},
    )


def test_absolute_and_relative_names_resolve() -> None:
    rnn = _summary("pkg.models.rnn", classes=("Encoder",))
    train = _summary("pkg.train")
    project = Project([rnn, train])
    assert project.find_class("pkg.models.rnn.Encoder", train) == (rnn, rnn.classes["Encoder"])
    assert project.find_class(".models.rnn.Encoder", train) == (rnn, rnn.classes["Encoder"])
    inner = _summary("pkg.models.train_rnn")
    assert project.find_class(".rnn.Encoder", inner) is not None
    assert project.find_class("..train", inner) is None  # a module, not a class


def test_reexports_in_init_are_followed() -> None:
    rnn = _summary("pkg.models.rnn", classes=("Encoder",))
    init = _summary("pkg.models", package=True, imports={"Encoder": ".rnn.Encoder"})
    script = _summary("train")
    project = Project([rnn, init, script])
    found = project.find_class("pkg.models.Encoder", script)
    assert found is not None and found[0] is rnn


def test_names_outside_the_tree_stay_unresolved() -> None:
    project = Project([_summary("train")])
    assert project.find_class("torch.nn.LSTM", project.by_module["train"]) is None
    cyclic = _summary("a", package=True, imports={"X": "a.X"})
    assert Project([cyclic]).find_class("a.X", cyclic) is None


def test_summary_round_trips_through_json() -> None:
    summary = _summary("pkg.models", package=True, imports={"E": ".rnn.E"}, classes=("Net",))
    assert FileSummary.from_json(summary.to_json()) == summary


def test_tuple_assignments_in_init_record_each_layer() -> None:
    import libcst as cst

    from gradlint.semantics.index import TorchIndex

    source = (
        "from torch import nn\n"
        "class Net(nn.Module):\n"
        "    def __init__(self):\n"
        "        super().__init__()\n"
        "        self.fc1, self.fc2 = nn.Linear(4, 4), nn.Linear(4, 2)\n"
        "        self.a, *rest = [1, 2, 3]\n"
    )
    info = TorchIndex(cst.parse_module(source)).module_classes["Net"]
    assert sorted(info.attrs) == ["fc1", "fc2"]
