"""The widget notebook in a real browser: JupyterLab + Debian's Chromium, driven by Playwright.

Starts ``jupyter lab`` headless on localhost (random token, free port) on a temporary copy of
``09_explore_deep_priors`` set to the ``smoke`` profile, opens it in Chromium, runs all cells, checks
that the explorer's plot and audio players appear, changes two widgets (design, iterations), presses
Run, checks that the plot and the restored player update while the fit runs, presses Stop, and saves
a screenshot to ``results/browser/`` (copied to the committed ``results/reference/`` only when
``DAP_UPDATE_REFERENCE=1``, so that a test run leaves the checkout clean).

Needs a Chromium executable (``$DAP_CHROMIUM``, else ``chromium`` on PATH, else /usr/bin/chromium:
Debian's ``chromium`` package; no browser is downloaded) and the ``playwright`` package. Without them
the test is skipped, unless ``DAP_REQUIRE_BROWSER=1`` (set by ``.ci/run``, which installs chromium),
where it fails instead.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import nbformat
import pytest

REPO = Path(__file__).resolve().parent.parent
NOTEBOOK = "09_explore_deep_priors"
pytestmark = [pytest.mark.browser, pytest.mark.timeout(420)]


def _chromium() -> str | None:
    for candidate in (os.environ.get("DAP_CHROMIUM"), shutil.which("chromium"), "/usr/bin/chromium"):
        if candidate and Path(candidate).is_file() and os.access(candidate, os.X_OK):
            return candidate
    return None


def _require_browser() -> str:
    reason = None
    exe = _chromium()
    if exe is None:
        reason = ("no Chromium executable: install Debian's chromium package (apt-get install chromium; "
                  ".ci/run does) or set DAP_CHROMIUM=/path/to/chromium")
    else:
        try:
            import playwright.sync_api  # noqa: F401
        except ImportError:
            reason = "the playwright package is missing: pip install -e '.[test]'"
    if reason:
        if os.environ.get("DAP_REQUIRE_BROWSER") == "1":
            pytest.fail(f"browser test required (DAP_REQUIRE_BROWSER=1) but {reason}")
        pytest.skip(reason)
    return exe


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _smoke_copy(folder: Path) -> Path:
    """The notebook with ``profile = "smoke"`` and no four-design comparison (seconds, not minutes)."""
    nb = nbformat.read(REPO / "notebooks" / f"{NOTEBOOK}.ipynb", as_version=4)
    cell = next(c for c in nb.cells if "parameters" in c.metadata.get("tags", []))
    source = cell.source.replace('profile = "quick"', 'profile = "smoke"').replace("compare = None ", "compare = False")
    assert 'profile = "smoke"' in source and "compare = False" in source, "parameters cell changed: update this test"
    cell.source = source
    path = folder / f"{NOTEBOOK}.ipynb"
    nbformat.write(nb, path)
    return path


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    """A JupyterLab server on a temporary folder: yields ``(base_url, token)``; shut down afterwards."""
    _require_browser()
    tmp = tmp_path_factory.mktemp("lab")
    books = tmp / "notebooks"
    books.mkdir()
    _smoke_copy(books)
    # No news / update prompts over the notebook; settings and workspaces kept out of ~.
    settings = tmp / "user-settings" / "@jupyterlab" / "apputils-extension"
    settings.mkdir(parents=True)
    (settings / "notification.jupyterlab-settings").write_text(json.dumps({"fetchNews": "false", "checkForUpdates": False}))
    port, token = _free_port(), secrets.token_hex(16)
    env = dict(os.environ, DAP_RESULTS=str(tmp / "results"), DAP_PROGRESS="off", JUPYTER_RUNTIME_DIR=str(tmp / "runtime"),
               JUPYTER_CONFIG_DIR=str(tmp / "config"), IPYTHONDIR=str(tmp / "ipython"))
    cmd = [sys.executable, "-m", "jupyterlab", "--no-browser", f"--ServerApp.token={token}", f"--port={port}",
           "--ServerApp.ip=127.0.0.1", f"--notebook-dir={books}", "--allow-root",
           f"--LabApp.user_settings_dir={tmp / 'user-settings'}", f"--LabApp.workspaces_dir={tmp / 'workspaces'}",
           "--LabApp.news_url=", "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate"]
    log = open(tmp / "jupyterlab.log", "w")
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=tmp, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                urllib.request.urlopen(f"{base}/api/status?token={token}", timeout=2)
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"JupyterLab did not start: {(tmp / 'jupyterlab.log').read_text()[-2000:]}")
                time.sleep(0.5)
        yield base, token
    finally:
        _shutdown_kernels(base, token)
        proc.send_signal(signal.SIGTERM)  # the server shuts its kernels down on SIGTERM
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        log.close()


def _shutdown_kernels(base: str, token: str) -> None:
    try:
        kernels = json.load(urllib.request.urlopen(f"{base}/api/kernels?token={token}", timeout=5))
        for k in kernels:
            req = urllib.request.Request(f"{base}/api/kernels/{k['id']}?token={token}", method="DELETE")
            urllib.request.urlopen(req, timeout=10)
    except OSError:
        pass


def _status(page) -> str:
    el = page.query_selector(".dap-status")
    return el.inner_text() if el else "(no explorer status on the page)"


def _wait(page, script: str, what: str, timeout_s: float, shots: Path) -> None:
    """Wait until the JS predicate ``script`` holds; on timeout fail with the explorer's status."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    try:
        page.wait_for_function(script, timeout=timeout_s * 1000)
    except PlaywrightTimeout:
        page.screenshot(path=str(shots / "failure.png"))
        errors = page.eval_on_selector_all(".jp-OutputArea-output", "els => els.map(e => e.innerText)"
                                           ".filter(t => t.includes('Error')).slice(0, 2)")
        pytest.fail(f"timed out after {timeout_s} s waiting for {what}; status: {_status(page)!r}; "
                    f"errors: {errors}; screenshot: {shots / 'failure.png'}")


