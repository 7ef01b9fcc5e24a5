"""The GPU configuration, run on CPU: torch.compile for student, critic and loss, bf16 autocast, a few steps of
cross-entropy and of avatarl, in one process and in two (gloo DDP). No graph breaks, no recompilation after the
first optimizer step (while a schedule changes the critic weight every step, through zero), and, under DDP,
identical parameters on both ranks.

The test runs this file as a script (`python FILE RESULT DATA OUT`, or under torchrun), so that Dynamo's global
state starts fresh in each process and never leaks into other tests.
"""
import json, os, subprocess, sys
from dataclasses import replace
from pathlib import Path

import torch
import torch.distributed as dist
from torch._dynamo.utils import counters

from avatarl.data import prepare
from avatarl.loop import CrossEntropy, init_distributed, make_config, run_dir, run_loop, setup_run
from avatarl.train import make_avatarl_objective

TINY = dict(n_layer=1, n_head=2, n_embd=32, block_size=32, batch_size=4, eval_iters=2, warmup_iters=1,
            eval_interval=100, log_interval=100)  # evaluations only before the first step and after the last
GPU_PATH = dict(device="cpu", compile=True, dtype="bfloat16")  # what gpu-small sets on CUDA: compile, bf16 autocast


class Weights:
    "A critic-weight schedule that changes the weight every step, through zero and back."
    values = (0.3, 0.0, 0.6, 0.15)
    def weight(self, it:int)->float: return self.values[it % len(self.values)]
    def on_eval(self, it:int, val_ce:float)->dict: return {}
    def state_dict(self)->dict: return {}
    def load_state_dict(self, sd:dict): pass


class NoRecompiles:
    "An objective, unchanged, except that from the second optimizer step on Dynamo raises instead of recompiling."
    def __init__(self, objective): self.objective = objective
    def __call__(self, *args): return self.objective(*args)
    def on_step(self, it:int):
        torch._dynamo.config.error_on_recompile = it >= 1
        if hasattr(self.objective, "on_step"): self.objective.on_step(it)
    def __getattr__(self, name): return getattr(self.objective, name)


def run(cfg, objective, d)->dict:
    "Train `cfg` with the loop's own setup and loop; what Dynamo did, and every rank's parameters."
    counters.clear()
    with run_dir(cfg, False, d):  # what train does around them: the output directory, made and held
        r = setup_run(cfg, NoRecompiles(objective), False, d, "cpu")
        row = run_loop(r)
    torch._dynamo.config.error_on_recompile = False
    flat = torch.cat([p.detach().flatten() for p in r.raw.parameters()])
    every = [torch.zeros_like(flat) for _ in range(d.world_size)]
    if d.ddp: dist.all_gather(every, flat)
    else: every = [flat]
    return {"graph_breaks": sum(counters["graph_break"].values()), "graphs": counters["stats"]["unique_graphs"],
            "val_ce": row["val_ce"], "across_ranks": max((e - every[0]).abs().max().item() for e in every),
            "world_size": d.world_size}


def main(result:str, data:str, out:str):
    d = init_distributed("cpu")
    base = make_config("cpu-tiny", data_dir=data, grad_accum=d.world_size, **TINY, **GPU_PATH)  # one micro-batch per rank
    res = {"ce": run(replace(base, max_iters=3, out_dir=f"{out}/ce"), CrossEntropy(), d)}
    cfg = replace(base, max_iters=5, out_dir=f"{out}/avatarl", objective="avatarl", critic=f"{out}/ce",
                  objective_args={"top_k": 4})
    res["avatarl"] = run(cfg, make_avatarl_objective(cfg, "cpu", Weights()), d)
    if d.master: Path(result).write_text(json.dumps(res))
    if d.owned: dist.destroy_process_group()


def check(res:dict, world_size:int):
    for name, r in res.items():
        assert r["world_size"] == world_size, (name, r)
        assert r["graph_breaks"] == 0, (name, r)
        assert r["graphs"] > 0, (name, r)  # something was compiled, so the counts above mean something
        assert r["across_ranks"] == 0.0, (name, r)
        assert r["val_ce"] == r["val_ce"] and r["val_ce"] < 10, (name, r)  # finite and sane after a few steps


def test_gpu_path_one_process(tmp_path):
    prepare("shakespeare", "char", out=tmp_path/"data")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": ""}
    env = {k: v for k, v in env.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK")}
    cmd = [sys.executable, __file__, tmp_path/"result.json", tmp_path/"data", tmp_path/"run"]
    p = subprocess.run(list(map(str, cmd)), env=env, capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, f"{p.stdout}\n{p.stderr}"
    check(json.loads((tmp_path/"result.json").read_text()), 1)


def test_gpu_path_ddp(tmp_path, torchrun):
    prepare("shakespeare", "char", out=tmp_path/"data")
    torchrun(__file__, tmp_path/"result.json", tmp_path/"data", tmp_path/"run", timeout=600)
    check(json.loads((tmp_path/"result.json").read_text()), 2)


if __name__ == "__main__": main(*sys.argv[1:])
