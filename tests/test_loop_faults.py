"""`train`'s refusals and recoveries, called as a function (02_critic's under-the-hood section points here): bad input
fails before anything is written, a resume with other settings is refused naming each difference, a metrics line cut
short is dropped, a directory held by a live run is refused, a full disk is named.
tests/test_faults.py checks the same faults through the commands."""
import os, shutil
from dataclasses import replace
from pathlib import Path

import pytest

from avatarl.data import holding
from avatarl.loop import TrainConfig, make_config, read_metrics, train

SHAPE = dict(n_layer=2, n_head=2, n_embd=32, block_size=32, batch_size=8, eval_iters=4, dropout=0.1, grad_accum=2,
             max_iters=16, warmup_iters=4, eval_interval=8, log_interval=1)  # 02's resumed run: seconds


@pytest.fixture(scope="module")
def finished(data, tmp_path_factory) -> Path:
    "One finished 16-step run."
    out = tmp_path_factory.mktemp("runs")/"finished"
    train(make_config("cpu-tiny", **SHAPE, data_dir=str(data), out_dir=str(out)))
    return out


@pytest.fixture
def run(finished, data, tmp_path) -> TrainConfig:
    "The config of a copy of the finished run, for a test to resume or damage."
    shutil.copytree(finished, tmp_path/"run")
    return make_config("cpu-tiny", **SHAPE, data_dir=str(data), out_dir=str(tmp_path/"run"))


def refused(fn, error) -> str:
    "The message of the `error` that `fn()` must raise."
    with pytest.raises(error) as e: fn()
    return str(e.value)


def test_bad_input_fails_before_anything_is_written(run, tmp_path):
    ckpt = Path(run.out_dir)/"ckpt.pt"
    before = ckpt.read_bytes()
    msg = refused(lambda: train(replace(run, n_layer=3, n_embd=48), resume=True), ValueError)
    assert "n_layer: checkpoint 2, now 3" in msg and "n_embd: checkpoint 32, now 48" in msg
    assert ckpt.read_bytes() == before  # the mismatch left the checkpoint alone
    assert "already holds a run" in refused(lambda: train(run), FileExistsError)  # a fresh run never overwrites
    assert "nothing to resume" in refused(lambda: train(replace(run, out_dir=str(tmp_path/"empty")), resume=True),
                                          FileNotFoundError)
    assert not (tmp_path/"empty").exists()  # a failed resume leaves nothing behind
    (tmp_path/"a-file").write_text("not a directory")  # nobody, not even root, can write under a regular file
    assert "writable" in refused(lambda: train(replace(run, out_dir=str(tmp_path/"a-file"/"run"))), OSError)


def test_resume_refuses_other_settings_and_says_when_nothing_is_left(run, capsys):
    ckpt = Path(run.out_dir)/"ckpt.pt"
    before = ckpt.read_bytes()
    msg = refused(lambda: train(replace(run, lr=1e-3, batch_size=4), resume=True), ValueError)
    assert "lr: checkpoint 0.003, now 0.001" in msg and "batch_size" in msg
    train(replace(run, eval_interval=4), resume=True)  # a safe change, at max_iters already: said, nothing trained
    said = capsys.readouterr().out
    assert "eval_interval 8 -> 4" in said and "nothing left to train" in said
    assert ckpt.read_bytes() == before


def test_a_metrics_line_cut_short_is_dropped_on_resume(run, capsys):
    logged = [r["iter"] for r in read_metrics(run.out_dir)]
    with open(Path(run.out_dir)/"metrics.jsonl", "a") as f: f.write('{"iter": 17, "lr": 0.00')  # a kill mid-write
    train(replace(run, max_iters=18), resume=True)
    assert "dropped its last line, cut short" in capsys.readouterr().out
    assert [r["iter"] for r in read_metrics(run.out_dir)] == logged + [17, 18]


def test_a_directory_held_by_a_live_run_is_refused(run):
    with holding(Path(run.out_dir)):  # as another process training there would
        msg = refused(lambda: train(replace(run, max_iters=20), resume=True), OSError)
    assert f"in use by another run (process {os.getpid()})" in msg


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs Linux's /dev/full")
def test_a_full_disk_is_named_and_its_temporary_file_removed(run, tmp_path):
    full = tmp_path/"full"
    full.mkdir()
    (full/"ckpt.pt.tmp").symlink_to("/dev/full")  # the checkpoint's temporary file: every write fails with ENOSPC
    msg = refused(lambda: train(replace(run, out_dir=str(full))), OSError)
    assert f"no space left on {full}" in msg and not (full/"ckpt.pt.tmp").is_symlink()

