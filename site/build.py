"""Build the course website into build/site/ (`make site`): Sphinx + MyST-NB over the committed,
executed notebooks, never re-executed.

Steps:
1. vendor: the browser libraries the site needs (widget manager, require.js, the ipympl canvas,
   Mermaid, MathJax and its font) are fetched once with `npm pack` at the versions and sha512
   pinned in site/vendor.json, checked, and unpacked into build/site-vendor/vendor/ (kept between
   builds; no network needed after the first). Sphinx copies them into _static/vendor/.
2. stage, for each edition (English from notebooks/NN_*.ipynb; another language from
   notebooks/<lang>/NN_*.ipynb when that folder exists, e.g. notebooks/zh_CN/), a source tree
   in build/site-src/<lang>/: the landing page from the README (its introduction, the two
   commands of its quick start, the syllabus table), the notebooks each with a box linking its
   .ipynb, its student version and the commands that run it, and the glossary (the section of
   00_welcome whose heading says Glossary). The .ipynb files and the student versions
   (mmcourse.tools.student) are published beside the pages under notebooks/ and student/.
3. sphinx-build each edition: English into build/site/, another language into build/site/<lang>/,
   with a language switch on every page when there is more than one edition.

Usage: python site/build.py [--out build/site] [--notebooks notebooks]
"""

from __future__ import annotations

import argparse
import base64
import copy
import fnmatch
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import time
import zipfile
from pathlib import Path

SITE = Path(__file__).resolve().parent
REPO = SITE.parent
BUILD = REPO / "build"
VENDOR_STATIC = BUILD / "site-vendor"  # html_static_path entry: its vendor/ becomes _static/vendor/
NPM_CACHE = BUILD / "site-npm"  # the packed tarballs
LANG_DIR = re.compile(r"^[a-z]{2,3}(_[A-Z][a-z]*|_[A-Z]{2})?$")  # zh_CN, pt_BR, de, ...

# Chapter groups of the navigation (by notebook number); a notebook in none of them goes to the last.
GROUPS = [
    ("Start", ["00"]),
    ("Diffusion", ["01", "02"]),
    ("Transformers and vision-language", ["03", "04", "05"]),
    ("Segmentation and grounding", ["06", "07"]),
    ("Capstone", ["08"]),
]
GROUP_NAMES_ZH = {
    "Start": "入门", "Diffusion": "扩散模型", "Transformers and vision-language": "Transformer 与视觉–语言",
    "Segmentation and grounding": "分割与定位", "Capstone": "综合项目", "More": "更多",
}


# --------------------------------------------------------------------------------------------
# 1. vendored browser libraries


def _sha512(path: Path) -> str:
    h = hashlib.sha512()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return "sha512-" + base64.b64encode(h.digest()).decode()


def _tarball_name(name: str, version: str) -> str:
    return f"{name.lstrip('@').replace('/', '-')}-{version}.tgz"


def vendor(log=print) -> Path:
    """Unpack every package of site/vendor.json into build/site-vendor/vendor/<dir>; returns the static root."""
    spec = json.loads((SITE / "vendor.json").read_text())
    for pkg in spec["packages"]:
        dest = VENDOR_STATIC / "vendor" / pkg["dir"]
        stamp, wanted = dest / ".vendored", json.dumps([pkg["integrity"], pkg["files"]])
        if stamp.exists() and stamp.read_text() == wanted:
            continue
        NPM_CACHE.mkdir(parents=True, exist_ok=True)
        tgz = NPM_CACHE / _tarball_name(pkg["name"], pkg["version"])
        if not tgz.exists() or _sha512(tgz) != pkg["integrity"]:
            npm = shutil.which("npm")
            if npm is None:
                sys.exit(
                    "make site needs npm (Node.js) once, to fetch the site's browser libraries from the npm "
                    "registry (site/vendor.json): install it (Debian/Ubuntu: `apt-get install npm`) and run again."
                )
            log(f"site: fetching {pkg['name']}@{pkg['version']} (npm pack)")
            subprocess.run(
                [npm, "pack", "--silent", f"{pkg['name']}@{pkg['version']}", "--pack-destination", str(NPM_CACHE)],
                check=True, stdout=subprocess.DEVNULL,
            )  # fmt: skip
        got = _sha512(tgz)
        if got != pkg["integrity"]:
            tgz.unlink()
            sys.exit(f"{pkg['name']}@{pkg['version']}: sha512 {got} differs from site/vendor.json's {pkg['integrity']}")
        shutil.rmtree(dest, ignore_errors=True)
        dest.mkdir(parents=True)
        with tarfile.open(tgz, "r:gz") as tar:
            for m in tar:  # in order: a gzip stream only reads forward cheaply
                rel = m.name.split("/", 1)[1] if "/" in m.name else m.name
                if not m.isfile() or not any(fnmatch.fnmatch(rel, pat) for pat in pkg["files"]):
                    continue
                target = dest / rel
                target.parent.mkdir(parents=True, exist_ok=True)
                with tar.extractfile(m) as src, open(target, "wb") as out:
                    shutil.copyfileobj(src, out)
        stamp.write_text(wanted)
    return VENDOR_STATIC


