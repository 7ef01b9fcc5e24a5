"""Shared helpers for the tests that cannot live in a notebook."""
import os, subprocess, sys

import pytest


def run_torchrun(*args, timeout=180):
    "Run `torchrun --standalone --nproc_per_node=2 ARGS` on CPU (gloo); fail with its output if it fails."
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", *map(str, args)]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": ""}
    res = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout)
    assert res.returncode == 0, f"torchrun failed ({res.returncode}):\n{res.stdout}\n{res.stderr}"
    return res


@pytest.fixture
def torchrun():
    "`run_torchrun`, as a fixture."
    return run_torchrun
