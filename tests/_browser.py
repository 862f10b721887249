"""JupyterLab in headless Chromium for the browser tests: fixtures and helpers.

The fixtures (``chromium``, ``lab``, ``browser``, ``page``) are session-scoped where they start a
process, so every ``tests/test_browser*.py`` shares one JupyterLab server and one Chromium;
``tests/conftest.py`` registers them. The server serves a copy of every ``notebooks/NN_*.ipynb``.
A notebook's browser test lives in its own file (``tests/test_browser_<topic>.py``, marker
``browser``): it calls ``run_notebook_in_lab(page, lab, name)`` (which also checks the notebook's
Mermaid diagrams) inside ``with screenshot_on_failure(page, lab):`` and then pokes at the
notebook's widgets (``move_slider``, ``image_changes_after``, ``wait_for_widget_outputs``,
``assert_no_widget_errors``, ``save_screenshot``). See tests/test_browser.py for the notes on how
Lab is driven.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
# The directory the notebooks are copied from; overridable to try the test on a scratch notebook.
NOTEBOOK_DIR = Path(os.environ.get("MMCOURSE_BROWSER_NOTEBOOK_DIR", REPO / "notebooks"))
WELCOME, VIT, CLIP = "00_welcome.ipynb", "03_vit.ipynb", "04_clip.ipynb"
FORWARD, REVERSE = "01_diffusion_forward.ipynb", "02_diffusion_reverse.ipynb"


def translation(name: str, lang: str = "zh_CN"):
    """A pytest parameter for the translated edition of notebook ``name`` (e.g. zh_CN/00_welcome.ipynb),
    skipped with the reason when that notebook has no translation yet."""
    path = f"{lang}/{name}"
    missing = not (NOTEBOOK_DIR / path).exists()
    return pytest.param(path, id=path.split(".")[0],
                        marks=pytest.mark.skipif(missing, reason=f"{path}: not yet translated (no catalog)"))
CHROMIUM = Path(os.environ.get("MMCOURSE_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-dev-shm-usage"]
BUILD = REPO / "build"
FAILURE_SCREENSHOT = BUILD / "browser-failure.png"

SERVER_TIMEOUT_S = 60  # JupyterLab answering /api/status
KERNEL_TIMEOUT_S = 60  # the notebook's kernel started and idle
RUN_ALL_TIMEOUT_S = 240  # Run All Cells finished (04_clip takes about 45 s on a quiet machine)
WIDGET_TIMEOUT_MS = 30_000  # a widget reacting to a change (one kernel round trip)

# Lab user settings for the run: no news or update checks (the network is closed) and no toasts
# drawn over the screenshots.
LAB_SETTINGS = {
    "@jupyterlab/apputils-extension/notification.jupyterlab-settings": {
        "fetchNews": "false",
        "checkForUpdates": False,
        "doNotDisturbMode": True,
    },
}


# --------------------------------------------------------------------------------------------
# Environment: Chromium and Playwright must exist, or the test skips (locally) / fails (CI).


def _missing(what: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(f"CI must run the browser test, but {what}", pytrace=False)
    pytest.skip(what)


@pytest.fixture(scope="session")
def chromium() -> Path:
    if not CHROMIUM.exists():
        _missing(f"{CHROMIUM} is missing: install it with `apt-get update && apt-get install -y chromium`")
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        _missing("the Python package playwright is missing: `pip install -e '.[test]'`")
    return CHROMIUM


# --------------------------------------------------------------------------------------------
# JupyterLab server


@dataclass
class Lab:
    url: str
    token: str
    root: Path  # the directory JupyterLab serves
    log: Path
    proc: subprocess.Popen = field(repr=False)

    def api(self, path: str, method: str = "GET", timeout: float = 5.0):
        req = urllib.request.Request(
            f"{self.url}{path}", method=method, headers={"Authorization": f"token {self.token}"}
        )
        with urllib.request.urlopen(req, timeout=timeout) as r:
            body = r.read()
        return json.loads(body) if body else None

    def log_tail(self, n: int = 40) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return "(no server log)"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _pids_mentioning(text: str) -> list[int]:
    """Processes whose command line contains ``text`` (our unique temp dir: kernels we started)."""
    pids = []
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                if text in (d / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace"):
                    pids.append(int(d.name))
            except OSError:
                pass
    return pids


@pytest.fixture(scope="session")
def lab(chromium, tmp_path_factory) -> Lab:
    base = tmp_path_factory.mktemp("jupyterlab")
    served = base / "notebooks"
    served.mkdir()
    for src in sorted(NOTEBOOK_DIR.glob("[0-9][0-9]_*.ipynb")):  # every notebook of the course
        shutil.copyfile(src, served / src.name)
    for src in sorted(NOTEBOOK_DIR.glob("*/[0-9][0-9]_*.ipynb")):  # and its translations (zh_CN/...)
        (served / src.parent.name).mkdir(exist_ok=True)
        shutil.copyfile(src, served / src.parent.name / src.name)
    for rel, settings in LAB_SETTINGS.items():
        f = base / "settings" / rel
        f.parent.mkdir(parents=True, exist_ok=True)
        f.write_text(json.dumps(settings))
    runtime = base / "runtime"

    env = dict(
        os.environ,
        JUPYTER_CONFIG_DIR=str(base / "config"),
        JUPYTER_DATA_DIR=str(base / "data"),
        JUPYTER_RUNTIME_DIR=str(runtime),
        IPYTHONDIR=str(base / "ipython"),
        HF_HUB_OFFLINE="1",
        TRANSFORMERS_OFFLINE="1",
    )
    env.pop("JUPYTER_TOKEN", None)
    port, token = _free_port(), secrets.token_hex(16)
    cmd = [
        sys.executable, "-m", "jupyterlab",
        "--no-browser", "--allow-root",
        "--ip=127.0.0.1", f"--port={port}", "--ServerApp.port_retries=0",
        f"--IdentityProvider.token={token}",
        f"--ServerApp.root_dir={served}",
        "--ServerApp.terminals_enabled=False",
        "--LabApp.expose_app_in_browser=True",
        f"--LabApp.workspaces_dir={base / 'workspaces'}",
        f"--LabApp.user_settings_dir={base / 'settings'}",
    ]  # fmt: skip
    log = base / "lab.log"
    with open(log, "wb") as logf:
        proc = subprocess.Popen(
            cmd, cwd=served, env=env, stdout=logf, stderr=subprocess.STDOUT, start_new_session=True
        )
    server = Lab(url=f"http://127.0.0.1:{port}", token=token, root=served, log=log, proc=proc)
    try:
        deadline = time.monotonic() + SERVER_TIMEOUT_S
        while True:
            if proc.poll() is not None:
                pytest.fail(f"JupyterLab exited with code {proc.returncode}:\n{server.log_tail()}", pytrace=False)
            try:
                server.api("/api/status", timeout=2)
                break
            except (urllib.error.URLError, ConnectionError, TimeoutError, OSError):
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"JupyterLab did not answer within {SERVER_TIMEOUT_S} s:\n{server.log_tail()}", pytrace=False)
            time.sleep(0.25)
        yield server
    finally:
        _stop_lab(server, runtime)


def _stop_lab(server: Lab, runtime: Path) -> None:
    proc = server.proc
    if proc.poll() is None:
        try:  # a clean shutdown also shuts the kernels down
            server.api("/api/shutdown", method="POST", timeout=5)
        except Exception:
            pass
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            pass
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(proc.pid, sig)  # the server and anything left in its process group
        except ProcessLookupError:
            break
        try:
            proc.wait(timeout=10)
            break
        except subprocess.TimeoutExpired:
            continue
    # Kernels run in their own session (jupyter_client's start_new_session); any survivor still
    # names its connection file in our private runtime dir.
    for pid in _pids_mentioning(str(runtime)):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


# --------------------------------------------------------------------------------------------
# Browser


@pytest.fixture(scope="session")
def browser(chromium):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(chromium), headless=True, args=CHROMIUM_ARGS)
        try:
            yield b
        finally:
            b.close()


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    pg = context.new_page()
    pg.set_default_timeout(30_000)
    pg.console_log = []  # browser console errors and uncaught exceptions, shown on failure
    pg.on("console", lambda m: m.type in ("error", "warning") and pg.console_log.append(f"[{m.type}] {m.text}"))
    pg.on("pageerror", lambda e: pg.console_log.append(f"[pageerror] {e}"))
    try:
        yield pg
    finally:
        context.close()


@contextmanager
def screenshot_on_failure(page, lab: Lab):
    """Save build/browser-failure.png and print the browser console and server log on failure."""
    try:
        yield
    except BaseException:
        BUILD.mkdir(exist_ok=True)
        try:
            page.screenshot(path=str(FAILURE_SCREENSHOT), full_page=True, timeout=10_000)
            print(f"screenshot of the failure: {FAILURE_SCREENSHOT}")
        except Exception as e:  # the page may be gone; keep the original error
            print(f"could not save a failure screenshot: {e}")
        print("browser console (errors and warnings, last 30):\n" + "\n".join(page.console_log[-30:]))
        print("JupyterLab log (tail):\n" + lab.log_tail())
        raise


# --------------------------------------------------------------------------------------------
# Helpers usable by any notebook test

# State of the open notebook `name`, read from Lab's own models (window.jupyterapp), so it does
# not depend on which cells the windowed notebook has rendered.
# The start of every snippet below: find the open notebook `name` in Lab's main area.
_FIND_PANEL_JS = """
(name) => {
  const app = window.jupyterapp;
  let panel = null;
  for (const w of app.shell.widgets('main')) {
    if (w.context && w.context.path === name && w.content && w.content.model) { panel = w; break; }
  }
  if (!panel) return null;
"""

_NOTEBOOK_STATE_JS = _FIND_PANEL_JS + """  const cells = panel.content.model.cells;
  let code = 0, executed = 0;
  for (let i = 0; i < cells.length; i++) {
    const c = cells.get(i);
    if (c.type === 'code') { code++; if (c.executionCount !== null && c.executionCount !== undefined) executed++; }
  }
  const prompts = Array.from(panel.node.querySelectorAll('.jp-InputPrompt'));
  const busy = prompts.some(p => (p.textContent || '').includes('*'));
  const kernel = panel.sessionContext.session && panel.sessionContext.session.kernel;
  return {id: panel.id, code, executed, busy, kernel: kernel ? kernel.status : null};
}
"""


# Widget outputs of the open notebook `name`: how many the notebook model holds, and how their
# views are doing. A view shows "Loading widget..." until the model arrives, then either the
# widget's element or the text "Error displaying widget: model not found" (about a second later).
_WIDGET_OUTPUTS_JS = _FIND_PANEL_JS + """  const cells = panel.content.model.cells;
  let expected = 0;
  for (let i = 0; i < cells.length; i++) {
    const c = cells.get(i);
    if (c.type !== 'code') continue;
    for (let j = 0; j < c.outputs.length; j++) {
      const d = c.outputs.get(j).data;
      if (d && d['application/vnd.jupyter.widget-view+json']) expected++;
    }
  }
  // Widget views are the only output renderers without a data-mime-type attribute.
  const views = Array.from(panel.node.querySelectorAll('.jp-OutputArea-output:not([data-mime-type])'));
  const text = v => v.textContent || '';
  const failed = views.filter(v => text(v).includes('Error displaying widget')).length;
  const shown = views.filter(v => v.childElementCount > 0 && !text(v).includes('Loading widget')).length;
  return {expected, views: views.length, shown, failed};
}
"""


def wait_for_widget_outputs(page, name: str, timeout_s: float = 30) -> dict:
    """Wait until every widget output of `name` has either rendered or shown its error."""
    deadline = time.monotonic() + timeout_s
    while True:
        w = page.evaluate(_WIDGET_OUTPUTS_JS, name)
        if w["views"] >= w["expected"] and w["shown"] + w["failed"] == w["views"]:
            return w
        if time.monotonic() > deadline:
            raise AssertionError(f"{name}: widget outputs still not rendered after {timeout_s:.0f} s: {w}")
        time.sleep(0.25)


def _kernel_state(lab: Lab, name: str) -> str | None:
    for s in lab.api("/api/sessions"):
        if s.get("path") == name or s.get("notebook", {}).get("path") == name:
            return s["kernel"]["execution_state"]
    return None


def _wait_kernel_idle(page, lab: Lab, name: str, timeout_s: float) -> None:
    """Idle according to both the server (GET /api/sessions) and the page's session context."""
    deadline = time.monotonic() + timeout_s
    server = front = None
    while time.monotonic() < deadline:
        server = _kernel_state(lab, name)
        state = page.evaluate(_NOTEBOOK_STATE_JS, name)
        front = state and state["kernel"]
        if server == "idle" and front == "idle":
            return
        time.sleep(0.25)
    raise AssertionError(f"kernel for {name} not idle after {timeout_s:.0f} s (server: {server}, page: {front})")


