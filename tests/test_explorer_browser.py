"""The reward explorer in a real browser: Voila serves it, Debian's chromium (driven by playwright) moves sliders and
flips toggles, and the numbers shown and the plot image must change. Screenshots go to tmp_path; set
AVATARL_EXPLORER_SCREENSHOT to a path to also copy the "consensus" screenshot there (how nbs/images/explorer.png, the
README's image, is made: run with AVATARL_TINY=0, so that the explorer shows the course's full critic and student)."""
import os, secrets, shutil, signal, socket, subprocess, sys, time
from pathlib import Path

import nbformat
import pytest

CHROMIUM = Path("/usr/bin/chromium")  # Debian's chromium: `playwright install` is never run
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run", "--disable-quic"]
REPO = Path(__file__).resolve().parents[1]
APP = "from avatarl.explorer import explorer\nexplorer(out={out!r})"  # the served notebook's one cell
FIRST_RENDER_MS = 75_000  # Voila starts a kernel that imports torch and runs the models: seconds, more on a busy CPU


def chromium() -> Path:
    "Debian's chromium; a clear skip when it is missing, a failure under CI=true."
    if CHROMIUM.exists(): return CHROMIUM
    if os.environ.get("CI") == "true": pytest.fail(f"{CHROMIUM} is missing under CI=true: install it (apt-get install -y chromium)")
    pytest.skip(f"{CHROMIUM} not found: install Debian's chromium (apt-get install chromium) to run the explorer's browser test")


