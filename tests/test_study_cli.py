"""`avatarl_study` as a command (nbs/10_study.ipynb): a tiny study, its rerun from scratch, and clear errors."""
import json, os, shutil, subprocess, sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def study(*args, cwd):
    "Run `avatarl_study` with `args` in `cwd`, one thread, and return the finished process."
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-m", "avatarl.study", *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=600)


def test_tiny_study_then_rerun_reproduces_it_exactly(tmp_path):
    if (REPO / "data" / "shakespeare-char").exists():                # prepared already: not prepared again
        shutil.copytree(REPO / "data" / "shakespeare-char", tmp_path / "data" / "shakespeare-char")
    p = study("tiny", "--seeds", "0-1", "--workers", "1", "--out", "out", cwd=tmp_path)
    assert p.returncode == 0, p.stderr[-2000:]
    res = json.loads((tmp_path / "out" / "results.json").read_text())
    assert res["regimes"]["tiny"]["command"] == "avatarl_study tiny --seeds 0-1 --workers 1 --out out"
    p = study("tiny", "--seeds", "0-1", "--workers", "2", "--out", "out", "--rerun", "ce,voice", cwd=tmp_path)
    assert p.returncode == 0, p.stderr[-2000:]
    again = json.loads((tmp_path / "out" / "results.json").read_text())
    assert again["regimes"] == res["regimes"]                        # the study itself is left as it was
    rep = again["reproduction"]["tiny"]
    assert (tmp_path / "out" / "rerun" / "tiny" / "critic" / "result.json").exists()
    assert len(rep["runs"]) == 4 and all(r["rerun"] == r["committed"] for r in rep["runs"])  # spawned workers too
    assert "ce: test CE" in p.stdout


def test_bad_input_is_a_clear_error_not_a_traceback(tmp_path):
    cases = [(["nope"], "unknown regime 'nope'"), (["tiny", "--seeds", "a-b"], "--seeds 'a-b'"),
             (["tiny", "--rerun", "ce", "--out", "out"], "holds no 'tiny' study to rerun")]
    for args, msg in cases:
        p = study(*args, cwd=tmp_path)
        assert p.returncode != 0 and msg in p.stderr and "Traceback" not in p.stderr, (args, p.stderr[-1000:])
