"""Nothing silently wrong: the commands under bad input, faults and concurrency (the README's "When something goes
wrong"), one test per kind of fault, numbered. Each command either refuses (a non-zero exit status, a one-line message
that names the file or field, no traceback) or does the right thing, and nothing prepared or checkpointed is lost or
changed.

The commands run in this process, parsed exactly as their console scripts parse `sys.argv` (a new Python costs
seconds); Ctrl-C, a second process and the offline hub run the real command in a subprocess."""
import hashlib, io, json, os, shutil, signal, subprocess, sys, tempfile, time
from contextlib import contextmanager, redirect_stderr, redirect_stdout
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch
from fastcore.script import anno_parser

from avatarl.cli import avatarl_train
from avatarl.data import avatarl_prepare, holding, load_meta, write_json_atomic
from avatarl.explorer import explorer, load_models
from avatarl.loop import load_checkpoint, read_metrics, save_checkpoint
from avatarl.study import study_data
from avatarl.train import avatarl_demo

SHAPE = ["n_layer=1", "n_head=1", "n_embd=16", "block_size=16", "batch_size=4", "eval_iters=1", "warmup_iters=1"]


@dataclass
class Ran:
    "What a command did: its exit status, what it printed, and the message it exited with."
    code: int
    out: str
    err: str
    msg: str  # the last line of stderr: the message of a refusal


def command(cmd, *args) -> Ran:
    "Run `cmd` (a console script's function) in this process on `args`, as its script would; catch its exit."
    out, err, code = io.StringIO(), io.StringIO(), 0
    with redirect_stdout(out), redirect_stderr(err):
        try:
            kwargs = vars(anno_parser(cmd.__wrapped__).parse_args([str(a) for a in args]))
            kwargs.pop("pdb"), kwargs.pop("xtra")
            cmd(**kwargs)
        except SystemExit as e:  # what the interpreter does with it: print a message, exit 1; or exit with the number
            if isinstance(e.code, str): print(e.code, file=sys.stderr)
            code = 1 if isinstance(e.code, str) else e.code or 0
    lines = err.getvalue().strip().splitlines()
    return Ran(code, out.getvalue(), err.getvalue(), lines[-1] if lines else "")


def refused(ran:Ran, *named:str) -> str:
    "Assert a clean refusal whose message names every string in `named`; the message."
    assert ran.code not in (0, None) and "Traceback" not in ran.err, ran.err[-2000:]
    assert all(n in ran.msg for n in named), (named, ran.msg)
    return ran.msg


def done(ran:Ran) -> Ran:
    "Assert a clean success."
    assert ran.code == 0 and "Traceback" not in ran.err, ran.err[-2000:]
    return ran


