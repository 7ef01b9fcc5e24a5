"""Run by tests/test_ddp.py under `torchrun --nproc_per_node=2` (gloo): `python ddp_worker.py RESULT DATA OUT`.

1. Every rank builds the same seeded batch of 8 sequences and computes the single-process reference step on
   all of it; then DDP steps where rank r trains on its half only: once as one micro-batch, once as two
   quarters (the first backward under `no_sync`). Rank 0 writes the largest parameter differences to RESULT.
2. A DDP step whose loss is NaN on rank 1 only: both ranks must skip it (same weights, unchanged, on both).
3. `train` itself on a tiny cpu-tiny run (data prepared in DATA, run in OUT), one micro-batch per rank per step.
"""
import json, sys
from pathlib import Path

import torch
import torch.distributed as dist
from torch.distributed.algorithms.ddp_comm_hooks.default_hooks import allreduce_hook
from torch.nn.parallel import DistributedDataParallel as DDP

from avatarl.loop import CrossEntropy, TrainConfig, init_distributed, make_config, make_optimizer, train, train_step
from avatarl.model import GPT, GPTConfig


def fresh():
    "The same seeded model and optimizer on every rank."
    torch.manual_seed(0)
    model = GPT(GPTConfig(block_size=16, vocab_size=50, n_layer=2, n_head=2, n_embd=32))
    return model, make_optimizer(model, TrainConfig(), "cpu")


def step(micro_batches, ddp, objective=CrossEntropy()):
    "A fresh seeded model after one `train_step` over `micro_batches`; how many all-reduces ran; the step's metrics."
    model, opt = fresh()
    calls = {"n": 0}
    def counting_allreduce(state, bucket):
        state["n"] += 1
        return allreduce_hook(None, bucket)
    net = model
    if ddp:
        net = DDP(model)
        net.register_comm_hook(calls, counting_allreduce)
    batches = iter(micro_batches)
    _, metrics = train_step(net, opt, objective, batches.__next__, len(micro_batches), lr=1e-3, grad_clip=1.0)
    return model, calls["n"], metrics


def max_diff(a, b): return max((p - q).abs().max().item() for p, q in zip(a.parameters(), b.parameters()))


def flat(model): return torch.cat([p.detach().flatten() for p in model.parameters()])


def spread(model, d):
    "Largest difference between this model's weights on the ranks."
    every = [torch.zeros_like(flat(model)) for _ in range(d.world_size)]
    dist.all_gather(every, flat(model))
    return (every[0] - every[1]).abs().max().item()


def nan_on_rank(rank):
    "Cross-entropy whose loss is NaN on `rank` only."
    def objective(logits, x, y):
        loss, metrics = CrossEntropy()(logits, x, y)
        return (loss * float("nan") if dist.get_rank() == rank else loss), metrics
    return objective


def main(result:str, data:str, out:str):
    d = init_distributed("cpu")
    torch.manual_seed(1234)
    tokens = torch.randint(0, 50, (8, 17))  # the same batch on every rank
    x, y = tokens[:, :-1], tokens[:, 1:]  # (8, 16) each
    whole, _, _ = step([(x, y)], ddp=False)
    r = slice(4 * d.rank, 4 * d.rank + 4)  # this rank's half
    half, half_calls, _ = step([(x[r], y[r])], ddp=True)
    q1, q2 = slice(r.start, r.start + 2), slice(r.start + 2, r.stop)
    quarters, quarter_calls, _ = step([(x[q1], y[q1]), (x[q2], y[q2])], ddp=True)
    skipped, _, nan_metrics = step([(x[r], y[r])], ddp=True, objective=nan_on_rank(1))
    untrained, _ = fresh()
    res = {"world_size": d.world_size, "half": max_diff(whole, half), "quarters": max_diff(whole, quarters),
           "across_ranks": spread(quarters, d), "half_allreduces": half_calls,
           "quarter_allreduces": quarter_calls, "moved": max_diff(whole, untrained),
           "nan_moved": max_diff(skipped, untrained), "nan_across_ranks": spread(skipped, d)}
    flag = nan_metrics["nonfinite"].reshape(1)
    every = [torch.zeros_like(flag) for _ in range(d.world_size)]
    dist.all_gather(every, flag)
    res["nan_flags"] = [f.item() for f in every]
    cfg = make_config("cpu-tiny", data_dir=data, out_dir=out, n_layer=1, n_head=2, n_embd=32, block_size=32,
                      batch_size=4, grad_accum=2, max_iters=6, eval_interval=3, eval_iters=3, log_interval=3)
    res["train"] = train(cfg)
    res["cfg"] = {k: getattr(cfg, k) for k in ("batch_size", "block_size", "eval_iters")}
    if d.master: Path(result).write_text(json.dumps(res))
    dist.destroy_process_group()


if __name__ == "__main__": main(*sys.argv[1:])
