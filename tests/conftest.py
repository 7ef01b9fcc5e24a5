"""Shared helpers for the tests that cannot live in a notebook."""
import io, os, shutil, subprocess, sys
from contextlib import redirect_stdout
from pathlib import Path

import pytest

from avatarl.data import prepare

REPO = Path(__file__).resolve().parent.parent


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


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    "Character Shakespeare prepared once for the module (copied from the repository's data/ when it is there)."
    root = tmp_path_factory.mktemp("data")
    if (have := REPO/"data"/"shakespeare-char").is_dir(): shutil.copytree(have, root/"shakespeare-char")
    with redirect_stdout(io.StringIO()): prepare("shakespeare", "char", out=root)
    return root
