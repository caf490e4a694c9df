"""The Lightning and Hugging Face callbacks run the watch inside their trainers (tiny, CPU)."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")
import torch.nn.functional as F  # noqa: E402
from torch import nn  # noqa: E402

from gradlint.watcher.record import read_runs  # noqa: E402


@pytest.mark.slow  # importing Lightning alone takes ~15 s on a loaded CPU
# Lightning 2.6 calls a pytree API that torch 2.13 deprecates: their warning, not ours.
@pytest.mark.filterwarnings("ignore:`isinstance.treespec, LeafSpec.` is deprecated:FutureWarning")
def test_lightning_callback_records_raw_gradients_before_lightning_clips(tmp_path):
    lightning = pytest.importorskip("lightning.pytorch")
    from gradlint.watcher.lightning import WatchCallback

    class Classifier(lightning.LightningModule):
        def __init__(self) -> None:
            super().__init__()
            self.fc1 = nn.Linear(8, 16)
            self.out = nn.Linear(16, 2)

        def forward(self, x):
            return self.out(F.relu(self.fc1(x)))

        def training_step(self, batch, batch_idx):
            x, y = batch
            return F.cross_entropy(self(x), y)

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=0.1)

    data = torch.utils.data.TensorDataset(torch.randn(64, 8), torch.randint(0, 2, (64,)))
    loader = torch.utils.data.DataLoader(data, batch_size=8)
    callback = WatchCallback(every=2, log=str(tmp_path / "run.jsonl"), report=False)
    trainer = lightning.Trainer(
        max_steps=6, accelerator="cpu", logger=False, enable_checkpointing=False,
        enable_progress_bar=False, enable_model_summary=False, gradient_clip_val=1e-4,
        default_root_dir=tmp_path, callbacks=[callback],
    )
    trainer.fit(Classifier(), loader)
    run = read_runs(tmp_path / "run.jsonl")[-1]
    assert [r["step"] for r in run.steps] == [0, 2, 4]
    assert all(r["loss"] is not None for r in run.steps)  # from on_before_backward
    assert all(r["grad_norm"] > 1e-3 for r in run.steps)  # not the clipped 1e-4
    assert [layer["name"] for layer in run.steps[0]["layers"]] == ["fc1", "out"]
    assert "6 optimizer steps" in callback.report


def test_hf_trainer_callback_watches_a_tiny_gpt2(tmp_path):
    transformers = pytest.importorskip("transformers")
    pytest.importorskip("accelerate")
    from gradlint.watcher.hf import WatchCallback

    config = transformers.GPT2Config(
        vocab_size=64, n_positions=16, n_embd=16, n_layer=2, n_head=2, bos_token_id=0,
        eos_token_id=0,
    )
    model = transformers.GPT2LMHeadModel(config)
    ids = torch.randint(0, 64, (16, 12))
    data = [{"input_ids": row, "labels": row} for row in ids]
    args = transformers.TrainingArguments(
        output_dir=str(tmp_path / "out"), max_steps=4, per_device_train_batch_size=4,
        logging_strategy="no", save_strategy="no", report_to=[], use_cpu=True,
        learning_rate=1e-3, disable_tqdm=True, dataloader_num_workers=0,
    )
    callback = WatchCallback(every=1, log=str(tmp_path / "run.jsonl"), report=False)
    trainer = transformers.Trainer(model=model, args=args, train_dataset=data,
                                   callbacks=[callback])
    trainer.train()
    run = read_runs(tmp_path / "run.jsonl")[-1]
    assert [r["step"] for r in run.steps] == [0, 1, 2, 3]
    names = [layer["name"] for layer in run.steps[0]["layers"]]
    assert "transformer.h.0.attn.c_attn" in names and "transformer.wte" in names
    assert all(r["grad_norm"] > 0 for r in run.steps)
    assert "4 optimizer steps" in callback.report