def snapshot(d:Path) -> dict:
    "Every file under d with a hash of its bytes: what must not change."
    return {str(p.relative_to(d)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(d.rglob("*")) if p.is_file()}


def train(out:Path, data:Path, *args, max_iters:int=4) -> Ran:
    "avatarl_train on the tiny shape, `data` as data_dir, `out` as --out; `args` come last, so they win."
    return command(avatarl_train, "--out", out, "--max_iters", max_iters, "--set", *SHAPE, "eval_interval=2",
                   f"data_dir={data}", *args)


@pytest.fixture(scope="module")
def base(data, tmp_path_factory) -> Path:
    "One finished tiny cross-entropy run (4 steps): a run to resume, and a critic."
    out = tmp_path_factory.mktemp("runs")/"base"
    done(train(out, data))
    return out


@pytest.fixture
def run(base, tmp_path) -> Path:
    "A copy of the finished run, for a test to resume or damage."
    shutil.copytree(base, tmp_path/"run")
    return tmp_path/"run"


def test_1_a_damaged_subset_is_never_replaced_by_the_whole_corpus(data, tmp_path):
    with redirect_stdout(io.StringIO()): sub = study_data(data/"shakespeare-char", tmp_path/"subset", 4000)
    os.truncate(sub/"train.bin", 7999)
    before = snapshot(sub)
    for ran in (train(tmp_path/"out", sub.parent),
                command(avatarl_prepare, "--tokenizer", "char", "--out", sub.parent),
                command(avatarl_prepare, "--tokenizer", "char", "--out", sub.parent, "--force")):
        refused(ran, str(sub), "7,999 bytes", f"cut from {data/'shakespeare-char'}")
    assert snapshot(sub) == before and not (tmp_path/"out").exists()


def test_2_out_is_held_for_the_life_of_a_run(run, data):
    before = snapshot(run)
    with holding(run):  # as a live run on the same directory would
        refused(train(run, data, "--resume", max_iters=6), str(run), f"in use by another run (process {os.getpid()})")
    assert snapshot(run) == before
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    (run/".lock").write_text(dead.stdout)  # what a killed run leaves
    ran = done(train(run, data, "--resume", max_iters=6))
    assert f"taking over the lock of process {dead.stdout.strip()}" in ran.out and not (run/".lock").exists()
    assert load_checkpoint(run)["iter"] == 6


def test_3_repeated_set_and_obj_add_up(data, tmp_path):
    done(command(avatarl_train, "--out", tmp_path/"out", "--max_iters", 2, "--objective", "avatarl",
                 "--set", *SHAPE[:3], "--set", *SHAPE[3:], "eval_interval=2", "--set", f"data_dir={data}",
                 "--obj", "critic_weight=0", "critic_top_k=0", "--obj", "top_k=4", "--obj", "mode=reference"))
    ck = load_checkpoint(tmp_path/"out")
    assert ck["model_args"]["n_embd"] == 16 and ck["model_args"]["n_layer"] == 1 and ck["config"]["block_size"] == 16
    assert ck["config"]["objective_args"] == {"critic_weight": 0, "critic_top_k": 0, "top_k": 4, "mode": "reference"}


def test_4_degenerate_values_are_refused_before_anything_is_written(base, data, tmp_path):
    out = tmp_path/"out"
    cases = [(["--objective", "avatarl", "--obj", "top_k=0"], "top_k=0"),
             (["--objective", "avatarl", "--obj", "critic_weight=1e999", "top_k=4"], "critic_weight=inf"),
             (["--max_iters", "-5"], "max_iters=-5"),
             (["--set", "dropout=nan"], "dropout=nan"), (["--set", "lr=inf"], "lr=inf"),
             (["--set", "n_layer=1.5"], "n_layer"), (["--set", "eval_iters=0"], "eval_iters=0"),
             (["--critic", base], "critic="), (["--obj", "top_k=4"], "top_k"),
             (["--obj", "label_smoothing=abc"], "label_smoothing='abc'")]
    for args, named in cases:
        refused(train(out, data, *args), named)
        assert not out.exists(), args
    refused(command(avatarl_train, "--out", "", "--set", *SHAPE, f"data_dir={data}"), "out_dir=''")
    refused(command(avatarl_demo, "--threads", "-1", "--out", out), "--threads -1")
    assert not out.exists()


def test_5_resume_refuses_changed_settings_and_says_what_it_continues(run, data):
    before = snapshot(run)
    for args, named in ((["--set", "lr=1e-3"], "lr: checkpoint 0.003, now 0.001"),
                        (["--set", "batch_size=8"], "batch_size: checkpoint 4, now 8"),
                        (["--set", "seed=1"], "seed"), (["--set", "dropout=0.1"], "dropout"),
                        (["--obj", "label_smoothing=0.1"], "objective_args"),
                        (["--set", "eval_iters=2"], "eval_iters")):
        msg = refused(train(run, data, "--resume", *args), str(run), named)
        assert "only max_iters, eval_interval" in msg
    assert snapshot(run) == before
    ran = done(train(run, data, "--resume"))  # finished already: said, nothing trained
    assert "resuming at step 4" in ran.out and "max_iters is 4: nothing left to train" in ran.out
    assert snapshot(run) == before
    ran = done(train(run, data, "--resume", max_iters=6))
    assert "max_iters 4 -> 6" in ran.out and load_checkpoint(run)["iter"] == 6
    assert [r["iter"] for r in read_metrics(run) if "val_ce" in r] == [0, 2, 4, 6]


def test_6_token_ids_are_checked_against_the_vocabulary(data, tmp_path):
    d = tmp_path/"data"/"shakespeare-char"
    shutil.copytree(data/"shakespeare-char", d)
    meta = load_meta(d)
    write_json_atomic(d/"meta.json", {**meta, "vocab_size": 50})  # too small for the ids: named by every reader
    with pytest.raises(ValueError, match=f"{d} is damaged: meta.json says vocab_size=50"): load_meta(d)
    write_json_atomic(d/"meta.json", {**meta, "vocab_size": 500})  # too large: named, and the data made again
    ran = done(train(tmp_path/"out-500", d.parent))
    assert f"{d} is damaged (meta.json says vocab_size=500" in ran.out and "making it again" in ran.out
    assert load_meta(d) == meta
    assert load_checkpoint(tmp_path/"out-500")["model_args"]["vocab_size"] == meta["vocab_size"]
    ids = np.memmap(d/"train.bin", dtype=np.uint16, mode="r+")
    ids[1000] = meta["vocab_size"] + 7
    ids.flush(); del ids
    before = snapshot(d)
    refused(train(tmp_path/"out", d.parent), str(d/"train.bin"), f"token id {meta['vocab_size'] + 7}", "--force")
    assert snapshot(d) == before and not (tmp_path/"out").exists()


def test_7_a_full_disk_says_so_and_leaves_no_temporary_file(data, tmp_path):
    if not Path("/dev/full").exists(): pytest.skip("no /dev/full to stand in for a full disk")
    out = tmp_path/"out"
    out.mkdir()
    (out/"ckpt.pt.tmp").symlink_to("/dev/full")  # the checkpoint's temporary file lands on a full disk
    refused(train(out, data), f"no space left on {out}")
    assert not (out/"ckpt.pt.tmp").is_symlink() and not (out/"ckpt.pt").exists()


def test_7_ctrl_c_says_where_it_stopped_and_a_second_run_is_refused_meanwhile(data, tmp_path):
    out = tmp_path/"out"
    cmd = [sys.executable, "-m", "avatarl.cli", "--out", out, "--max_iters", 100_000, "--set", *SHAPE,
           "eval_interval=20", "log_interval=20", f"data_dir={data}"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    log, bar = open(tmp_path/"stdout.txt", "w"), open(tmp_path/"stderr.txt", "w")  # files: a full pipe would stall it
    proc = subprocess.Popen([str(a) for a in cmd], env=env, stdout=log, stderr=bar, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))  # as in a terminal,
    # even when this test runs in the background (where SIGINT is ignored, and the child would inherit that)
    try:
        end = time.monotonic() + 120
        while not (out/"ckpt.pt").exists() or len(read_metrics(out)) < 3:  # a checkpoint, and training under way
            assert proc.poll() is None and time.monotonic() < end, (tmp_path/"stderr.txt").read_text()[-2000:]
            time.sleep(0.2)
        refused(train(out, data, "--resume"), f"in use by another run (process {proc.pid})")
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=180)
    finally:
        if proc.poll() is None: proc.kill()
        log.close(); bar.close()
    err = (tmp_path/"stderr.txt").read_text()
    saved = load_checkpoint(out)["iter"]
    assert proc.returncode == 130 and "Traceback" not in err, err[-2000:]
    last = err.strip().splitlines()[-1]
    assert last.startswith("avatarl_train: interrupted at step ") and "resume with --resume" in last, last
    assert f"holds step {saved}" in last and not (out/".lock").exists()
    done(train(out, data, "--resume", "--set", "eval_interval=20", "log_interval=20", max_iters=saved + 2))


