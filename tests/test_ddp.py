"""DDP on CPU: `torchrun --nproc_per_node=2` (gloo) steps equal one single-process step on the whole batch."""
import json
from pathlib import Path

import torch

from avatarl.data import prepare
from avatarl.loop import load_checkpoint, read_metrics

WORKER = Path(__file__).with_name("ddp_worker.py")


def test_ddp(tmp_path, torchrun):
    data, out, result = tmp_path/"data", tmp_path/"run", tmp_path/"result.json"
    prepare("shakespeare", "char", out=data)
    torchrun(WORKER, result, data, out)
    r = json.loads(result.read_text())
    # one DDP step on two half-batches == one single-process step on the whole batch
    assert r["world_size"] == 2
    assert r["moved"] > 1e-4  # the step changed the weights, so agreeing below means something
    assert r["half"] < 1e-6, r  # one micro-batch per rank
    assert r["quarters"] < 1e-6, r  # two micro-batches per rank
    assert r["across_ranks"] == 0.0, r  # every rank holds the same weights
    assert r["quarter_allreduces"] == r["half_allreduces"] > 0, r  # the first micro-step ran under no_sync
    # train() under torchrun: rank 0 alone logs and saves; the checkpoint holds both ranks' samplers
    assert [row["iter"] for row in read_metrics(out)] == [0, 3, 6]  # each row once
    ckpt = load_checkpoint(out)
    assert ckpt["iter"] == 6 and (out/"best.pt").exists() and not list(out.glob("*.tmp"))
    assert [s["rank"] for s in ckpt["sampler"]] == [0, 1]  # each rank's batch stream, for resume
    assert not torch.equal(ckpt["sampler"][0]["rng"], ckpt["sampler"][1]["rng"])  # ranks draw different batches
    assert r["train"]["iters"] == 6 and r["train"]["val_ce"] == read_metrics(out)[-1]["val_ce"]
