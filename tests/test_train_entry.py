"""avatarl.train's entry points and refusals, moved out of nbs/08_train.ipynb where they taught nothing: importing
registers nothing (registration is a call), the demo command runs end to end in a fresh process, and bad critics,
settings and demo directories are refused with a message that says what to do."""
import json, subprocess, sys
from pathlib import Path

import pytest

from avatarl.train import avatarl_config, critic_file, demo_dir, DEMO_FILES

REPO = Path(__file__).resolve().parent.parent


def test_importing_registers_nothing_and_the_registrations_are_calls():
    code = ("import avatarl.train, avatarl.reincarnation, avatarl.cli, avatarl.bench\n"
            "from avatarl.loop import OBJECTIVES\n"
            "import avatarl.train as t, avatarl.reincarnation as r\n"
            "before = sorted(OBJECTIVES)\n"
            "a = t.register_objectives()['avatarl'] is t.make_avatarl_objective\n"
            "b = r.register_objectives()['avatarl'] is r.scheduled_objective\n"
            "c = r.register_objectives() is OBJECTIVES and sorted(OBJECTIVES) == ['avatarl', 'ce', 'kd']\n"
            "print(before, a, b, c)")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO)
    assert res.returncode == 0, res.stderr
    assert res.stdout.split() == ["['ce']", "True", "True", "True"], res.stdout


def test_a_missing_critic_is_refused_with_what_to_do(tmp_path):
    with pytest.raises(ValueError, match="needs a critic.*avatarl_train --objective ce"): critic_file("")
    with pytest.raises(FileNotFoundError, match="no critic checkpoint at .*nothing-here"):
        critic_file(tmp_path/"nothing-here")
    (tmp_path/"run").mkdir(); (tmp_path/"run"/"best.pt").touch()
    assert critic_file(tmp_path/"run") == tmp_path/"run"/"best.pt" == critic_file(tmp_path/"run"/"best.pt")


@pytest.mark.parametrize("args, says", [({"topk": 8}, "unknown avatarl setting(s) ['topk']"),
                                        ({"mode": "dense"}, "mode='dense'"),
                                        ({"top_k": 0}, "the student would learn nothing")])
def test_bad_objective_settings_are_refused(args, says):
    with pytest.raises(ValueError) as e: avatarl_config(args)
    assert says in str(e.value)


def test_a_previous_demo_is_kept_unless_forced(tmp_path):
    (tmp_path/"ce").mkdir(parents=True)
    with pytest.raises(FileExistsError, match=r"already holds a demo \(ce\): pass --force"): demo_dir(tmp_path)
    assert (tmp_path/"ce").exists()
    assert demo_dir(tmp_path, force=True) == tmp_path and not (tmp_path/"ce").exists()


def test_the_quick_demo_runs_as_a_user_runs_it(data, tmp_path):
    "`python -m avatarl.train` is what the avatarl_demo command runs: a fresh process registers what it trains."
    res = subprocess.run([sys.executable, "-m", "avatarl.train", "--quick", "--out", str(tmp_path/"demo"), "--data",
                          str(data)], capture_output=True, text=True, cwd=tmp_path)
    assert res.returncode == 0, res.stderr[-3000:]
    assert {p.name for p in (tmp_path/"demo").iterdir()} >= set(DEMO_FILES)
    runs = json.loads((tmp_path/"demo"/"results.json").read_text())["runs"]
    assert runs["ce"]["tokens"] == runs["avatarl"]["tokens"] and runs["avatarl"]["val_ce"] < 4.0