def run_notebook_in_lab(page, lab: Lab, name: str) -> dict:
    """Open `name` in Lab, wait for its kernel, clear the outputs, Run All Cells and wait for the end.

    Returns the final state ({code, executed, busy, kernel}, widget counts, timings). Raises if a cell raised
    (its output has a traceback), if "Error displaying widget" shows anywhere, or on a timeout.
    """
    t0 = time.monotonic()
    page.goto(f"{lab.url}/lab/tree/{name}?token={lab.token}", wait_until="domcontentloaded")
    page.locator(".jp-NotebookPanel .jp-Cell").first.wait_for(state="attached", timeout=60_000)
    _wait_kernel_idle(page, lab, name, KERNEL_TIMEOUT_S)
    t_open = time.monotonic() - t0

    # Clearing first resets every execution count, so "all cells have a count" means "all ran
    # now", not "ran when the notebook was saved"; it also drops saved widget views, which show
    # "Error displaying widget" until re-run.
    page.evaluate(
        """async (name) => {
             const app = window.jupyterapp;
             for (const w of app.shell.widgets('main')) {
               if (w.context && w.context.path === name) { app.shell.activateById(w.id); break; }
             }
             await app.commands.execute('notebook:clear-all-cell-outputs');
             void app.commands.execute('notebook:run-all-cells');  // resolves only at the end
           }""",
        name,
    )
    t1 = time.monotonic()
    deadline = t1 + RUN_ALL_TIMEOUT_S
    stalled_since = None
    while True:
        state = page.evaluate(_NOTEBOOK_STATE_JS, name)
        settled = state["kernel"] == "idle" and not state["busy"]
        if settled and state["executed"] == state["code"]:
            break
        # Run All stops at a cell that raises: nothing runs, some cells have no count. Give it a
        # few seconds (the kernel can flicker idle between cells) and then report instead of
        # waiting for the timeout.
        if settled and time.monotonic() - t1 > 2:
            stalled_since = stalled_since or time.monotonic()
            if time.monotonic() - stalled_since > 5:
                break
        else:
            stalled_since = None
        if time.monotonic() > deadline:
            raise AssertionError(f"Run All Cells in {name} did not finish in {RUN_ALL_TIMEOUT_S} s: {state}")
        time.sleep(0.25)
    _wait_kernel_idle(page, lab, name, 10)
    state = dict(state, open_s=round(t_open, 1), run_s=round(time.monotonic() - t1, 1))

    tracebacks = _error_outputs(page)
    assert not tracebacks, f"{name}: cell output with an error:\n\n" + "\n\n".join(tracebacks)
    assert state["executed"] == state["code"], f"{name}: only {state['executed']} of {state['code']} code cells ran"
    state["widgets"] = wait_for_widget_outputs(page, name)
    assert_no_widget_errors(page)
    state["diagrams"] = assert_diagrams_render(page, name)
    return state


