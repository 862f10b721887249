"""Prepare the course's JupyterLab: run by `make setup` (scripts/setup.sh) and by every `make lab`
(scripts/lab.sh), with the course venv's Python: `python scripts/prepare_lab.py [NOTEBOOK_DIR]`
(default: the repository's notebooks/).

1. Trust the course's notebooks (what `jupyter trust notebooks/*.ipynb` does). JupyterLab renders
   widget views and HTML outputs only in trusted notebooks: a notebook opened before it runs
   would otherwise show each saved widget as its text repr (``VBox(children=(...``) instead of
   its saved picture. A signature covers the notebook's exact content, so `make execute`, a
   `git pull` or an edit outside Lab makes the notebook untrusted again; that is why `make lab`
   signs again on every start (a notebook already trusted is left as it is). Signatures go to
   Jupyter's data directory (``jupyter --data-dir``, nbsignatures.db), as with `jupyter trust`.
2. Lab settings for the course, as overrides in the venv
   (``<venv>/share/jupyter/lab/settings/overrides.json``: they change the defaults, a learner's
   own settings still win): never fetch Jupyter news or check for updates (the course runs
   offline), so the "notified about official Jupyter news?" prompt never covers a notebook.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# Plugin id -> settings (schema: @jupyterlab/apputils-extension/notification.json in Lab 4.6;
# fetchNews is the string "true" / "false" / "none", "none" meaning "ask").
LAB_OVERRIDES = {
    "@jupyterlab/apputils-extension:notification": {"fetchNews": "false", "checkForUpdates": False},
}


def overrides_path(prefix: Path = Path(sys.prefix)) -> Path:
    """Where JupyterLab in this environment reads its settings overrides (its app settings dir)."""
    return prefix / "share" / "jupyter" / "lab" / "settings" / "overrides.json"


def install_lab_overrides(path: Path | None = None) -> Path:
    """Merge LAB_OVERRIDES into overrides.json (other plugins' entries and keys are kept)."""
    path = path or overrides_path()
    current = json.loads(path.read_text()) if path.exists() else {}
    for plugin, values in LAB_OVERRIDES.items():
        current.setdefault(plugin, {}).update(values)
    path.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps(current, indent=2) + "\n"
    if not path.exists() or path.read_text() != text:
        path.write_text(text)
    return path


def trust_notebooks(paths: list[Path]) -> tuple[int, int]:
    """Sign every notebook not yet trusted; returns (newly signed, already trusted)."""
    import nbformat
    from nbformat.sign import NotebookNotary

    notary = NotebookNotary()
    signed = kept = 0
    try:
        for path in paths:
            nb = nbformat.read(path, as_version=nbformat.NO_CONVERT)
            if notary.check_signature(nb):
                kept += 1
            else:
                notary.sign(nb)
                signed += 1
    finally:
        notary.store.close()
    return signed, kept


def main(argv: list[str]) -> None:
    folder = Path(argv[0]) if argv else ROOT / "notebooks"
    # the English notebooks and the generated translations (notebooks/zh_CN/NN_topic.ipynb)
    notebooks = sorted(folder.glob("[0-9][0-9]_*.ipynb")) + sorted(folder.glob("*/[0-9][0-9]_*.ipynb"))
    # Neither step may stop JupyterLab from starting (a read-only shared environment, a locked
    # signature database): say what was skipped and go on.
    try:
        signed, kept = trust_notebooks(notebooks)
        print(f"== lab: {len(notebooks)} course notebooks trusted ({signed} signed now)")
    except Exception as e:  # noqa: BLE001
        print(f"== lab: could not trust the notebooks ({e}); saved widgets show only after a run")
    try:
        print(f"== lab: course settings in {install_lab_overrides()}")
    except OSError as e:
        print(f"== lab: could not write the Lab settings ({e}); JupyterLab may ask about Jupyter news")


if __name__ == "__main__":
    main(sys.argv[1:])
