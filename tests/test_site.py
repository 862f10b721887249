"""The course website (`make site`, site/build.py) built and read in headless Chromium, offline.

The site is built from the committed notebooks into build/site/ (no execution), served from a
local HTTP server, and every page is opened with every request that does not go to that server
aborted (and counted as a failure: the site must carry all its scripts, styles and fonts). On
every page: no console errors, no failed or missing asset, every internal link and anchor
resolves, every image drawn, every Mermaid block drawn as an SVG without error text, every
equation typeset by MathJax, Chinese text drawn with the site's own font, and every widget view of a notebook drawn from its saved state with
the pictures it was saved with. Full-text search finds a chapter. Screenshots of one chapter per
notebook group are kept as build/site-<stem>.png.

Needs Chromium and npm (the first build fetches the browser libraries); the browser fixtures come
from tests/_browser.py.
"""

from __future__ import annotations

import functools
import json
import re
import subprocess
import sys
import threading
import time
from html.parser import HTMLParser
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urljoin, urlparse

import pytest

from _browser import BUILD, NOTEBOOK_DIR, REPO, _missing

pytestmark = pytest.mark.browser

SITE = BUILD / "site"


def _load_site_build():
    """site/build.py as a module (by path: the name `build` belongs to a PyPI package)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("mmcourse_site_build", REPO / "site" / "build.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


site_build = _load_site_build()

MERMAID_FENCE = re.compile(r"^[ \t]*```[ \t]*mermaid[ \t]*$", re.M)
PAGE_TIMEOUT_MS = 60_000


# --------------------------------------------------------------------------------------------
# Build and serve


@pytest.fixture(scope="module")
def built(chromium) -> dict:
    import shutil

    if shutil.which("npm") is None and not (BUILD / "site-vendor" / "vendor").exists():
        _missing("npm is missing (make site fetches the site's browser libraries with it): `apt-get install npm`")
    t0 = time.perf_counter()
    r = subprocess.run([sys.executable, str(REPO / "site" / "build.py")], cwd=REPO, capture_output=True, text=True)
    seconds = time.perf_counter() - t0
    assert r.returncode == 0, f"make site failed:\n{r.stdout[-3000:]}\n{r.stderr[-3000:]}"
    size = sum(f.stat().st_size for f in SITE.rglob("*") if f.is_file())
    print(f"site built in {seconds:.0f} s, {size / 1e6:.1f} MB")
    warnings = [p.read_text() for p in BUILD.glob("site-warnings-*.log")]
    assert not any(w.strip() for w in warnings), "sphinx warnings:\n" + "\n".join(warnings)[-3000:]
    return {"seconds": seconds, "bytes": size}


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, *args):  # keep pytest's output readable
        pass


@pytest.fixture(scope="module")
def server(built):
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_QuietHandler, directory=str(SITE)))
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}/"
    finally:
        httpd.shutdown()
        httpd.server_close()


@pytest.fixture
def offline_page(browser, server):
    """A page whose every request off the local server is aborted and recorded."""
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    page.set_default_timeout(PAGE_TIMEOUT_MS)
    page.blocked, page.failed, page.errors = [], [], []

    def route(r):
        url = r.request.url
        if url.startswith(server) or url.startswith(("data:", "blob:")):
            r.continue_()
        else:
            page.blocked.append(url)
            r.abort()

    context.route("**/*", route)
    page.on("console", lambda m: m.type == "error" and page.errors.append(m.text))
    page.on("pageerror", lambda e: page.errors.append(f"[pageerror] {e}"))
    page.on("response", lambda resp: resp.status >= 400 and page.failed.append(f"{resp.status} {resp.url}"))
    page.on("requestfailed", lambda req: req.url.startswith(server) and page.failed.append(f"failed {req.url}"))
    try:
        yield page
    finally:
        context.close()


# --------------------------------------------------------------------------------------------
# What the notebooks hold (the expected counts)


def notebook(stem: str) -> dict:
    return json.loads((NOTEBOOK_DIR / f"{stem}.ipynb").read_text(encoding="utf-8"))


def mermaid_blocks(nb: dict) -> int:
    return sum(len(MERMAID_FENCE.findall("".join(c["source"]))) for c in nb["cells"] if c["cell_type"] == "markdown")


def saved_widget_pictures(nb: dict) -> tuple[int, list[str]]:
    """(pictures, views without one): the Image widgets with a saved value and the ipympl canvases
    with a saved picture, reachable from the notebook's widget views; and the views that hold
    neither (e.g. a canvas saved without its picture)."""
    state = nb.get("metadata", {}).get("widgets", {}).get("application/vnd.jupyter.widget-state+json", {}).get("state", {})

    def reach(model_id, seen):
        if model_id in seen or model_id not in state:
            return
        seen.add(model_id)
        for v in state[model_id]["state"].values():
            for ref in re.findall(r"IPY_MODEL_([0-9a-f]+)", json.dumps(v)):
                reach(ref, seen)

    pictures, bare = 0, []
    for c in nb["cells"]:
        for o in c.get("outputs", []) if c["cell_type"] == "code" else []:
            view = o.get("data", {}).get("application/vnd.jupyter.widget-view+json")
            if not view:
                continue
            seen: set[str] = set()
            reach(view["model_id"], seen)
            models = [state[m] for m in seen]
            # an Image's bytes are saved as a buffer of the model (path ["value"])
            n = sum(1 for m in models if m["model_name"] == "ImageModel"
                    and (m["state"].get("value") or any(b.get("path") == ["value"] for b in m.get("buffers", []))))
            n += sum(1 for m in models if m["model_name"] == "MPLCanvasModel" and m["state"].get("_data_url"))
            if seen and not n and any(m["model_name"] in ("ImageModel", "MPLCanvasModel") for m in models):
                bare.append(o.get("data", {}).get("text/plain", "")[:80])
            pictures += n
    return pictures, bare


# --------------------------------------------------------------------------------------------
# Links (checked on the files: every page, every href/src)


class _Refs(HTMLParser):
    def __init__(self):
        super().__init__()
        self.refs, self.ids = [], set()

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if a.get("id"):
            self.ids.add(a["id"])
        for key in ("href", "src"):
            if a.get(key) and not (tag == "script" and a.get("type", "").startswith("application/")):
                self.refs.append(a[key])


@functools.lru_cache(maxsize=None)
def _parse(path: Path) -> _Refs:
    p = _Refs()
    p.feed(path.read_text(encoding="utf-8", errors="replace"))
    return p


def test_site_links_and_assets_resolve(built):
    pages = sorted(p for p in SITE.rglob("*.html") if "_static" not in p.relative_to(SITE).parts)
    broken = []
    for page in pages:
        for ref in _parse(page).refs:
            u = urlparse(ref)
            if u.scheme in ("http", "https", "mailto", "data", "javascript") or ref.startswith("//"):
                continue
            target = (page.parent / unquote(u.path)).resolve() if u.path else page
            if target.is_dir():
                target = target / "index.html"
            if not target.exists():
                broken.append(f"{page.relative_to(SITE)}: {ref}")
            elif u.fragment and target.suffix == ".html" and unquote(u.fragment) not in _parse(target).ids:
                broken.append(f"{page.relative_to(SITE)}: {ref} (no such anchor)")
    assert not broken, f"{len(broken)} broken internal link(s):\n" + "\n".join(broken[:40])
    # Each chapter links its notebook, its student version and says the two commands.
    for stem in (e for ed in [site_build.editions(NOTEBOOK_DIR)[0]] for e in sorted(p.stem for p in ed[1].glob("[0-9][0-9]_*.ipynb"))):
        html = (SITE / f"{stem}.html").read_text(encoding="utf-8")
        assert f'href="notebooks/{stem}.ipynb"' in html and f'href="student/{stem}.ipynb"' in html, stem
        text = re.sub(r"<[^>]+>", "", html)
        assert "make lab" in text and "make test" in text, stem
        assert json.loads((SITE / "student" / f"{stem}.ipynb").read_text())["cells"], stem
    # A chapter another edition lacks (not yet translated): its language switch leads to that
    # edition's home page, never to a missing page; a translated one to the same chapter there.
    for lang, folder, root in site_build.editions(NOTEBOOK_DIR)[1:]:
        for p in sorted(NOTEBOOK_DIR.glob("[0-9][0-9]_*.ipynb")):
            html = (SITE / f"{p.stem}.html").read_text(encoding="utf-8")
            target = f"{root}/{p.stem}.html" if (folder / p.name).exists() else f"{root}/index.html"
            assert f'class="mmcourse-language" href="{target}"' in html, (p.stem, lang)


# --------------------------------------------------------------------------------------------
# Every page in the browser

_PAGE_STATE_JS = """
() => {
  const drawn = img => img.complete && img.naturalWidth > 0;
  const imgs = Array.from(document.querySelectorAll('article img'));
  const mermaid = Array.from(document.querySelectorAll('pre.mermaid, div.mermaid'));
  const mermaidErrors = mermaid.filter(m => /Syntax error|Parse error|Error:/i.test(m.textContent || ''))
    .map(m => (m.textContent || '').slice(0, 200));
  const math = Array.from(document.querySelectorAll('article .math'));
  const views = Array.from(document.querySelectorAll('script[type="application/vnd.jupyter.widget-view+json"]'));
  // the widget manager draws each view into a div.widget-subarea just before its script tag
  const rendered = views.filter(s => { const p = s.previousElementSibling;
    return p && p.classList.contains('widget-subarea') && p.childElementCount > 0; });
  const widgetText = Array.from(document.querySelectorAll('.jupyter-widgets')).map(w => w.textContent || '').join(' ');
  const canvases = Array.from(document.querySelectorAll('.jupyter-widgets canvas'));
  // a canvas holds a picture when some pixel is not transparent (ipympl paints its saved _data_url)
  const painted = c => { try { if (!c.width || !c.height) return false;
    const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
    for (let i = 3; i < d.length; i += 4) if (d[i] > 0) return true; return false; } catch (e) { return false; } };
  // pictures a saved widget shows: its drawn <img> elements and its painted canvases
  const widgetImgs = Array.from(document.querySelectorAll('.jupyter-widgets img')).filter(drawn).length
    + canvases.filter(painted).length;
  return {
    images: imgs.length, imagesDrawn: imgs.filter(drawn).length,
    notDrawn: imgs.filter(i => !drawn(i)).map(i => i.getAttribute('src')).slice(0, 5),
    mermaid: mermaid.length, mermaidSvg: mermaid.filter(m => m.querySelector('svg')).length, mermaidErrors,
    math: math.length, mathTypeset: math.filter(m => m.querySelector('mjx-container')).length,
    mathErrors: document.querySelectorAll('mjx-merror, .MathJax_Error').length,
    widgetViews: views.length, widgetsRendered: rendered.length,
    widgetErrors: /Error displaying widget|Could not create|model not found/i.test(widgetText),
    widgetImgs, canvases: canvases.length,
    canvasesDrawn: canvases.filter(c => c.width > 0 && c.height > 0).length,
  };
}
"""

# Chinese text on the page is drawn with the site's own font (Noto Sans SC from the build), not
# left to the reader's system fonts: returns how many of its font files were loaded for it.
_CJK_FONT_JS = """
async () => {
  const m = (document.querySelector('article') || document.body).textContent.match(/[\u4e00-\u9fff]+/);
  if (!m) return null;
  const faces = await document.fonts.load('16px "Noto Sans SC"', m[0]);
  return faces.filter(f => f.status === 'loaded').length;
}
"""


def _settle(page, expect: dict, timeout_s: float = 60) -> dict:
    """Scroll through the page (Mermaid draws a block when it becomes visible) until everything
    expected is drawn or the time is up; returns the last state."""
    deadline = time.monotonic() + timeout_s
    page.evaluate("() => window.MathJax && MathJax.startup && MathJax.startup.promise")
    while True:
        page.evaluate(
            """async () => {
                 for (const m of document.querySelectorAll('pre.mermaid, div.mermaid')) {
                   if (!m.querySelector('svg')) { m.scrollIntoView(); await new Promise(r => setTimeout(r, 100)); }
                 }
               }"""
        )
        s = page.evaluate(_PAGE_STATE_JS)
        done = (
            s["imagesDrawn"] == s["images"]
            and s["mermaidSvg"] + len(s["mermaidErrors"]) >= s["mermaid"]
            and s["mathTypeset"] == s["math"]
            and s["widgetsRendered"] == s["widgetViews"]
            and s["widgetImgs"] >= expect.get("widget_pictures", 0)
        )
        if done or time.monotonic() > deadline:
            return s
        time.sleep(0.5)


def _pages() -> list[str]:
    out = []
    for lang, folder, root in site_build.editions(NOTEBOOK_DIR):
        prefix = "" if root == "." else f"{root}/"
        chapters = sorted(p.stem for p in folder.glob("[0-9][0-9]_*.ipynb"))
        out += [f"{prefix}index.html", f"{prefix}glossary.html"] + [f"{prefix}{s}.html" for s in chapters]
    return out


def _screenshot_stems() -> set[str]:
    chapters = sorted(p.stem for p in NOTEBOOK_DIR.glob("[0-9][0-9]_*.ipynb"))
    firsts = set()
    for _, numbers in site_build.GROUPS:
        members = [s for s in chapters if s[:2] in numbers]
        if members:
            firsts.add(members[0])
    return firsts


@pytest.mark.parametrize("path", _pages())
def test_site_page_renders_offline(offline_page, server, path):
    page = offline_page
    stem = Path(path).stem
    nb_path = NOTEBOOK_DIR / (path.replace(".html", ".ipynb"))
    if not nb_path.exists() and path.endswith(("index.html", "glossary.html")):
        nb = None
    else:
        nb = json.loads(nb_path.read_text(encoding="utf-8"))
    if path.endswith("glossary.html") and not (SITE / path).exists():
        pytest.skip("no glossary section in 00_welcome")
    expect = {}
    if nb is not None:
        pictures, bare = saved_widget_pictures(nb)
        expect = {"mermaid": mermaid_blocks(nb), "widget_pictures": pictures}

    page.goto(urljoin(server, path), wait_until="load")
    s = _settle(page, expect)
    print(f"{path}: {s}")
    cjk_faces = page.evaluate(_CJK_FONT_JS)
    assert cjk_faces is None or cjk_faces > 0, f"{path}: Chinese text but Noto Sans SC not loaded"
    assert not page.blocked, f"{path} reached for the network: {page.blocked[:10]}"
    assert not page.failed, f"{path}: failed or missing assets: {page.failed[:10]}"
    assert not page.errors, f"{path}: console errors: {page.errors[:10]}"
    assert s["imagesDrawn"] == s["images"], f"{path}: {s['images'] - s['imagesDrawn']} image(s) not drawn: {s['notDrawn']}"
    assert not s["mermaidErrors"], f"{path}: Mermaid errors: {s['mermaidErrors']}"
    if nb is not None:
        assert s["mermaid"] == expect["mermaid"], f"{path}: {expect['mermaid']} ```mermaid blocks, {s['mermaid']} on the page"
    assert s["mermaidSvg"] == s["mermaid"], f"{path}: {s['mermaid'] - s['mermaidSvg']} Mermaid block(s) not drawn"
    assert s["mathErrors"] == 0 and s["mathTypeset"] == s["math"], f"{path}: math typeset {s['mathTypeset']}/{s['math']}, errors {s['mathErrors']}"
    assert not s["widgetErrors"], f"{path}: a widget failed to render"
    assert s["widgetsRendered"] == s["widgetViews"], f"{path}: {s['widgetsRendered']}/{s['widgetViews']} widget views rendered"
    if nb is not None:
        views = sum(1 for c in nb["cells"] if c["cell_type"] == "code" for o in c.get("outputs", [])
                    if "application/vnd.jupyter.widget-view+json" in o.get("data", {}))  # fmt: skip
        assert s["widgetViews"] == views, f"{path}: {views} widget outputs in the notebook, {s['widgetViews']} on the page"
        assert s["widgetImgs"] >= expect["widget_pictures"], (
            f"{path}: {expect['widget_pictures']} saved widget pictures, {s['widgetImgs']} drawn")
    if stem in _screenshot_stems() and "/" not in path:
        page.screenshot(path=str(BUILD / f"site-{stem}.png"), full_page=True)
    if nb is not None:
        assert not bare, f"{path}: widget view(s) saved without their picture (shown empty on the site): {bare}"


def test_site_search_finds_a_chapter(offline_page, server, built):
    page = offline_page
    page.goto(urljoin(server, "search.html?q=diffusion"), wait_until="load")
    results = page.locator("#search-results li")
    results.first.wait_for(timeout=PAGE_TIMEOUT_MS)
    assert results.count() >= 1
    assert not page.blocked and not page.failed and not page.errors, (page.blocked, page.failed, page.errors)


# --------------------------------------------------------------------------------------------
# A second edition (the Chinese one of issue 30 will be notebooks/zh_CN/NN_topic.ipynb): built
# here from a scratch copy of one notebook, to check the language switch and the edition's pages.


@pytest.fixture(scope="module")
def two_editions(tmp_path_factory, built):
    import shutil

    root = tmp_path_factory.mktemp("site-editions")
    nbs = root / "notebooks"
    (nbs / "zh_CN").mkdir(parents=True)
    stems = sorted(p.stem for p in NOTEBOOK_DIR.glob("[0-9][0-9]_*.ipynb"))[:1]
    for stem in stems:
        for suffix in (".ipynb", ".py"):
            if (NOTEBOOK_DIR / f"{stem}{suffix}").exists():
                shutil.copyfile(NOTEBOOK_DIR / f"{stem}{suffix}", nbs / f"{stem}{suffix}")
        nb = json.loads((NOTEBOOK_DIR / f"{stem}.ipynb").read_text(encoding="utf-8"))
        nb["cells"][0]["source"] = "# 第一章 · 测试页\n\n这是第二语言版本的测试页。\n"
        (nbs / "zh_CN" / f"{stem}.ipynb").write_text(json.dumps(nb), encoding="utf-8")
    out = root / "site"
    r = subprocess.run(
        [sys.executable, str(REPO / "site" / "build.py"), "--out", str(out), "--notebooks", str(nbs)],
        cwd=REPO, capture_output=True, text=True,
    )  # fmt: skip
    assert r.returncode == 0, f"{r.stdout[-3000:]}\n{r.stderr[-3000:]}"
    return out, stems


def test_site_second_edition_has_a_language_switch(browser, two_editions):
    out, stems = two_editions
    zh = out / "zh_CN" / f"{stems[0]}.html"
    assert zh.exists() and (out / f"{stems[0]}.html").exists()
    assert 'lang="zh-CN"' in zh.read_text(encoding="utf-8")
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_QuietHandler, directory=str(out)))
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{httpd.server_address[1]}/"
    context = browser.new_context()
    blocked, errors = [], []
    context.route("**/*", lambda r: r.continue_() if r.request.url.startswith(base) else (blocked.append(r.request.url), r.abort()))
    page = context.new_page()
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on("console", lambda m: m.type == "error" and errors.append(m.text))
    try:
        page.goto(urljoin(base, f"{stems[0]}.html"), wait_until="load")
        page.locator(".mmcourse-language-switch a", has_text="简体中文").click()
        page.wait_for_url(f"**/zh_CN/{stems[0]}.html")
        assert "测试页" in page.locator("article h1").first.inner_text()
        assert "自己运行本章" in page.locator(".mmcourse-run-box").inner_text()
        page.locator(".mmcourse-language-switch a", has_text="English").click()
        page.wait_for_url(f"**/{stems[0]}.html")
        assert "/zh_CN/" not in page.url
        page.goto(urljoin(base, "zh_CN/search.html?q=diffusion"), wait_until="load")
        page.locator("#search-results li").first.wait_for()
        assert not blocked and not errors, (blocked, errors)
    finally:
        context.close()
        httpd.shutdown()
        httpd.server_close()


def test_site_is_published_by_a_workflow_and_the_readme_says_how():
    workflow = (REPO / ".github" / "workflows" / "pages.yml").read_text()
    assert "make site" in workflow and "build/site" in workflow
    assert "make site" in (REPO / "README.md").read_text()
