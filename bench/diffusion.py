"""Diffusion measurements behind notebook 02: ``python -m bench diffusion``.

Three tables, each stored in bench/results/ for the notebook to show:

- ``diffusion_syllabus.json``: the study notes' 1-D example and its fixes (raw vs scaled t,
  T = 100 vs 1000), W1 of 2,000 samples against fresh data, over three seeds.
- ``diffusion_2d.json``: the two-moons recipe (train time, sliced Wasserstein distance against
  the data-vs-data baseline, three seeds) and the redraw time of both widget callbacks.
- ``diffusion_2d_steps.json``: the same recipe trained for fewer steps at a higher learning rate,
  as notebook 02 does live, against the full 1,500 steps: quality per seed (no times).
- ``diffusion_samplers.json``: the shipped digits U-Net sampled with DDPM-1000, DDPM-200,
  DDIM-50, DDIM-20 and DDIM-10, 500 samples per row: wall time and classifier-based quality.

Everything runs on one thread (the course machines share their two cores; small models gain
nothing from a second thread and can lose a lot to contention).
"""

from __future__ import annotations

import json
import statistics
import time
from datetime import date
from pathlib import Path

import torch

RESULTS = Path(__file__).parent / "results"
SAMPLERS = [("ddpm", 1000), ("ddpm", 200), ("ddim", 50), ("ddim", 20), ("ddim", 10)]


def _store(name: str, payload: dict) -> None:
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"{name}.json").write_text(json.dumps(payload, indent=2) + "\n")


# ------------------------------------------------------------------------------ 1-D notes example


def _generate(model, schedule, n: int, seed: int) -> torch.Tensor:
    from mmcourse.diffusion import sample

    return sample(model, schedule, (n, 1), generator=torch.Generator().manual_seed(seed))


def syllabus(seeds: tuple[int, ...] = (0, 1, 2)) -> dict:
    from mmcourse.diffusion import NoiseSchedule, SimpleDenoiseNet
    from mmcourse.diffusion.syllabus import ScaledTime, syllabus_data, train_syllabus_style
    from mmcourse.evaluate import wasserstein_1d

    data = syllabus_data(1000, seed=0)
    reference = syllabus_data(2000, seed=1)
    baseline = wasserstein_1d(syllabus_data(2000, seed=2), reference)
    variants = {"raw t, T=100 (the notes)": (100, False), "t/T, T=100": (100, True),
                "raw t, T=1000": (1000, False), "t/T, T=1000": (1000, True)}
    rows = []
    for name, (T, scaled) in variants.items():
        w1s, printed_spread = [], []
        for seed in seeds:
            torch.manual_seed(seed)
            net = SimpleDenoiseNet()
            model = ScaledTime(net, T) if scaled else net
            sched = NoiseSchedule.make(T, "linear", 1e-4, 0.02)
            hist = train_syllabus_style(model, data, timesteps=T, epochs=5, seed=seed, verbose=False, progress=False)
            w1s.append(wasserstein_1d(_generate(model, sched, 2000, seed), reference))
            printed_spread.append(max(hist.printed()) - min(hist.printed()))
        rows.append({"variant": name, "T": T, "scaled_t": scaled, "w1_per_seed": [round(w, 4) for w in w1s],
                     "w1_median": round(statistics.median(w1s), 4),
                     "printed_loss_range_median": round(statistics.median(printed_spread), 4)})

    gaps = {}
    for T in (100, 1000):
        s = NoiseSchedule.make(T)
        g = torch.Generator().manual_seed(7)
        x_T = s.add_noise(syllabus_data(20_000, seed=7), torch.randn(20_000, 1, generator=g), T - 1)
        gaps[T] = wasserstein_1d(x_T, torch.randn(20_000, 1, generator=g))
    med = {r["variant"]: r["w1_median"] for r in rows}
    summary = (f"1-D notes example, median W1 over {len(seeds)} seeds (data-vs-data {baseline:.3f}): "
               + ", ".join(f"{k} {v:.3f}" for k, v in med.items())
               + f"; start gap W1(x_T, N(0,1)) T=100 {gaps[100]:.3f}, T=1000 {gaps[1000]:.3f}")
    print("| variant | W1 per seed | median W1 | printed-loss range (median) |\n|---|---|---:|---:|")
    for r in rows:
        print(f"| {r['variant']} | {r['w1_per_seed']} | {r['w1_median']:.3f} | {r['printed_loss_range_median']:.3f} |")
    print(f"\ndata-vs-data W1 {baseline:.4f}; start gap T=100 {gaps[100]:.3f}, T=1000 {gaps[1000]:.4f}\n")
    payload = {"measured": date.today().isoformat(), "baseline_w1": round(baseline, 4), "rows": rows,
               "start_gap_w1": {str(k): round(v, 4) for k, v in gaps.items()}, "summary": summary}
    _store("diffusion_syllabus", payload)
    return payload


# ------------------------------------------------------------------------------ 2-D and widgets


