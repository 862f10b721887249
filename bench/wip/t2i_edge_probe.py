"""Probe (issue 13): python bench/wip/t2i_edge_probe.py NAME key=val ...

Keys: ae_edge_weight, ae_steps, ae_latent_noise, steps, batch_size, lr (denoiser), stage1=PATH (reuse an
autoencoder saved by an earlier run), only_ae=1. Writes /tmp/exp/NAME.pt and appends to /tmp/exp/edge_probe.jsonl.
"""
import json, sys, time
import torch
torch.set_num_threads(1)
from mmcourse.text2image import tasks
from mmcourse.text2image.judges import Judges
from mmcourse.text2image.recipe import autoencoder_quality, guidance_accuracy

name = sys.argv[1]
kv = dict(a.split("=") for a in sys.argv[2:])
minsnr = float(kv.pop("minsnr", 0)); clean = int(kv.pop("clean", 0)); stage1 = kv.pop("stage1", None); only_ae = int(kv.pop("only_ae", 0)); lr = float(kv.pop("lr", 2e-3))
kw = {k: (int(v) if v.isdigit() else float(v)) for k, v in kv.items()}
kw.setdefault("ae_latent_noise", 0.05)
J = Judges.load()
t0 = time.time()
if stage1:
    st = torch.load(stage1)
    s1 = (st, tasks.History() if hasattr(tasks, "History") else None, 0.0)
else:
    s1 = None
orig = tasks.train_denoiser
def td(*a, **k):
    k["lr"] = lr
    return orig(*a, **k)
tasks.train_denoiser = td
if clean:  # scenes drawn without pixel noise, for both stages and the autoencoder's evaluation
    from mmcourse.data.shapes import ShapesWorld
    tasks.world = lambda image_size=32: ShapesWorld(image_size=image_size, min_objects=1, max_objects=1,
                                                    colour_mode="named", noise=0.0)
if minsnr:  # Min-SNR-gamma loss weights (snr_gamma of train_text2image)
    kw["snr_gamma"] = minsnr
if only_ae:
    cfg = tasks.T2IConfig(); ae = cfg.autoencoder(); tasks.seed_everything(kw.get("seed", 0))
    tasks.train_autoencoder(ae, steps=kw.get("ae_steps", 2000), latent_noise=kw["ae_latent_noise"],
                            edge_weight=kw.get("ae_edge_weight", 0.0), progress=False)
    torch.save(ae.state_dict(), f"/tmp/exp/ae_{name}.pt")
    q = autoencoder_quality(ae, J, n=1000)
    with torch.no_grad():
        b = tasks.world().sample(1000, seed=7, split="test"); z = ae.encode(b.images); want = J.shape(b.images)
        q["noisy0.1"] = float((J.shape(ae.decode(z + 0.1 * torch.randn(z.shape, generator=torch.Generator().manual_seed(1)))) == want).float().mean())
    res = dict(name=name, kw=kw, seconds=round(time.time() - t0), **{k: round(v, 4) for k, v in q.items()})
else:
    model, info = tasks.train_text2image(**kw, stage1=s1, progress=False)
    torch.save(tasks.state_dict(model), f"/tmp/exp/{name}.pt")
    secs = round(time.time() - t0)
    q = autoencoder_quality(model.ae, J, n=1000)
    tab = guidance_accuracy(model, J, 300, (2.0, 4.0, 8.0))
    res = dict(name=name, kw=kw, lr=lr, minsnr=minsnr, clean=clean, stage1=stage1, seconds=secs, denoiser_seconds=round(info["seconds"]),
               final_loss=round(info["history"].final(100), 4), ae_kept=round(q["ae_shape_kept"], 4),
               table={w: {k: round(v, 3) for k, v in r.items()} for w, r in tab.items()})
print(json.dumps(res), flush=True)
open("/tmp/exp/edge_probe.jsonl", "a").write(json.dumps(res) + "\n")
