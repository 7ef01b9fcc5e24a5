"""The training step never waits on the device: nothing is read back to the host between log rows, even when a
step's gradient is not finite (the update is skipped on the device)."""
import pytest
import torch

from avatarl.loop import CrossEntropy, TrainConfig, make_optimizer, train_step
from avatarl.model import GPT, GPTConfig

READS = ("item", "tolist", "__bool__", "__float__", "__int__", "__index__", "cpu", "numpy")  # host reads of a tensor


def nan_ce(logits, x, y): return CrossEntropy()(logits, x, y)[0] * float("nan"), {}


def steps(device):
    "Three steps (good, NaN, good) of a tiny model on `device`, two micro-batches each."
    torch.manual_seed(0)
    model = GPT(GPTConfig(block_size=16, vocab_size=50, n_layer=1, n_head=2, n_embd=32)).to(device)
    opt = make_optimizer(model, TrainConfig(), device)
    xy = torch.randint(0, 50, (4, 17), device=device)
    batch = lambda: (xy[:, :-1], xy[:, 1:])
    return [train_step(model, opt, obj, batch, 2, lr=1e-3, grad_clip=1.0)[1]["nonfinite"]
            for obj in (CrossEntropy(), nan_ce, CrossEntropy())]


def test_step_reads_nothing_back(monkeypatch):
    reads = []
    for name in READS:
        def spy(self, *a, _orig=getattr(torch.Tensor, name), _name=name, **k):
            reads.append(_name)
            return _orig(self, *a, **k)
        monkeypatch.setattr(torch.Tensor, name, spy)
    flags = steps("cpu")
    assert reads == [], reads
    monkeypatch.undo()
    assert [f.item() for f in flags] == [0.0, 1.0, 0.0]


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA: torch's sync debug mode reports device syncs")
def test_step_does_not_sync_cuda():
    torch.cuda.set_sync_debug_mode("error")  # any synchronising call raises
    try: flags = steps("cuda")
    finally: torch.cuda.set_sync_debug_mode("default")
    assert [f.item() for f in flags] == [0.0, 1.0, 0.0]