# --------------------------------------------------------------------------------------------
# 2. staged sources


def editions(notebooks: Path) -> list[tuple[str, Path, str]]:
    """(language, notebook folder, output root relative to the English root) for every edition."""
    out = [("en", notebooks, ".")]
    for d in sorted(p for p in notebooks.iterdir() if p.is_dir() and LANG_DIR.match(p.name)):
        if any(d.glob("[0-9][0-9]_*.ipynb")):
            out.append((d.name, d, d.name))
    return out


def _section(text: str, start: str, end: str | None) -> str:
    i = text.find(start)
    if i < 0:
        return ""
    j = text.find(end, i + len(start)) if end else -1
    return text[i + len(start) : j if j >= 0 else len(text)]


def readme_parts(readme: Path) -> dict[str, str]:
    """The README's introduction (title to its first ## heading), the first shell block of its
    quick start, and the syllabus table (between the timings markers)."""
    text = readme.read_text(encoding="utf-8")
    m = re.search(r"^# .*$", text, re.M)
    title = m.group(0)[2:].strip() if m else "mmcourse"
    body = text[m.end() :] if m else text
    intro = re.split(r"^## ", body, maxsplit=1, flags=re.M)[0].strip()
    # The first shell block of the first ## section (the quick start).
    first = re.split(r"^## ", body, maxsplit=2, flags=re.M)
    quick = re.search(r"^```(?:bash|sh|shell)?\n(.*?)^```", first[1], re.M | re.S) if len(first) > 1 else None
    table = _section(text, "<!-- timings:start -->", "<!-- timings:end -->").strip()
    return {"title": title, "intro": intro, "commands": quick.group(1).strip() if quick else "", "table": table}


def _link_chapters(table: str, chapters: list[str]) -> str:
    """`NN_topic` in the syllabus table becomes a link to its chapter."""
    for stem in chapters:
        table = table.replace(f"`{stem}`", f"[`{stem}`]({stem}.ipynb)")
    return table


WORDS = {
    "en": {
        "run_title": "Run this chapter yourself",
        "run_text": "This page shows the notebook as it was last executed; its widgets show the pictures "
        "it was saved with (the controls need a running kernel). Download",
        "source": "with its outputs",
        "or": " or ",
        "colon": ": ",
        "stop": ".",
        "lp": "(",
        "rp": ")",
        "comma": ", ",
        "student": "the student version: exercises to solve, no outputs",
        "commands": "or clone the course and type",
        "lab": "opens it in JupyterLab (sets everything up on the first run)",
        "test": "runs every check",
        "run_home": "Run it yourself",
        "run_home_text": "Every page is a notebook you can run on a laptop CPU, offline. Clone the course, then:",
        "student_zip": "All student notebooks in one archive",
        "syllabus": "Syllabus",
        "chapters": "Chapters",
        "glossary": "Glossary",
    },
    "zh_CN": {
        "run_title": "自己运行本章",
        "run_text": "本页显示的是笔记本最近一次运行的结果；其中的交互控件显示保存时的图像（要操作控件需要运行的内核）。下载",
        "source": "带输出",
        "or": "，或",
        "colon": "：",
        "stop": "。",
        "lp": "（",
        "rp": "）",
        "comma": "，",
        "student": "学生版：待完成的练习，无输出",
        "commands": "或者克隆课程后输入",
        "lab": "在 JupyterLab 中打开（首次运行时自动安装）",
        "test": "运行全部检查",
        "run_home": "自己运行",
        "run_home_text": "每一页都是可以在笔记本电脑 CPU 上离线运行的 Jupyter 笔记本。克隆课程后：",
        "student_zip": "全部学生版笔记本（一个压缩包）",
        "syllabus": "课程大纲",
        "chapters": "章节",
        "glossary": "术语表",
    },
}


def _words(lang: str) -> dict[str, str]:
    return WORDS.get(lang, WORDS["en"])


