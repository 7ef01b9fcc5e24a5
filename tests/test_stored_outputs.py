"""The full runs whose outputs the notebooks store (run with AVATARL_TINY unset) say what their prose claims.

Under test the notebooks train tiny models, so checks on the full runs' numbers live here and read the outputs
stored in the notebooks."""
import json, re
from pathlib import Path

NBS = Path(__file__).resolve().parent.parent / "nbs"


def stored_text(notebook: str, marker: str) -> str:
    "The text output of the code cell of `notebook` whose source contains `marker`."
    cells = json.loads((NBS / notebook).read_text())["cells"]
    cell = next(c for c in cells if c["cell_type"] == "code" and marker in "".join(c["source"]))
    texts = ["".join(o.get("text", "")) + "".join(o.get("data", {}).get("text/markdown", ""))
             for o in cell.get("outputs", [])]
    assert any(texts), f"{notebook}: the cell with {marker!r} holds no stored output: run the notebook in full"
    return "\n".join(texts)


def number(pattern: str, text: str) -> float:
    "The number `pattern`'s group captures in `text`."
    m = re.search(pattern, text)
    assert m, f"{pattern!r} not found in:\n{text[:500]}"
    return float(m.group(1))


def unigram_entropy() -> float:
    "The unigram entropy of the validation text, as 02's full run printed it."
    return number(r"unigram entropy of the validation text: ([\d.]+)", stored_text("02_critic.ipynb", "best_val_ce"))


def test_02_the_course_critic_is_well_below_the_unigram_entropy():
    text = stored_text("02_critic.ipynb", "best_val_ce")
    critic, student = number(r"critic\s+best validation CE ([\d.]+)", text), number(r"student\s+best validation CE "
                                                                                     r"([\d.]+)", text)
    assert critic <= 0.75 * unigram_entropy() and critic < student


def test_02_the_naive_loop_learns_from_the_context():
    text = stored_text("02_critic.ipynb", "naive loop, mean loss")
    assert number(r"naive loop, mean loss of its last 10 steps: ([\d.]+)", text) < unigram_entropy()


def test_02_the_critic_takes_more_from_the_context_than_the_student():
    text = stored_text("02_critic.ipynb", "per_pos")
    gain = {name: number(rf"{name}\s+1 character seen: .*\(gain ([-\d.]+)\)", text) for name in ("critic", "student")}
    assert gain["critic"] > 0.3 and gain["critic"] > 2 * gain["student"], gain


def test_08_every_demo_run_beats_the_unigram_model():
    text = stored_text("08_train.ipynb", "avatarl - CE =")
    H = number(r"unigram entropy ([\d.]+)", text)
    runs = [number(p, text) for p in (r"critic ([\d.]+)", r"CE student ([\d.]+)", r"avatarl student ([\d.]+)")]
    assert all(ce < H for ce in runs), (H, runs)


def test_09_every_model_beats_the_unigram_model_and_size_orders_the_critics():
    table = stored_text("09_reincarnation.ipynb", "Markdown(study_table(res))")
    rows = {r.split("|")[1].strip(): r.split("|") for r in table.splitlines() if r.startswith("| ") and "---" not in r}
    rows.pop("run")
    val = {name: float(cols[5]) for name, cols in rows.items()}
    assert len(val) >= 10 and all(ce < unigram_entropy() for ce in val.values()), val
    assert val["critic-large"] < val["critic"] < val["critic-small"]
    assert "critics whose best.pt is not their final step: none" in table  # one val CE per run: what students read


def test_the_readme_states_the_measured_test_time():
    "The README's time for the test command is the one nbs/results/tests.json measured, rounded to minutes."
    measured = json.loads((NBS / "results" / "tests.json").read_text())
    readme = (NBS.parent / "README.md").read_text()
    assert measured["command"] in readme
    stated = number(r"takes about (\d+) minutes on 2 cores", readme)
    assert stated == round(measured["seconds"] / 60), (stated, measured["seconds"])
