"""`avatarl_study` as a command (nbs/10_study.ipynb): a tiny study, its rerun from scratch, and clear errors."""
import json, os, shutil, subprocess, sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def study(*args, cwd):
    "Run `avatarl_study` with `args` in `cwd`, one thread, and return the finished process."
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-m", "avatarl.study", *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=900)


def test_tiny_study_then_rerun_reproduces_it_exactly(tmp_path):
    if (REPO / "data" / "shakespeare-char").exists():                # prepared already: not prepared again
        shutil.copytree(REPO / "data" / "shakespeare-char", tmp_path / "data" / "shakespeare-char")
    p = study("tiny", "--seeds", "1-2", "--workers", "1", "--out", "out", cwd=tmp_path)
    assert p.returncode == 0, p.stderr[-2000:]
    res = json.loads((tmp_path / "out" / "results.json").read_text())
    tiny = res["regimes"]["tiny"]
    assert tiny["command"] == "avatarl_study tiny --seeds 1-2 --tuning_seed 0 --workers 1 --out out"
    assert (tiny["tuning_seed"], tiny["report_seeds"]) == (0, [1, 2])
    assert all("weight_decay" in r and "critic_seed" in r for r in tiny["runs"])
    p = study("tiny", "--seeds", "1-2", "--workers", "2", "--out", "out", "--rerun", cwd=tmp_path)
    assert p.returncode == 0, p.stderr[-2000:]
    again = json.loads((tmp_path / "out" / "results.json").read_text())
    assert again["regimes"] == res["regimes"]                        # the study itself is left as it was
    rep = again["reproduction"]["tiny"]
    assert rep["same_choices"] and len(rep["critics"]) == 5          # 3 critics, 2 born-again critics
    arms = {r["arm"] for r in rep["runs"]}
    assert arms == {"ce", "ce-ensemble", "kd", "consensus", "self-smooth", "ba-consensus"}
    assert all(r["rerun"] == r["committed"] for r in rep["runs"] + rep["critics"])  # exact, in spawned workers too
    assert "every rerun equals its committed run" in p.stdout


def test_bad_input_is_a_clear_error_not_a_traceback(tmp_path):
    (tmp_path / "bad.json").write_text("[1, 2")
    (tmp_path / "list.json").write_text("[1, 2]")
    cases = [(["nope"], "unknown regime 'nope'"), (["tiny", "--seeds", "a-b"], "--seeds 'a-b'"),
             (["tiny", "--seeds", "1,2,2"], "names seed 2 twice"),
             (["tiny", "--rerun", "--out", "out"], "holds no 'tiny' study to rerun"),
             (["tiny", "--results", "bad.json"], "bad.json is not valid JSON"),
             (["tiny", "--results", "list.json"], "list.json is not a study's results")]
    for args, msg in cases:
        p = study(*args, cwd=tmp_path)
        assert p.returncode != 0 and msg in p.stderr and "Traceback" not in p.stderr, (args, p.stderr[-1000:])
    assert not (tmp_path / "out").exists() and (tmp_path / "bad.json").read_text() == "[1, 2"  # nothing trained


def test_the_tuning_seed_is_never_a_report_seed(tmp_path):
    if (REPO / "data" / "shakespeare-char").exists():
        shutil.copytree(REPO / "data" / "shakespeare-char", tmp_path / "data" / "shakespeare-char")
    p = study("tiny", "--seeds", "0-1", "--out", "out", cwd=tmp_path)
    assert p.returncode != 0 and "also a report seed" in p.stderr and "Traceback" not in p.stderr, p.stderr[-1000:]


def test_a_ladder_runs_each_level_as_a_regime_and_records_its_passes(tmp_path):
    if (REPO / "data" / "shakespeare-char").exists():
        shutil.copytree(REPO / "data" / "shakespeare-char", tmp_path / "data" / "shakespeare-char")
    p = study("tiny-ladder", "--seeds", "1-2", "--workers", "1", "--out", "out", cwd=tmp_path)
    assert p.returncode == 0, p.stderr[-2000:]
    lad = json.loads((tmp_path / "out" / "results.json").read_text())["regimes"]["tiny-ladder"]
    assert lad["command"] == "avatarl_study tiny-ladder --seeds 1-2 --tuning_seed 0 --workers 1 --out out"
    assert sorted(lad["levels"]) == ["1", "4"] and lad["design"]["passes"] == [1, 4]
    for p_, lv in lad["levels"].items():
        students = [r for r in lv["runs"] if r["arm"] != "critic"]
        assert {r["passes"] for r in students} == {float(p_)}         # the text is cut so a student sees it p times
        assert {r["critic"] for r in students if r["critic"]} == {f"tiny-ladder/p{p_}/critic/s1000"}  # one a level
        assert {r["seed"] for r in students} == {0, 1, 2}
    p = study("tiny-ladder", "--seeds", "1-2", "--rerun", "--out", "out", cwd=tmp_path)
    assert p.returncode != 0 and "is a ladder" in p.stderr and "Traceback" not in p.stderr, p.stderr[-1000:]