def _callback_ms(fn, args_list) -> tuple[float, float]:
    fn(*args_list[0])  # warm up
    times = []
    for args in args_list:
        t0 = time.perf_counter()
        fn(*args)
        times.append((time.perf_counter() - t0) * 1000)
    return statistics.median(times), max(times)


def two_d(seeds: tuple[int, ...] = (0, 1, 2)) -> dict:
    from mmcourse.diffusion import sample, timesteps
    from mmcourse.diffusion.data2d import two_moons
    from mmcourse.diffusion.train import train_2d
    from mmcourse.diffusion.widgets import SCHEDULES, ForwardView, TrajectoryView
    from mmcourse.evaluate import sliced_wasserstein

    real_a, real_b = two_moons(2000, seed=1), two_moons(2000, seed=2)
    base = sliced_wasserstein(real_b, real_a)
    rows = []
    for seed in seeds:
        t0 = time.perf_counter()
        model, sched, hist, _ = train_2d("moons", steps=1500, seed=seed, progress=False)
        train_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        x, traj = sample(model, sched, (2000, 2), generator=torch.Generator().manual_seed(5), return_trajectory=True)
        sample_s = time.perf_counter() - t0
        swd = sliced_wasserstein(x, real_a)
        rows.append({"seed": seed, "train_seconds": round(train_s, 1), "sample_seconds": round(sample_s, 2),
                     "swd": round(swd, 4), "ratio": round(swd / base, 3)})

    fwd = ForwardView()
    names = list(SCHEDULES)
    fwd_med, fwd_max = _callback_ms(fwd, [(t, names[t % 3]) for t in range(0, 1000, 50)])
    traj_view = TrajectoryView(traj, timesteps(sched, 100), real_a)
    tr_med, tr_max = _callback_ms(traj_view, [(k,) for k in range(0, 101, 5)])

    worst = max(r["ratio"] for r in rows)
    summary = (f"two moons: SWD/baseline {', '.join(str(r['ratio']) for r in rows)} over seeds {list(seeds)} "
               f"(target <= 2; baseline {base:.4f}); train {', '.join(str(r['train_seconds']) for r in rows)} s "
               f"(target <= 20 s); widget redraw median/max: forward {fwd_med:.0f}/{fwd_max:.0f} ms, "
               f"trajectory {tr_med:.0f}/{tr_max:.0f} ms (target < 100 ms)")
    print("| seed | train (s) | sample 2,000 (s) | SWD | SWD / baseline |\n|---:|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r['seed']} | {r['train_seconds']} | {r['sample_seconds']} | {r['swd']:.4f} | {r['ratio']:.2f} |")
    print(f"\nbaseline SWD {base:.4f}; widget redraw median/max (ms): forward {fwd_med:.0f}/{fwd_max:.0f}, "
          f"trajectory {tr_med:.0f}/{tr_max:.0f}\n")
    payload = {"measured": date.today().isoformat(), "baseline_swd": round(base, 4), "rows": rows,
               "targets": {"swd_within_2x": worst <= 2, "train_within_20s": max(r["train_seconds"] for r in rows) <= 20,
                           "widgets_under_100ms": max(fwd_max, tr_max) < 100},
               "widget_ms": {"forward_median": round(fwd_med, 1), "forward_max": round(fwd_max, 1),
                             "trajectory_median": round(tr_med, 1), "trajectory_max": round(tr_max, 1)},
               "summary": summary}
    _store("diffusion_2d", payload)
    return payload


# Notebook 02's live run, shorter than train_2d's default (1,500 steps at lr 3e-3).
MOONS_LIVE = dict(steps=700, lr=8e-3)
MOONS_RECIPES = [dict(steps=1500, lr=3e-3), dict(steps=700, lr=3e-3), MOONS_LIVE]


def two_d_steps(seeds: tuple[int, ...] = (0, 1, 2)) -> dict:
    """Two moons against training length: SWD / baseline and mean distance to the data, per seed.

    The notebook's protocol: 2,000 samples (beta tilde, generator seed 5) against ``two_moons(2000,
    seed=1)``, baseline SWD from ``two_moons(2000, seed=2)``, distance to ``two_moons(5000, seed=3)``.
    """
    from mmcourse.diffusion import sample
    from mmcourse.diffusion.data2d import distance_to_data, two_moons
    from mmcourse.diffusion.train import train_2d
    from mmcourse.evaluate import sliced_wasserstein

    real_a, real_b, ref = two_moons(2000, seed=1), two_moons(2000, seed=2), two_moons(5000, seed=3)
    base = sliced_wasserstein(real_b, real_a)
    rows = []
    for recipe in MOONS_RECIPES:
        ratios, distances = [], []
        for seed in seeds:
            model, sched, _, _ = train_2d("moons", steps=recipe["steps"], lr=recipe["lr"], seed=seed, progress=False)
            x = sample(model, sched, (2000, 2), generator=torch.Generator().manual_seed(5))
            ratios.append(round(sliced_wasserstein(x, real_a) / base, 3))
            distances.append(round(distance_to_data(x, ref), 4))
        rows.append({**recipe, "live": recipe == MOONS_LIVE, "ratio_per_seed": ratios, "distance_per_seed": distances,
                     "ratio_max": max(ratios)})
        print(f"{recipe['steps']} steps, lr {recipe['lr']:g}: SWD/baseline {ratios}, distance to data {distances}", flush=True)
    real_distance = distance_to_data(real_b, ref)
    summary = (f"two moons against training length (seeds {list(seeds)}, target SWD/baseline <= 2): "
               + "; ".join(f"{r['steps']} steps at lr {r['lr']:g}{' (live)' if r['live'] else ''}: SWD/baseline "
                           f"{', '.join(f'{v:.2f}' for v in r['ratio_per_seed'])}, distance to data "
                           f"{', '.join(f'{v:.4f}' for v in r['distance_per_seed'])}" for r in rows)
               + f"; real points {real_distance:.4f}")
    payload = {"measured": date.today().isoformat(), "baseline_swd": round(base, 4),
               "real_distance": round(real_distance, 4), "rows": rows, "summary": summary}
    _store("diffusion_2d_steps", payload)
    return payload


