"""The checkpoint registry: tiny models trained by this repo's own code, shipped as safetensors.

``registry.json`` (next to this file) lists every checkpoint with its sha256, the config needed to
rebuild the model, the command that produced it and the metric it reached. ``load(name)`` checks
the hash before reading the tensors. safetensors holds only tensors, so loading a checkpoint can
never run code (unlike ``torch.load`` on a pickle).

Rebuild every checkpoint with ``make weights`` (``python -m mmcourse.weights.build all``);
re-measure the shipped ones on fresh draws with ``make weights-check`` (``mmcourse.weights.check``).
Every function takes ``registry=``; without it, the registry named by the environment variable
``MMCOURSE_REGISTRY`` if set (a maintainer's or a test's copy), else the shipped one.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from safetensors.torch import load_file, save_file

if TYPE_CHECKING:
    from ..protocol import Estimate

WEIGHTS_DIR = Path(__file__).resolve().parent
REGISTRY = WEIGHTS_DIR / "registry.json"
REGISTRY_ENV = "MMCOURSE_REGISTRY"
REBUILD_HINT = "rebuild it with `make weights` (python -m mmcourse.weights.build {name})"


class CheckpointError(RuntimeError):
    """A checkpoint is unknown, missing or does not match its registered hash."""


class UnknownCheckpointError(CheckpointError, ValueError):
    """A checkpoint name the registry does not list (a bad ``name`` argument: also a ValueError)."""


@dataclass(frozen=True)
class Entry:
    """One registry row."""

    name: str
    file: str
    sha256: str
    config: dict[str, Any]
    command: str
    metrics: dict[str, float]
    # For the numbers measured under the evaluation protocol (mmcourse.protocol): their standard
    # error and item count, {"metric": {"se": 0.004, "n": 2500}}, and the targets the builder
    # enforces, {"metric": {"min": 0.95}} (or "max" for an upper bound).
    errors: dict[str, dict[str, float]] = field(default_factory=dict)
    targets: dict[str, dict[str, float]] = field(default_factory=dict)

    def estimate(self, metric: str) -> Estimate:
        """The stored value of ``metric`` with its standard error and n (test draws)."""
        from ..protocol import Estimate

        if metric not in self.metrics:
            raise KeyError(f"{self.name} has no metric {metric!r}; it has {', '.join(self.metrics)}")
        if metric not in self.errors:
            raise KeyError(f"{self.name}'s {metric!r} has no standard error: it was not measured under the protocol")
        err = self.errors[metric]
        return Estimate(self.metrics[metric], err["se"], int(err["n"]))

    def describe(self, metric: str) -> str:
        """``0.958 ± 0.005 (target ≥ 0.95)`` for a stored metric (its target if it has one)."""
        target = self.targets.get(metric, {})
        if "max" in target:
            return self.estimate(metric).describe(target["max"], higher_is_better=False)
        return self.estimate(metric).describe(target.get("min"))


def sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def registry_path(registry: Path | str | None = None) -> Path:
    """``registry`` if given, else ``$MMCOURSE_REGISTRY`` if set, else the shipped registry.json."""
    if registry is not None:
        return Path(registry)
    return Path(os.environ[REGISTRY_ENV]) if os.environ.get(REGISTRY_ENV) else REGISTRY


def read_registry(registry: Path | None = None) -> dict[str, Entry]:
    """All registry entries by name (an empty dict if the registry file does not exist yet)."""
    registry = registry_path(registry)
    if not registry.exists():
        return {}
    raw = json.loads(registry.read_text())
    return {name: Entry(name=name, **row) for name, row in raw.items()}


def available(registry: Path | None = None) -> list[str]:
    """Names of the registered checkpoints."""
    return sorted(read_registry(registry))


def entry(name: str, registry: Path | None = None) -> Entry:
    """The registry row for ``name``; raises :class:`CheckpointError` listing the known names."""
    rows = read_registry(registry)
    known = ", ".join(sorted(rows)) or "(none registered yet)"
    if not isinstance(name, str):
        raise UnknownCheckpointError(f"name must be a checkpoint name (a string), got {name!r}; known checkpoints: {known}")
    if name not in rows:
        raise UnknownCheckpointError(f"unknown checkpoint name {name!r}; known checkpoints: {known}")
    return rows[name]


def load(name: str, registry: Path | None = None) -> tuple[dict[str, torch.Tensor], Entry]:
    """Verify and load checkpoint ``name``: returns (state_dict, registry entry).

    Raises :class:`CheckpointError` naming the file and how to rebuild it when the file is
    missing or its sha256 differs from the registry (a truncated or edited file).
    """
    registry = registry_path(registry)
    e = entry(name, registry)
    path = registry.parent / e.file
    hint = REBUILD_HINT.format(name=name)
    if not path.exists():
        raise CheckpointError(f"checkpoint file {path} for {name!r} is missing; {hint}")
    digest = sha256_of(path)
    if digest != e.sha256:
        raise CheckpointError(
            f"checkpoint file {path} for {name!r} is corrupted: sha256 {digest[:12]}... "
            f"does not match the registry's {e.sha256[:12]}...; {hint}"
        )
    return load_file(str(path)), e


def file_metadata(name: str, command: str) -> dict[str, str]:
    """The safetensors header metadata of a shipped file: ONE key, so the file's bytes (and the
    registry's sha256) are the same on every rebuild. safetensors writes metadata from a hash map
    whose order changes from call to call, so two keys gave two possible files for the same tensors."""
    return {"mmcourse": json.dumps({"command": command, "name": name}, sort_keys=True)}


def save(
    name: str,
    state_dict: dict[str, torch.Tensor],
    config: dict[str, Any],
    command: str,
    metrics: dict[str, float | Estimate],
    registry: Path | None = None,
    targets: dict[str, dict[str, float]] | None = None,
) -> Entry:
    """Write ``<name>.safetensors`` beside the registry and record its hash, config and metrics.

    A metric given as an :class:`~mmcourse.protocol.Estimate` (measured on the protocol's test
    draws) is stored as its value, with its standard error and n under ``errors``; ``targets``
    ({"metric": {"min": 0.95}}) records what the builder enforced.
    """
    registry = registry_path(registry)
    _check_targets(metrics, targets)
    path = registry.parent / f"{name}.safetensors"
    tensors = {k: v.detach().cpu().contiguous() for k, v in state_dict.items()}
    save_file(tensors, str(path), metadata=file_metadata(name, command))
    row = {"file": path.name, "sha256": sha256_of(path), "config": config, "command": command}
    row.update(_metric_fields(metrics, targets))
    _update_rows(registry, lambda rows: rows.__setitem__(name, row))
    return Entry(name=name, **row)


def record(name: str, metrics: dict[str, float | Estimate], targets: dict[str, dict[str, float]] | None = None,
           registry: Path | None = None) -> Entry:
    """Store new measurements of the shipped checkpoint ``name`` without retraining it.

    The row keeps its file, sha256, config and command. Each metric in ``metrics`` replaces the
    stored one (an :class:`~mmcourse.protocol.Estimate` with its standard error and n); metrics
    not measured again (the training time, the final loss) stay as they were. ``targets``, when
    given, replaces the row's targets.
    """
    registry = registry_path(registry)
    _check_targets(metrics, targets)
    new = _metric_fields(metrics, targets)

    def update(rows: dict) -> None:
        if name not in rows:
            raise UnknownCheckpointError(f"unknown checkpoint name {name!r}; known checkpoints: {', '.join(sorted(rows))}")
        row = rows[name]
        row["metrics"] = {**row.get("metrics", {}), **new["metrics"]}
        errors = {k: v for k, v in row.get("errors", {}).items() if k not in metrics}
        errors.update(new.get("errors", {}))
        row.pop("errors", None)
        if errors:
            row["errors"] = dict(sorted(errors.items()))
        if targets is not None:
            row.pop("targets", None)
            if targets:
                row["targets"] = targets

    _update_rows(registry, update)
    return entry(name, registry)


def _check_targets(metrics: dict, targets: dict | None) -> None:
    for metric, bound in (targets or {}).items():
        if metric not in metrics or not isinstance(bound, dict) or set(bound) - {"min", "max"} or len(bound) != 1:
            raise ValueError(f"targets must map metrics of this checkpoint to {{'min': x}} or {{'max': x}}, "
                             f"got {metric!r}: {bound!r}")


def _metric_fields(metrics: dict, targets: dict | None) -> dict:
    """The registry row's "metrics", "errors" (for Estimate values) and "targets" fields."""
    from ..protocol import Estimate

    out: dict[str, Any] = {
        "metrics": {k: round(float(v.value if isinstance(v, Estimate) else v), 4) for k, v in metrics.items()}}
    errors = {k: {"se": round(v.se, 4), "n": v.n} for k, v in metrics.items() if isinstance(v, Estimate)}
    if errors:
        out["errors"] = errors
    if targets:
        out["targets"] = targets
    return out


def _update_rows(registry: Path, update) -> None:
    """Read, update and replace the registry under a lock: builders of different checkpoints may
    run at once, and none may drop another's row."""
    with open(registry.parent / ".registry.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        rows = json.loads(registry.read_text()) if registry.exists() else {}
        update(rows)
        tmp = registry.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(dict(sorted(rows.items())), indent=2) + "\n")
        os.replace(tmp, registry)