def _src(page, selector: str) -> str:
    return page.get_attribute(selector, "src") or ""


def test_explorer_notebook_runs_and_updates_in_jupyterlab(lab):
    from playwright.sync_api import sync_playwright

    from dap.core.files import results_root

    base, token = lab
    shots = results_root() / "browser"
    shots.mkdir(parents=True, exist_ok=True)
    status_has = "s => { const e = document.querySelector('.dap-status'); return !!e && e.innerText.includes(s); }"
    t0 = time.monotonic()
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=_chromium(), headless=True,
                                     args=["--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu"])
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1150})
            page.set_default_timeout(60_000)
            page.goto(f"{base}/lab/tree/{NOTEBOOK}.ipynb?token={token}")
            page.wait_for_selector(".jp-NotebookPanel .jp-Cell", timeout=90_000)
            _wait(page, "() => /Python 3.*Idle/.test(document.body.innerText)", "the kernel to be idle", 120, shots)

            # Run > Run All Cells: the explorer appears and the notebook's first (smoke) run finishes.
            page.click('.lm-MenuBar-itemLabel:text-is("Run")')
            page.click('li.lm-Menu-item[data-command="runmenu:run-all"]')
            _wait(page, "() => !!document.querySelector('button.dap-run')", "the explorer widget", 180, shots)
            _wait(page, "() => !Array.from(document.querySelectorAll('.jp-InputPrompt'))"
                        ".some(e => e.innerText.includes('*'))", "every cell to finish", 240, shots)
            assert "done" in _status(page), _status(page)
            assert not page.query_selector("text=Traceback"), "a cell raised"
            _wait(page, "() => { const i = document.querySelector('img.dap-plot'); return i && i.naturalWidth > 400; }",
                  "the plot to be drawn", 30, shots)
            for name in ("clean", "corrupted", "restored"):
                _wait(page, f"() => {{ const a = document.querySelector('audio.dap-audio-{name}'); "
                            f"return a && a.duration > 0.4 && getComputedStyle(a).visibility === 'visible'; }}",
                      f"a playable {name} player", 30, shots)
            plot, audio = _src(page, "img.dap-plot"), _src(page, "audio.dap-audio-restored")

            # Change two widgets, press Run: the picture and the restored player follow the fit.
            page.select_option(".dap-design select", label="Convolution")
            readout = page.locator(".dap-iterations .widget-readout")
            readout.click()
            page.keyboard.press("Control+A")
            page.keyboard.type("400")
            page.keyboard.press("Enter")
            _wait(page, "() => document.querySelector('.dap-iterations .widget-readout').innerText.trim() === '400'",
                  "the iterations slider to read 400", 10, shots)
            page.click("button.dap-run")
            _wait(page, "() => { const m = document.querySelector('.dap-status').innerText"
                        ".match(/running Convolution: iteration (\\d+)\\//); return !!m && +m[1] >= 5; }",
                  "the Convolution fit to reach iteration 5", 90, shots)
            live_plot = _src(page, "img.dap-plot")
            assert live_plot != plot, "the plot did not update while the fit ran"
            assert _src(page, "audio.dap-audio-restored") != audio, "the restored player did not update"
            _wait(page, "() => { const m = document.querySelector('.dap-status').innerText"
                        ".match(/iteration (\\d+)\\//); return !!m && +m[1] >= 15; }",
                  "iteration 15", 90, shots)
            assert _src(page, "img.dap-plot") != live_plot, "the plot stopped updating"
            assert page.is_disabled("button.dap-run") and page.is_enabled("button.dap-stop")

            # Stop: the fit ends early (background thread), and Run is available again.
            page.click("button.dap-stop")
            _wait(page, f"() => ({status_has})('stopped')", "the fit to stop", 60, shots)
            stopped_at = int(_status(page).split("reached iteration ")[1].split("/")[0])
            assert 15 <= stopped_at < 400, _status(page)
            assert page.is_enabled("button.dap-run") and page.is_disabled("button.dap-stop")
            assert "Convolution" in page.inner_text(".dap-explorer table"), "no summary row for the new design"

            page.evaluate("() => document.querySelector('img.dap-plot').scrollIntoView({block: 'center'})")
            page.wait_for_timeout(500)
            shot = shots / f"{NOTEBOOK}.png"
            page.screenshot(path=str(shot))
        finally:
            browser.close()
    print(f"browser test: {time.monotonic() - t0:.0f} s in the browser; screenshot {shot}")
    if os.environ.get("DAP_UPDATE_REFERENCE") == "1":
        reference = REPO / "results" / "reference" / f"browser_{NOTEBOOK}.png"
        shutil.copyfile(shot, reference)
        print(f"browser test: copied the screenshot to {reference}")