# Diagrams: every ```mermaid block of a Markdown cell and every image output (matplotlib figures,
# mmcourse.viz diagrams). JupyterLab 4.6 renders a Mermaid block as
#   div.jp-RenderedMermaid > figure > img[src="data:image/svg+xml,..."] (+ the source in pre > code),
# and a block mermaid cannot parse as div.jp-RenderedMermaid.jp-mod-warning > details with
# "Error: Parse error on line N: ..." (observed with a scratch notebook, JupyterLab 4.6.6).
_MERMAID_FENCE = re.compile(r"^[ \t]*```[ \t]*mermaid[ \t]*$", re.M)

_DIAGRAMS_JS = _FIND_PANEL_JS + """  const decoded = img => { try { return decodeURIComponent(img.getAttribute('src') || ''); } catch (e) { return ''; } };
  const drawn = img => img.complete && img.naturalWidth > 0;
  const boxes = Array.from(panel.node.querySelectorAll('.jp-RenderedMermaid'));
  const errors = [], broken = [];
  let mermaid = 0;
  for (const b of boxes) {
    const text = (b.textContent || '').trim().slice(0, 400);
    if (b.classList.contains('jp-mod-warning')) { errors.push(text); continue; }
    const img = b.querySelector('img'), svg = b.querySelector('svg');
    const src = img ? decoded(img) : (svg ? svg.outerHTML : '');
    if (/Syntax error|Parse error/i.test(src)) errors.push(text);
    else if ((img && drawn(img) && src.includes('<svg')) || (svg && !img)) mermaid++;
    else broken.push(text);
  }
  const cells = panel.content.model.cells;
  let images = 0;
  for (let i = 0; i < cells.length; i++) {
    const c = cells.get(i);
    if (c.type !== 'code') continue;
    for (let j = 0; j < c.outputs.length; j++) {
      const d = c.outputs.get(j).data || {};
      if (d['image/png'] || d['image/jpeg'] || d['image/svg+xml']) images++;
    }
  }
  const shown = Array.from(panel.node.querySelectorAll('.jp-OutputArea-output[data-mime-type^="image/"] img')).filter(drawn).length;
  return {boxes: boxes.length, mermaid, errors, broken, images, shown};
}
"""


