"""`course_models`: two processes asking for the course models at once train each model once, and both get it."""
import subprocess, sys

import torch

from avatarl.loop import course_models

CALL = "from avatarl.loop import course_models; course_models(out={out!r}, tiny=True)"


def test_course_models_train_once(tmp_path):
    out = tmp_path/"out"
    procs = [subprocess.Popen([sys.executable, "-c", CALL.format(out=str(out))], stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True) for _ in range(2)]
    logs = [p.communicate(timeout=300)[0] for p in procs]
    assert all(p.returncode == 0 for p in procs), logs
    said = "".join(logs)
    assert said.count("training the critic") == 1 and said.count("training the student") == 1, logs
    assert sorted(p.name for p in (out/"course-tiny").iterdir() if p.is_dir()) == ["critic", "student"]  # no .partial
    critic, student, tok, data_dir = course_models(out=out, tiny=True)  # a third caller loads the cached pair
    assert data_dir == tmp_path/"data"/"shakespeare-char" and tok.decode(tok.encode("ROMEO:")) == "ROMEO:"
    assert critic.config.n_layer == 2 and student.config.n_layer == 1
    assert not critic.training and not any(p.requires_grad for p in critic.parameters())
    x = torch.tensor([tok.encode("To be, or not to be")])
    assert not torch.allclose(critic(x), student(x), atol=1e-2)  # two different models