# ------------------------------------------------------------------------------ digits samplers


def samplers(n: int = 500) -> dict:
    from mmcourse.diffusion import sample
    from mmcourse.diffusion.train import load_digits_unet
    from mmcourse.evaluate import load_digits_classifier, score_digits

    unet, sched = load_digits_unet()
    clf = load_digits_classifier()
    sample(unet, sched, (n, 1, 8, 8), 5, method="ddim")  # warm up
    rows, real = [], None
    for method, steps in SAMPLERS:
        t0 = time.perf_counter()
        x = sample(unet, sched, (n, 1, 8, 8), steps, method=method, generator=torch.Generator().manual_seed(0))
        seconds = time.perf_counter() - t0
        s = score_digits(x, clf)
        real = s
        rows.append({"method": method, "steps": steps, "seconds": round(seconds, 2),
                     "confidence": round(s["confidence"].value, 4),
                     "confidence_ratio": round(s["confidence_ratio"].value, 4),
                     "min_class_share": round(s["min_class_share"].value, 4), "frechet": round(s["frechet"].value, 2)})
        print(f"{method}-{steps}: {seconds:.1f} s", flush=True)
    by = {(r["method"], r["steps"]): r for r in rows}
    ddpm, ddim = by[("ddpm", 1000)], by[("ddim", 50)]
    keep = ddim["confidence"] / ddpm["confidence"]
    speedup = ddpm["seconds"] / ddim["seconds"]
    targets = {
        "all_confidence_ok": all(r["confidence_ratio"] >= 0.95 for r in rows),
        "all_classes_ok": all(r["min_class_share"] >= 0.05 for r in rows),
        "ddim50_keeps_95pct": keep >= 0.95,
        "ddim50_15x_faster": speedup >= 15,
    }
    summary = (f"digits, {n} samples per row: " + ", ".join(
        f"{r['method'].upper()}-{r['steps']} {r['seconds']:.0f} s conf/real {r['confidence_ratio']:.3f} "
        f"min class {r['min_class_share']:.3f} Frechet {r['frechet']:.1f}" for r in rows)
        + f"; real train-vs-test Frechet {real['frechet_real_train_vs_test']:.1f}; DDIM-50 keeps {keep:.1%} of "
          f"DDPM-1000's confidence at {speedup:.0f}x less time")
    print("\n| sampler | steps | seconds | confidence / real | min class share | Fréchet |\n|---|---:|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r['method'].upper()} | {r['steps']} | {r['seconds']:.1f} | {r['confidence_ratio']:.3f} | "
              f"{r['min_class_share']:.3f} | {r['frechet']:.1f} |")
    print(f"\nreal test confidence {real['real_confidence']:.3f}; Fréchet real train vs real test "
          f"{real['frechet_real_train_vs_test']:.1f}; DDIM-50 / DDPM-1000 confidence {keep:.3f}, speed-up {speedup:.1f}x\n")
    payload = {"measured": date.today().isoformat(), "threads": torch.get_num_threads(), "samples_per_row": n,
               "real_confidence": round(real["real_confidence"], 4),
               "frechet_real_train_vs_test": round(real["frechet_real_train_vs_test"], 2),
               "rows": rows, "ddim50_vs_ddpm1000": {"confidence_kept": round(keep, 4), "speedup": round(speedup, 1)},
               "targets": targets, "summary": summary}
    _store("diffusion_samplers", payload)
    return payload


def run(parts: tuple[str, ...] = ("syllabus", "two_d", "two_d_steps", "samplers")) -> dict:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return {p: globals()[p]() for p in parts}
    finally:
        torch.set_num_threads(threads)


if __name__ == "__main__":
    import sys

    run(tuple(sys.argv[1:]) or ("syllabus", "two_d", "two_d_steps", "samplers"))
