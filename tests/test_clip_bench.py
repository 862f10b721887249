"""bench/clip.py: the duplicate counts it reports, its stored results and its tables."""

import json
from pathlib import Path

import pytest

from bench import clip as bench_clip

RESULTS = Path(__file__).resolve().parents[1] / "bench" / "results" / "clip_batch_sweep.json"


def test_duplicate_shares_follow_the_birthday_arithmetic():
    # 24 equally likely captions: a given other pair is a copy with probability ~1/24, so an
    # image meets (B - 1)/24 false negatives on average and at least one with 1 - (23/24)^(B-1).
    small, large = bench_clip.duplicate_shares(4, batches=150), bench_clip.duplicate_shares(128, batches=20)
    for s in (small, large):
        assert abs(s["share"] - 1 / 24) < 0.02
    assert abs(large["per_row"] - 127 / 24) < 0.8
    assert small["rows_hit"] == pytest.approx(1 - (23 / 24) ** 3, abs=0.06)
    assert large["rows_hit"] > 0.99


@pytest.mark.skipif(not RESULTS.exists(), reason="run `python -m bench.clip` first")
def test_stored_sweep_has_every_part_and_prints_as_tables():
    result = json.loads(RESULTS.read_text())
    assert [r["batch_size"] for r in result["negatives"]] == list(bench_clip.SWEEP_BATCHES)
    assert all(r["pairs"] == bench_clip.SWEEP_PAIRS for r in result["negatives"])
    assert [r["group"] for r in result["groups"]] == list(bench_clip.GROUPS)
    assert [r["batch_size"] for r in result["duplicates"]] == list(bench_clip.DUP_BATCHES)
    assert [r["drop"] for r in result["detail"]] == [0.0, 0.4]
    assert [(r["data"], r["seed"]) for r in result["breadth"]] == [
        (d, s) for d in ("named", "broad") for s in bench_clip.BREADTH_SEEDS]
    clip_runs = result["grad_clip"]  # notebook 04 draws these loss curves beside its live run
    assert [r["grad_clip"] for r in clip_runs] == [bench_clip.GRAD_CLIP, None]
    assert all(len(r["loss"]) == r["steps"] == bench_clip.LIVE_RUN["steps"] for r in clip_runs)
    # notebook 04, section 9a: the clipped run again with 3 negatives per pair, and its claim
    (few,) = result["few_negatives"]
    same = ("steps", "batch_size", "seed", "grad_clip")
    assert {k: few[k] for k in same} == {k: clip_runs[0][k] for k in same} and few["negatives"] == 3
    assert clip_runs[0]["i2t_attribute_r1"] / few["i2t_attribute_r1"] > 1.5
    text = bench_clip.table(result)
    assert text.count("\n|---") == 5 and "(a2)" in text and "mean of 3 seeds" in text and "(d) breadth" in text


def test_run_rejects_unknown_parts():
    with pytest.raises(ValueError, match="parts"):
        bench_clip.run(("everything",), store=False)