def run_box(stem: str, lang: str, student: bool = True) -> str:
    w = _words(lang)
    student_link = (
        f'{w["or"]}<a class="mmcourse-student" href="student/{stem}.ipynb" download>student/{stem}.ipynb</a>\n{w["lp"]}{w["student"]}{w["rp"]}'
        if student else ""
    )  # fmt: skip
    return f"""```{{admonition}} {w['run_title']}
:class: tip mmcourse-run-box

{w['run_text']} <a class="mmcourse-source" href="notebooks/{stem}.ipynb" download>{stem}.ipynb</a>
{w['lp']}{w['source']}{w['rp']}{student_link}{w['comma']}{w['commands']}

- `make lab`{w['colon']}{w['lab']}
- `make test`{w['colon']}{w['test']}
```
"""


def _insert_run_box(nb: dict, stem: str, lang: str, student: bool) -> dict:
    nb = copy.deepcopy(nb)
    cell = {"cell_type": "markdown", "id": "mmcourse-run-box", "metadata": {}, "source": run_box(stem, lang, student)}
    first = nb["cells"][0] if nb["cells"] else None
    at = 1 if first and first["cell_type"] == "markdown" and "".join(first["source"]).lstrip().startswith("# ") else 0
    nb["cells"].insert(at, cell)
    return nb


def glossary_cells(nb: dict) -> list[str]:
    """The Markdown of the section whose heading mentions Glossary (or 术语表), to the next heading
    of the same or a higher level."""
    out, level = [], None
    for c in nb["cells"]:
        if c["cell_type"] != "markdown":
            continue
        src = "".join(c["source"])
        m = re.match(r"^(#{1,6})\s+(.*)$", src.lstrip(), re.M)
        if level is None:
            if m and re.search(r"glossary|术语表", m.group(2), re.I):
                level = len(m.group(1))
                out.append("# " + m.group(2).strip() + "\n" + src.lstrip()[m.end() :])
        elif m and len(m.group(1)) <= level:
            break
        else:
            out.append(src)
    return out


def stage(lang: str, notebooks: Path, src: Path, readme: Path) -> list[str]:
    """Write the edition's Sphinx sources into `src`; returns the chapter stems."""
    shutil.rmtree(src, ignore_errors=True)
    (src / "_files" / "notebooks").mkdir(parents=True)
    w = _words(lang)
    chapters = sorted(p.stem for p in notebooks.glob("[0-9][0-9]_*.ipynb"))
    if not chapters:
        sys.exit(f"site: no notebooks/NN_*.ipynb in {notebooks}")
    # Student versions: made by the course's own tool from the jupytext sources (NN_topic.py) where
    # the edition has them, from the generated notebooks in a translated edition (no .py there:
    # mmcourse.tools.translations writes them), offered per chapter and as one zip.
    student = src / "_files" / "student"

    def teacher(stem: str) -> Path | None:
        py = notebooks / f"{stem}.py"
        return py if py.exists() else (notebooks / f"{stem}.ipynb" if lang != "en" else None)

    sources = [teacher(s) for s in chapters if teacher(s) is not None]
    for stem in chapters:
        raw = (notebooks / f"{stem}.ipynb").read_text(encoding="utf-8")
        shutil.copyfile(notebooks / f"{stem}.ipynb", src / "_files" / "notebooks" / f"{stem}.ipynb")
        nb = _insert_run_box(json.loads(raw), stem, lang, student=teacher(stem) is not None)
        (src / f"{stem}.ipynb").write_text(json.dumps(nb), encoding="utf-8")
    if sources:
        subprocess.run(
            [sys.executable, "-m", "mmcourse.tools.student", *map(str, sources), "--out", str(student)],
            check=True, cwd=REPO, stdout=subprocess.DEVNULL,
        )  # fmt: skip
        with zipfile.ZipFile(student / "mmcourse-student.zip", "w", zipfile.ZIP_DEFLATED) as z:
            for f in sorted(student.glob("*.ipynb")):
                z.write(f, f"mmcourse-student/{f.name}")

    glossary = []
    welcome = next((s for s in chapters if s.startswith("00")), None)
    if welcome:
        glossary = glossary_cells(json.loads((notebooks / f"{welcome}.ipynb").read_text(encoding="utf-8")))
    if glossary:
        (src / "glossary.md").write_text("\n\n".join(glossary) + "\n", encoding="utf-8")

    parts = readme_parts(readme)
    if not parts["table"]:  # an edition's README without the syllabus table: the English one's
        parts["table"] = readme_parts(REPO / "README.md")["table"]
    groups: list[tuple[str, list[str]]] = []
    placed = set()
    for name, numbers in GROUPS:
        members = [s for s in chapters if s[:2] in numbers]
        placed.update(members)
        if members:
            groups.append((name, members))
    rest = [s for s in chapters if s not in placed]
    if rest:
        groups.append(("More", rest))
    toctrees = []
    for name, members in groups:
        caption = GROUP_NAMES_ZH.get(name, name) if lang == "zh_CN" else name
        toctrees.append("```{toctree}\n:hidden:\n:caption: " + caption + "\n\n" + "\n".join(members) + "\n```")
    if glossary:
        toctrees.append("```{toctree}\n:hidden:\n:caption: " + w["glossary"] + "\n\nglossary\n```")
    commands = parts["commands"] or "make lab\nmake test"
    zip_link = ""
    if sources:
        zip_link = f'\n{w["student_zip"]}{w["colon"]}<a href="student/mmcourse-student.zip" download>mmcourse-student.zip</a>{w["stop"]}\n'
    index = f"""# {parts['title']}

{parts['intro']}

## {w['run_home']}

{w['run_home_text']}

```bash
{commands}
```
{zip_link}
## {w['syllabus']}

{_link_chapters(parts['table'], chapters)}

{chr(10).join(toctrees)}
"""
    (src / "index.md").write_text(index, encoding="utf-8")
    return chapters