def expected_mermaid_blocks(name: str) -> int:
    """How many ```mermaid blocks the notebook's Markdown cells hold (its .py, else the .ipynb)."""
    import jupytext

    py = (NOTEBOOK_DIR / name).with_suffix(".py")
    nb = jupytext.read(py if py.exists() else NOTEBOOK_DIR / name)
    return sum(len(_MERMAID_FENCE.findall(c.source)) for c in nb.cells if c.cell_type == "markdown")


def assert_diagrams_render(page, name: str, timeout_s: float = 30) -> dict:
    """Every Mermaid block of `name` is drawn as an SVG without error text, and every image output
    (matplotlib figures and diagrams) is shown as a decoded image. Returns the counts."""
    expected = expected_mermaid_blocks(name)
    deadline = time.monotonic() + timeout_s
    while True:
        d = page.evaluate(_DIAGRAMS_JS, name)
        if d["errors"] or (d["mermaid"] >= expected and d["shown"] >= d["images"]):
            break
        if time.monotonic() > deadline:
            break
        time.sleep(0.25)
    assert not d["errors"], f"{name}: Mermaid diagram(s) failed to render:\n" + "\n\n".join(d["errors"])
    assert d["mermaid"] == expected, (
        f"{name}: {expected} ```mermaid block(s) in its Markdown, {d['mermaid']} rendered as SVG "
        f"after {timeout_s:.0f} s (containers {d['boxes']}; not drawn: {d['broken']})")
    assert d["shown"] >= d["images"], f"{name}: {d['images']} image outputs, only {d['shown']} shown as images"
    return {"mermaid": d["mermaid"], "images": d["images"]}


