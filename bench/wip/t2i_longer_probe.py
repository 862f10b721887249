"""WIP, not run by `make bench` or CI (issue 13): the shipped autoencoder, a fresh denoiser trained
with STEPS steps (and optional U-Net overrides), judged like the shipped checkpoint (300 seen
prompts, DDIM-50, w = 2, 4, 8).

``python bench/wip/t2i_longer_probe.py NAME STEPS [base=48] [batch_size=64]``; one line per run in
t2i_longer_probe.jsonl.
"""
import json, sys, time
import torch

from mmcourse.text2image.judges import Judges
from mmcourse.text2image.recipe import EVAL, RECIPE, guidance_accuracy
from mmcourse.text2image.tasks import T2IConfig, load_text2image, train_text2image

torch.set_num_threads(1)
name, steps = sys.argv[1], int(sys.argv[2])
kv = dict(a.split("=") for a in sys.argv[3:])
cfg = T2IConfig()
if "base" in kv:
    cfg.unet["base"] = int(kv.pop("base"))
recipe = {**RECIPE, "steps": steps}
if "batch_size" in kv:
    recipe["batch_size"] = int(kv.pop("batch_size"))
recipe.pop("ae_steps")
shipped = load_text2image()
t0 = time.perf_counter()
model, info = train_text2image(cfg=cfg, **recipe, stage1=(shipped.ae.state_dict(), None, 0.0))
sec = time.perf_counter() - t0
table = guidance_accuracy(model, Judges.load(), EVAL["n_prompts"], (2.0, 4.0, 8.0), EVAL["steps"], EVAL["seed"])
out = dict(name=name, steps=steps, unet=cfg.unet, batch_size=recipe["batch_size"], denoiser_seconds=round(info["seconds"], 1),
           seconds_with_encoding=round(sec, 1), final=round(info["history"].final(100), 4),
           params=sum(p.numel() for p in model.unet.parameters()),
           table={w: {k: round(v, 3) for k, v in d.items()} for w, d in table.items()},
           load=open("/proc/loadavg").read().split()[:3])
print(json.dumps(out), flush=True)
with open("bench/wip/t2i_longer_probe.jsonl", "a") as f:
    f.write(json.dumps(out) + "\n")
