import json

import pytest
import torch

from mmcourse import weights
from mmcourse.weights import CheckpointError


@pytest.fixture()
def registry(tmp_path):
    reg = tmp_path / "registry.json"
    weights.save("tiny", {"w": torch.arange(6.0).reshape(2, 3)}, {"dim": 3}, "python make_tiny.py", {"acc": 0.5}, registry=reg)
    return reg


def test_save_then_load_round_trips_and_records_the_hash(registry):
    state, e = weights.load("tiny", registry=registry)
    torch.testing.assert_close(state["w"], torch.arange(6.0).reshape(2, 3))
    assert e.config == {"dim": 3} and e.metrics == {"acc": 0.5} and e.command == "python make_tiny.py"
    assert e.sha256 == weights.sha256_of(registry.parent / "tiny.safetensors")


def test_saving_the_same_tensors_twice_writes_the_same_bytes(tmp_path):
    # a rebuild by `make weights` must reproduce the registry's hash, not just the tensors
    hashes = set()
    for _ in range(12):
        e = weights.save("tiny", {"w": torch.arange(6.0)}, {}, "python make_tiny.py", {}, registry=tmp_path / "r.json")
        hashes.add(e.sha256)
    assert len(hashes) == 1


def test_unknown_name_lists_the_known_ones(registry):
    with pytest.raises(CheckpointError, match=r"unknown checkpoint name 'nope'.*tiny"):
        weights.load("nope", registry=registry)


def test_missing_file_names_the_file_and_make_weights(registry):
    (registry.parent / "tiny.safetensors").unlink()
    with pytest.raises(CheckpointError, match=r"tiny\.safetensors.*missing.*make weights"):
        weights.load("tiny", registry=registry)


def test_corrupted_file_is_caught_by_the_hash(registry):
    path = registry.parent / "tiny.safetensors"
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match=r"tiny\.safetensors.*corrupted.*make weights"):
        weights.load("tiny", registry=registry)


def test_shipped_checkpoints_verify_and_are_safetensors_not_pickles():
    names = weights.available()
    assert "digits_classifier" in names
    for name in names:
        e = weights.entry(name)
        path = weights.WEIGHTS_DIR / e.file
        assert path.suffix == ".safetensors"
        # A safetensors file starts with an 8-byte little-endian header length, then JSON.
        head = path.read_bytes()[:8 + 2]
        assert head[8:9] == b"{", f"{path} is not a safetensors file"
        state, _ = weights.load(name)
        assert state and all(isinstance(v, torch.Tensor) for v in state.values())
        assert e.metrics, f"{name} has no recorded metric"


def test_shipped_digits_classifier_reaches_its_target():
    from mmcourse.data.digits import load_digits
    from mmcourse.evaluate import load_digits_classifier

    x, y = load_digits("test")
    with torch.no_grad():
        acc = (load_digits_classifier()(x).argmax(1) == y).float().mean().item()
    assert acc >= 0.97
    assert abs(acc - weights.entry("digits_classifier").metrics["test_accuracy"]) < 1e-3


def test_registry_file_is_sorted_json_with_required_fields():
    raw = json.loads(weights.REGISTRY.read_text())
    assert list(raw) == sorted(raw)
    for row in raw.values():
        required = {"file", "sha256", "config", "command", "metrics"}
        assert required <= set(row) <= required | {"errors", "targets"}
        assert set(row.get("errors", {})) <= set(row["metrics"]) and set(row.get("targets", {})) <= set(row["metrics"])
        assert len(row["sha256"]) == 64


def test_concurrent_saves_keep_every_row(tmp_path):
    """Builders of different topics may run at once (``make weights`` in two shells): the
    registry is updated under a lock, so no save drops another's row. (flock locks belong to
    open file descriptions, so threads that each open the lock file exclude each other as
    processes do.)"""
    import threading

    reg = tmp_path / "registry.json"
    errors = []

    def save_rows(k: int) -> None:
        try:
            for i in range(25):
                weights.save(f"p{k}_{i}", {"w": torch.full((2,), float(i))}, {}, "test", {"m": i}, registry=reg)
        except Exception as e:  # pragma: no cover - reported below
            errors.append(e)

    threads = [threading.Thread(target=save_rows, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors
    assert sorted(weights.read_registry(reg)) == sorted(f"p{k}_{i}" for k in range(4) for i in range(25))


def test_every_registered_checkpoint_has_a_builder_and_every_builder_a_checkpoint():
    from mmcourse.weights.build import all_builders

    assert sorted(all_builders()) == weights.available()


def test_estimates_are_stored_with_their_standard_error_and_target(tmp_path):
    from mmcourse.protocol import Estimate

    reg = tmp_path / "r.json"
    weights.save("tiny", {"w": torch.zeros(1)}, {}, "python make_tiny.py",
                 {"acc": Estimate(0.9581, 0.0046, 2500), "seconds": 12.0}, registry=reg, targets={"acc": {"min": 0.95}})
    e = weights.entry("tiny", registry=reg)
    assert e.metrics == {"acc": 0.9581, "seconds": 12.0} and e.errors == {"acc": {"se": 0.0046, "n": 2500}}
    assert e.estimate("acc") == Estimate(0.9581, 0.0046, 2500)
    assert e.describe("acc") == "0.958 ± 0.005 (target ≥ 0.95)"
    with pytest.raises(KeyError, match="standard error"):
        e.estimate("seconds")
    with pytest.raises(ValueError, match="targets"):
        weights.save("tiny", {"w": torch.zeros(1)}, {}, "x", {"acc": 0.5}, registry=reg, targets={"acc": {"at_least": 1}})