# --------------------------------------------------------------------------------------------
# 3. build


def build(out: Path, notebooks: Path, log=print) -> dict:
    t0 = time.perf_counter()
    vendor(log)
    eds = editions(notebooks)
    spec = ",".join(f"{lang}={root}" for lang, _, root in eds)
    # each edition's chapters: the language switch of a chapter not (yet) translated points at the
    # other edition's home page instead of a page that does not exist
    chapters_spec = ";".join(
        f"{lang}=" + ":".join(sorted(p.stem for p in folder.glob("[0-9][0-9]_*.ipynb"))) for lang, folder, _ in eds
    )
    shutil.rmtree(out, ignore_errors=True)  # no stale pages or assets from an earlier build
    report = {"editions": []}
    for lang, folder, root in eds:
        src = BUILD / "site-src" / lang
        readme = REPO / ("README.md" if lang == "en" else f"README.{lang.replace('_', '-')}.md")
        if not readme.exists():
            readme = REPO / "README.md"
        chapters = stage(lang, folder, src, readme)
        dest = (out / root).resolve()
        # Sphinx writes into a folder of its own (MyST-NB puts a jupyter_execute/ beside its output
        # folder), copied into place after.
        html = BUILD / "site-html" / lang / "html"
        shutil.rmtree(html, ignore_errors=True)
        env = dict(
            os.environ,
            MMCOURSE_SITE_LANGUAGE=lang,
            MMCOURSE_SITE_EDITIONS=spec,
            MMCOURSE_SITE_CHAPTERS=chapters_spec,
            MMCOURSE_SITE_VENDOR=str(VENDOR_STATIC),
        )
        cmd = [
            sys.executable, "-m", "sphinx", "-b", "html", "-q", "-c", str(SITE),
            "-d", str(BUILD / "site-doctrees" / lang), str(src), str(html),
        ]  # fmt: skip
        log(f"site: building the {lang} edition ({len(chapters)} chapters) into {dest.relative_to(REPO) if dest.is_relative_to(REPO) else dest}")
        warnings = BUILD / f"site-warnings-{lang}.log"
        r = subprocess.run([*cmd, "-w", str(warnings)], env=env, cwd=REPO)
        if r.returncode != 0:
            sys.exit(f"site: sphinx-build failed for {lang} (see above, and {warnings})")
        shutil.copytree(html, dest, dirs_exist_ok=True)
        # Published beside the pages: the notebooks and the student versions.
        for sub in ("notebooks", "student"):
            if (src / "_files" / sub).exists():
                shutil.copytree(src / "_files" / sub, dest / sub, dirs_exist_ok=True)
        report["editions"].append({"language": lang, "chapters": chapters, "root": root})
    size = sum(f.stat().st_size for f in out.rglob("*") if f.is_file())
    report.update(seconds=round(time.perf_counter() - t0, 1), bytes=size)
    log(f"site: built {out} in {report['seconds']} s, {size / 1e6:.1f} MB; "
        f"to read it: python3 -m http.server -d {out} and open http://localhost:8000")
    return report


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, default=BUILD / "site")
    ap.add_argument("--notebooks", type=Path, default=REPO / "notebooks", help="where the executed .ipynb are")
    args = ap.parse_args(argv)
    build(args.out.resolve(), args.notebooks.resolve())


if __name__ == "__main__":
    main()
