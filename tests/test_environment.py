"""The three dependency lists agree: pyproject.toml (ranges), environment.yml (conda), constraints.txt (CI pins)."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest
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


def constraint_lines() -> list[Requirement]:
    out = []
    for line in (ROOT / "constraints.txt").read_text().splitlines():
        line = line.split("#")[0].strip()
        if line:
            r = Requirement(line)
            (spec,) = list(r.specifier)
            assert spec.operator == "==", f"constraints.txt must pin exactly, got {line!r}"
            out.append(r)
    return out


def supported_pythons() -> list[str]:
    """'3.10', '3.11', ... from requires-python (">=3.10,<3.14")."""
    spec = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["requires-python"]
    lo, hi = re.fullmatch(r">=3\.(\d+),<3\.(\d+)", spec).groups()
    return [f"3.{m}" for m in range(int(lo), int(hi))]


# Linux x86_64 CPython: what CI and the course machines run; full versions at both ends of a
# minor release, since pins may split inside one (soupsieve 4.1.3 needs 3.11.5).
def environment(python_full: str) -> dict[str, str]:
    return {"python_version": python_full.rsplit(".", 1)[0], "python_full_version": python_full,
            "sys_platform": "linux", "platform_system": "Linux", "platform_machine": "x86_64",
            "os_name": "posix", "implementation_name": "cpython", "platform_python_implementation": "CPython"}


def constraints(python_full: str = "3.11.7") -> dict[str, Version]:
    """The pins that apply on one Python (Linux x86_64): exactly one per package."""
    pins = {}
    for r in constraint_lines():
        if r.marker is None or r.marker.evaluate(environment(python_full)):
            name = norm(r.name)
            assert name not in pins, f"constraints.txt pins {name} twice for Python {python_full}"
            pins[name] = Version(list(r.specifier)[0].version)
    return pins


FULL_VERSIONS = [v for minor in supported_pythons() for v in (f"{minor}.0", f"{minor}.99")] + ["3.11.2"]


@pytest.mark.parametrize("python_full", FULL_VERSIONS)
def test_constraints_pin_every_package_inside_its_pyproject_range(python_full):
    pins = constraints(python_full)
    for name, spec in pyproject_requirements().items():
        assert name in pins, f"constraints.txt does not pin {name} for Python {python_full}"
        assert pins[name] in spec, f"constraints.txt pins {name}=={pins[name]}, outside pyproject's {spec}"


def test_supported_range_is_3_10_to_3_13_and_the_readme_says_so():
    assert supported_pythons() == ["3.10", "3.11", "3.12", "3.13"]
    assert "Python 3.10–3.13" in (ROOT / "README.md").read_text()


def test_ci_takes_the_local_cpu_torch_wheel_and_no_cuda_stack():
    assert {constraints(v)["torch"] for v in FULL_VERSIONS} == {Version("2.13.0")}
    cuda = [r.name for r in constraint_lines() if re.match(r"(nvidia-|cuda-|triton$)", norm(r.name))]
    assert not cuda, f"constraints.txt pins torch's CUDA stack: {cuda}"
