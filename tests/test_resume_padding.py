"""Resuming a checkpoint written before the token matrix was padded to a multiple of 64 (nbs/02_critic.ipynb)."""
import torch

from avatarl.loop import pad_moments
from avatarl.model import GPT, GPTConfig


def test_moments_saved_unpadded_are_zero_padded_and_training_continues():
    torch.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=81, block_size=8, n_layer=1, n_head=2, n_embd=16))
    V, Vp = 81, model.config.padded_vocab_size
    assert Vp == 128
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    x = torch.randint(0, V, (2, 8))
    model(x).logsumexp(-1).mean().backward(); opt.step(); opt.zero_grad()
    saved = opt.state_dict()
    tok = next(i for i, p in enumerate(model.parameters()) if p.shape == (Vp, 16))
    old = {k: v[:V].clone() for k, v in saved["state"][tok].items() if v.dim() == 2}  # as the old code saved them
    saved["state"][tok].update(old)
    opt.load_state_dict(saved)
    pad_moments(opt)
    p = list(model.parameters())[tok]
    for k, v in opt.state[p].items():
        if torch.is_tensor(v) and v.dim() == 2:
            assert v.shape == (Vp, 16) and torch.equal(v[:V], old[k]) and not v[V:].any(), k
    model(x).logsumexp(-1).mean().backward(); opt.step()              # the step runs: the shapes agree again
    assert torch.isfinite(p).all()