def test_7_openwebtext_offline_is_a_clear_message(tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
    p = subprocess.run([sys.executable, "-m", "avatarl.data", "--corpus", "openwebtext", "--out", tmp_path],
                       env=env, capture_output=True, text=True, timeout=300)
    assert p.returncode == 1 and "Traceback" not in p.stderr, p.stderr[-2000:]
    assert "Skylion007/openwebtext" in p.stderr and "--data_files" in p.stderr


def test_8_a_cut_last_metrics_line_is_dropped_on_resume(run, data):
    rows = read_metrics(run)
    with open(run/"metrics.jsonl", "a") as f: f.write('{"iter": 5, "lr": 0.0')  # what a kill mid-write leaves
    ran = done(train(run, data, "--resume", max_iters=6))
    assert f"{run/'metrics.jsonl'}: dropped its last line" in ran.out
    assert read_metrics(run)[:len(rows)] == rows and [r["iter"] for r in read_metrics(run)][-1] == 6
    text = (run/"metrics.jsonl").read_text()
    (run/"metrics.jsonl").write_text(text.replace("\n", "\n{oops\n", 1))  # a damaged line inside the file
    refused(train(run, data, "--resume", max_iters=8), f"{run/'metrics.jsonl'}, line 2")


@contextmanager
def read_only(d:Path):
    "d and everything in it unwritable for the block; as root, for whom permissions do not apply, as nobody."
    paths = [d, *d.rglob("*")]
    for p in paths: p.chmod(0o555 if p.is_dir() else 0o444)
    try:
        if os.geteuid() == 0: os.seteuid(65534)
        yield
    finally:
        if os.getuid() == 0: os.seteuid(0)
        for p in paths: p.chmod(0o755 if p.is_dir() else 0o644)


def test_9_prepared_data_on_a_read_only_disk_is_used(data):
    top = Path(tempfile.mkdtemp())  # outside pytest's private tmp tree, so that nobody can reach it
    try:
        top.chmod(0o755)
        shutil.copytree(data/"shakespeare-char", top/"shakespeare-char", ignore=shutil.ignore_patterns(".lock"))
        with read_only(top):
            ran = done(command(avatarl_prepare, "--tokenizer", "char", "--out", top))
        assert "up to date" in ran.out and not (top/"shakespeare-char"/".lock").exists()
    finally: shutil.rmtree(top)


class Payload:
    "An object whose unpickling calls os.system: what a malicious checkpoint holds."
    def __init__(self, marker:Path): self.marker = marker
    def __reduce__(self): return (os.system, (f"touch {self.marker}",))


def test_10_a_checkpoint_holding_code_is_called_code(run, data, tmp_path):
    ck = load_checkpoint(run)
    torch.save({**ck, "config": Payload(tmp_path/"ran")}, tmp_path/"code.pt")
    msg = refused(train(tmp_path/"out", data, "--objective", "avatarl", "--critic", tmp_path/"code.pt"),
                  str(tmp_path/"code.pt"), "holds code, a call to", "system")
    assert "damaged" not in msg and not (tmp_path/"ran").exists()
    save_checkpoint({**ck, "out_dir": Path("out/run")}, run/"ckpt.pt")  # a harmless object a careless script saved
    msg = refused(train(run, data, "--resume", max_iters=6), str(run/"ckpt.pt"), "Python object (pathlib.")
    assert "holds code" not in msg


def test_11_failed_commands_leave_nothing_in_the_way(base, data, tmp_path):
    out = tmp_path/"out"
    avatarl = ["--objective", "avatarl", "--critic", base, "--obj"]
    refused(train(out, data, *avatarl, "top_k=500"), "top_k=500", "vocabulary")
    assert not out.exists()
    done(train(out, data, *avatarl, "top_k=4", max_iters=2))  # the corrected command finds nothing in its way
    refused(train(tmp_path/"nothing", data, "--resume"), str(tmp_path/"nothing"/"ckpt.pt"))
    assert not (tmp_path/"nothing").exists()
    m = load_models(critic=base, student=out, verbose=False)  # run directories, as --critic takes them
    assert m.critic_source == str(base/"best.pt") and m.student_source == str(out/"best.pt")
    with pytest.raises(FileNotFoundError, match="no runs directory at"): explorer(out=tmp_path/"typo")
    assert not (tmp_path/"typo").exists() and not (tmp_path/"data").exists()