def _error_outputs(page) -> list[str]:
    # textContent, not innerText: cells scrolled out of view are not rendered (contentVisibility).
    texts = page.locator(
        '.jp-NotebookPanel .jp-OutputArea-output.jp-RenderedText[data-mime-type="application/vnd.jupyter.stderr"], '
        '.jp-NotebookPanel .jp-OutputArea-output [data-mime-type="application/vnd.jupyter.stderr"]'
    ).evaluate_all("els => els.map(e => e.textContent || '')")
    return [t[-3000:] for t in dict.fromkeys(texts) if "Traceback" in t or "Error" in t]


def assert_no_widget_errors(page) -> None:
    found = page.evaluate(
        """() => {
             if (!document.body.textContent.includes('Error displaying widget')) return null;
             const els = Array.from(document.querySelectorAll('.jp-OutputArea-output'))
               .filter(e => (e.textContent || '').includes('Error displaying widget'));
             return els.map(e => {
               const cell = e.closest('.jp-Cell');
               const prompt = cell && cell.querySelector('.jp-InputPrompt');
               return `cell ${prompt ? prompt.textContent.trim() : '?'}: ${e.textContent.trim().slice(0, 200)}`;
             });
           }"""
    )
    if found is not None:
        raise AssertionError("a widget failed to render ('Error displaying widget' on the page):\n" + "\n".join(found))


def save_screenshot(page, name: str) -> Path:
    BUILD.mkdir(exist_ok=True)
    path = BUILD / f"browser-{Path(name).with_suffix('').as_posix().replace('/', '-')}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


def move_slider(page, slider, presses: int) -> None:
    """Move an ipywidgets slider (noUiSlider) by `presses` steps with the keyboard, as a user can."""
    handle = slider.locator(".noUi-handle")
    handle.focus()
    for _ in range(abs(presses)):
        page.keyboard.press("ArrowRight" if presses > 0 else "ArrowLeft")


def image_changes_after(page, image, action) -> None:
    """Run `action` and wait until the image's src changes (one kernel round trip)."""
    from playwright.sync_api import expect

    expect(image).to_have_attribute("src", re.compile(r"\S"), timeout=WIDGET_TIMEOUT_MS)
    before = image.get_attribute("src")
    action()
    expect(image).not_to_have_attribute("src", before, timeout=WIDGET_TIMEOUT_MS)
