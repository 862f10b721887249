"""The three dependency lists agree: pyproject.toml (ranges), environment.yml (conda), constraints.txt (CI pins)."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import yaml
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[1]
# conda-forge names that differ from PyPI's.
CONDA_NAME = {"torch": "pytorch-cpu"}
CONDA_ONLY = {"python", "pip"}


def norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def pyproject_requirements() -> dict[str, SpecifierSet]:
    data = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    reqs = list(data["dependencies"])
    for extra in data.get("optional-dependencies", {}).values():
        reqs += extra
    out = {}
    for r in map(Requirement, reqs):
        out[norm(r.name)] = r.specifier
    return out


def environment_requirements() -> tuple[dict[str, SpecifierSet], dict[str, SpecifierSet]]:
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    assert env["channels"] == ["conda-forge"], "environment.yml should use conda-forge only"
    conda, pip = {}, {}
    for dep in env["dependencies"]:
        if isinstance(dep, dict):
            for line in dep["pip"]:
                if line.startswith("-e"):
                    continue
                r = Requirement(line)
                pip[norm(r.name)] = r.specifier
            continue
        m = re.match(r"^([A-Za-z0-9_.\-]+)\s*(.*)$", dep)
        name, spec = norm(m.group(1)), m.group(2).strip()
        if name in CONDA_ONLY:
            continue
        conda[name] = SpecifierSet(spec)
    return conda, pip


def test_environment_yml_lists_every_pyproject_package_with_the_same_range():
    py = pyproject_requirements()
    conda, pip = environment_requirements()
    expected = {}
    for name, spec in py.items():
        expected[(CONDA_NAME.get(name, name), name)] = spec
    missing, differ = [], []
    for (conda_name, name), spec in expected.items():
        got = conda.get(conda_name, pip.get(name))
        if got is None:
            missing.append(name)
        elif got != spec:
            differ.append(f"{name}: pyproject {spec} vs environment.yml {got}")
    extra = set(conda) - {c for c, _ in expected} | set(pip) - {n for _, n in expected}
    assert not missing, f"in pyproject.toml but not environment.yml: {missing}"
    assert not differ, "ranges differ: " + "; ".join(differ)
    assert not extra, f"in environment.yml but not pyproject.toml: {sorted(extra)}"


def test_environment_yml_takes_the_cpu_build_of_torch():
    conda, pip = environment_requirements()
    assert "pytorch-cpu" in conda and "torch" not in pip and "pytorch" not in conda


def constraints() -> dict[str, Version]:
    pins = {}
    for line in (ROOT / "constraints.txt").read_text().splitlines():
        line = line.split("#")[0].strip()
        if line:
            r = Requirement(line)
            (spec,) = list(r.specifier)
            assert spec.operator == "==", f"constraints.txt must pin exactly, got {line!r}"
            pins[norm(r.name)] = Version(spec.version)
    return pins


def test_constraints_pin_every_package_inside_its_pyproject_range():
    pins = constraints()
    for name, spec in pyproject_requirements().items():
        assert name in pins, f"constraints.txt does not pin {name}"
        assert pins[name] in spec, f"constraints.txt pins {name}=={pins[name]}, outside pyproject's {spec}"


def test_ci_takes_the_local_cpu_torch_wheel():
    assert constraints()["torch"] == Version("2.13.0")