def free_port() -> int:
    "A TCP port on 127.0.0.1 that nothing listens on now."
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_port(port:int, proc:subprocess.Popen, log:Path, timeout:float=180):  # minutes on a busy CPU
    "Return once the server accepts connections; fail with its log if it exits or takes too long."
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if proc.poll() is not None: pytest.fail(f"voila exited with {proc.returncode}:\n{log.read_text()}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1): return
        except OSError: time.sleep(0.2)
    pytest.fail(f"voila did not listen on port {port} within {timeout} s:\n{log.read_text()}")


def stop(proc:subprocess.Popen):
    "Stop the server and its kernel: SIGTERM (Voila shuts its kernels down), then SIGKILL to its process group."
    if proc.poll() is None: proc.terminate()
    try: proc.wait(timeout=15)
    except subprocess.TimeoutExpired: pass
    try: os.killpg(proc.pid, signal.SIGKILL)  # the group start_new_session made: the kernel too, if it survived
    except ProcessLookupError: pass
    proc.wait()


@pytest.fixture
def voila(tmp_path):
    "Serve a one-cell explorer notebook with Voila on 127.0.0.1, with a token and no port retries; yield its URL."
    (REPO / "out").mkdir(exist_ok=True)  # the runs' root: the explorer refuses one that does not exist
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(APP.format(out=str(REPO / "out")))],
                                  metadata={"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}})
    nbformat.write(nb, tmp_path / "explorer_app.ipynb")
    port, token, log = free_port(), secrets.token_urlsafe(16), tmp_path / "voila.log"
    env = {**os.environ, "JUPYTER_RUNTIME_DIR": str(tmp_path / "runtime"), "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "voila", "explorer_app.ipynb", "--no-browser", f"--port={port}", "--Voila.ip=127.0.0.1",
           f"--token={token}", "--Voila.port_retries=0", "--show_tracebacks=True"]
    with open(log, "w") as f:
        proc = subprocess.Popen(cmd, cwd=tmp_path, env=env, stdout=f, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        wait_for_port(port, proc, log)
        yield f"http://127.0.0.1:{port}/?token={token}", log
    finally: stop(proc)


@pytest.fixture
def page():
    "A chromium page driven by playwright; the browser is closed whatever happens."
    path = chromium()
    from playwright.sync_api import sync_playwright
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(path), args=CHROMIUM_ARGS)
        try: yield browser.new_page(viewport={"width": 1100, "height": 1250})
        finally: browser.close()


def state(page) -> dict:
    "What the explorer shows: numbers line, context, the plot's URL and a SHA-256 of the plot's bytes."
    digest = page.evaluate("""async () => {
        const buf = await (await fetch(document.querySelector('.avatarl-plot').src)).arrayBuffer();
        return Array.from(new Uint8Array(await crypto.subtle.digest('SHA-256', buf)), b => b.toString(16).padStart(2, '0')).join('');
    }""")
    return dict(numbers=page.inner_text(".avatarl-numbers"), context=page.inner_text(".avatarl-context"),
                share=page.inner_text(".avatarl-share"), src=page.get_attribute(".avatarl-plot", "src"), digest=digest)


def changed(page, before:dict, text:str="numbers") -> dict: # text: "numbers" or "context", the line that must change
    "Wait until that line and the plot's URL differ from before; return the new state."
    page.wait_for_function("""([sel, old, src]) => document.querySelector(sel).innerText !== old
        && document.querySelector('.avatarl-plot').src !== src""", arg=[f".avatarl-{text}", before[text], before["src"]],
                           timeout=20_000)
    page.wait_for_timeout(300)  # let a pending redraw land
    return state(page)


def first_render(page, url:str, log:Path) -> dict:
    "Open the explorer and wait for its numbers and plot; fail with what the page and Voila's log say if they never come."
    from playwright.sync_api import TimeoutError as PlaywrightTimeout
    try:
        page.goto(url, timeout=FIRST_RENDER_MS)
        page.wait_for_function("() => document.querySelector('.avatarl-numbers')?.innerText.includes('|A_t|')"
                               " && document.querySelector('.avatarl-plot')?.src", timeout=FIRST_RENDER_MS)
    except PlaywrightTimeout:
        pytest.fail(f"the explorer did not render; the page says:\n{page.inner_text('body')[-3000:]}\nvoila.log:\n{log.read_text()[-3000:]}")
    return state(page)


def n_active(numbers:str) -> int: return int(numbers.split("|A_t| = ")[1].split()[0])


def n_rewarded(numbers:str) -> int: return int(numbers.split("rewarded ")[1].split()[0])


def nongold_share(share:str) -> float: return float(share.split("non-gold share of the reward: ")[1].split("%")[0]) / 100


def test_explorer_in_browser(page, voila, tmp_path):  # page first: no server is started when the browser is missing
    t0 = time.monotonic()
    start = first_render(page, *voila)
    print(f"first render: {time.monotonic() - t0:.1f} s")
    assert "|A_t| =" in start["numbers"] and "student CE" in start["numbers"], start["numbers"]
    assert n_active(start["numbers"]) >= 16  # k=16: at least the student's 16 proposals
    page.screenshot(path=tmp_path / "before.png", full_page=True)

    page.locator(".avatarl-top-k .widget-readout").click()  # set top_k to 4 by typing into the slider's readout
    page.keyboard.press("Control+A")
    page.keyboard.type("4")
    page.keyboard.press("Enter")
    after = changed(page, start)
    assert n_active(after["numbers"]) <= 9, after["numbers"]  # k=4: at most 2k+1 tokens
    assert after["digest"] != start["digest"]  # the plot's bytes changed, not only its URL
    page.screenshot(path=tmp_path / "after.png", full_page=True)

    page.locator(".avatarl-reward button", has_text="consensus").click()  # reward="consensus": r = C·q on every token
    consensus = changed(page, after)
    assert n_rewarded(consensus["numbers"]) == n_active(consensus["numbers"]), consensus["numbers"]
    assert "reward sum 1.500" in consensus["numbers"] and consensus["digest"] != after["digest"], consensus["numbers"]
    assert nongold_share(consensus["share"]) > nongold_share(after["share"]), (after["share"], consensus["share"])
    page.screenshot(path=tmp_path / "consensus.png", full_page=True)
    if dest := os.environ.get("AVATARL_EXPLORER_SCREENSHOT"):
        Path(dest).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(tmp_path / "consensus.png", dest)

    page.focus(".avatarl-top-k .noUi-handle")  # the keyboard: Home moves top_k to 0, so A_t = {gold}
    page.keyboard.press("Home")
    k0 = changed(page, consensus)
    assert n_active(k0["numbers"]) == 1 and k0["digest"] != consensus["digest"], k0["numbers"]
    assert nongold_share(k0["share"]) == 0, k0["share"]  # gold alone takes everything

    page.focus(".avatarl-position .noUi-handle")  # one position to the right: another context and gold token
    page.keyboard.press("ArrowRight")
    moved = changed(page, k0, "context")
    assert moved["digest"] != k0["digest"] and moved["context"] != k0["context"]
    page.screenshot(path=tmp_path / "moved.png", full_page=True)
    print(f"explorer browser test: {time.monotonic() - t0:.1f} s from page load to the last check")
