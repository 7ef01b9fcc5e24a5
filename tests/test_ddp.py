"""DDP on CPU: `torchrun --nproc_per_node=2` (gloo) steps equal one single-process step on the whole batch, a NaN on
one rank is skipped on both, validation CE does not depend on the number of processes, and missing data fails fast."""
import json, os, subprocess, sys, time
from pathlib import Path

import torch

from avatarl.data import prepare
from avatarl.loop import TrainConfig, estimate_ce, load_checkpoint, read_metrics
from avatarl.model import load_model

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
    # a NaN loss on rank 1 alone: both ranks skip the update and say so
    assert r["nan_moved"] == 0.0 and r["nan_across_ranks"] == 0.0 and r["nan_flags"] == [1.0, 1.0], r
    # train() under torchrun: rank 0 alone logs and saves; the checkpoint holds both ranks' samplers
    rows = read_metrics(out)
    assert [row["iter"] for row in rows] == [0, 3, 6]  # each row once
    assert all(row["tokens_per_sec"] > 0 and row["peak_mem_gb"] > 0 for row in rows[1:])
    assert not any("mfu" in row for row in rows)  # a CPU has no known peak: tokens/s, no MFU
    ckpt = load_checkpoint(out)
    assert ckpt["iter"] == 6 and (out/"best.pt").exists() and not list(out.glob("*.tmp"))
    assert [s["rank"] for s in ckpt["sampler"]] == [0, 1]  # each rank's batch stream, for resume
    assert not torch.equal(ckpt["sampler"][0]["rng"], ckpt["sampler"][1]["rng"])  # ranks draw different batches
    assert r["train"]["iters"] == 6 and r["train"]["val_ce"] == rows[-1]["val_ce"]
    # validation CE of the final weights: two processes (in the run) == one process (here), on 3 batches shared 2 + 1
    single = estimate_ce(load_model(out/"ckpt.pt"), data/"shakespeare-char", "val", TrainConfig(**r["cfg"]))
    assert abs(single - rows[-1]["val_ce"]) < 1e-6, (single, rows[-1]["val_ce"])


def test_ddp_missing_data_fails_fast(tmp_path):
    "Under torchrun, data that is not prepared stops every rank at once with the command to run (no barrier wait)."
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", "-m", "avatarl.cli",
           "--out", tmp_path/"run", "--set", f"data_dir={tmp_path/'nothing'}", "n_layer=1", "n_embd=32", "n_head=2", "grad_accum=2"]
    t0 = time.monotonic()
    res = subprocess.run(list(map(str, cmd)), capture_output=True, text=True, timeout=600,
                         env={**os.environ, "OMP_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": ""})
    assert res.returncode != 0 and time.monotonic() - t0 < 300  # minutes at most on a busy CPU, not a barrier timeout
    assert "avatarl_prepare --corpus shakespeare --tokenizer char" in res.stdout + res.stderr, res.stderr
    assert not (tmp_path/"nothing").exists()  # nobody started preparing it
