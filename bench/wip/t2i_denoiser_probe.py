"""Denoiser experiment: python den.py NAME ae=PATH|shipped steps= bs= lr= base= mults=1,1 ema= ; evaluates at w in (2,4,8)."""
import sys, json, time, torch
torch.set_num_threads(1)
from mmcourse.text2image import tasks as T
from mmcourse.text2image.judges import Judges
from mmcourse.text2image.recipe import guidance_accuracy
name=sys.argv[1]; kv=dict(a.split("=") for a in sys.argv[2:])
aep=kv.pop("ae","shipped"); steps=int(kv.pop("steps",2000)); bs=int(kv.pop("bs",64)); lr=float(kv.pop("lr",2e-3))
ema=float(kv.pop("ema",0.995)); minsnr=float(kv.pop("minsnr",0)); npr=int(kv.pop("n",150)); lat=int(kv.pop("lat",4))
cfg=T.T2IConfig(); cfg.ae["latent_channels"]=lat; cfg.unet["in_channels"]=lat
for k in ("base","num_heads"):
    if k in kv: cfg.unet[k]=int(kv.pop(k))
if "mults" in kv: cfg.unet["channel_mults"]=[int(v) for v in kv.pop("mults").split(",")]
ae=cfg.autoencoder()
if aep=="shipped":
    m0=T.load_text2image(); ae=m0.ae
else:
    from torch import nn
    from mmcourse.diffusion.autoencoder import _Res
    w=int(kv.pop("aew",64)); L=lat; ae=T.AutoEncoder(latent_channels=L, width=w)
    ae.encoder=nn.Sequential(nn.Conv2d(3,w,4,stride=4), _Res(w), _Res(w), nn.Conv2d(w,L,1))
    ae.decoder=nn.Sequential(nn.Conv2d(L,w,1), _Res(w), _Res(w), nn.Conv2d(w,48,1), nn.PixelShuffle(4))
    ae.load_state_dict(torch.load(aep)); ae.eval()
    imgs=T.world().sample(4000, seed=0, split="train").images; ae.fit_latent_scale(imgs)
if int(kv.pop("gscale",0)):
    ae.latent_std.fill_(float((ae.latent_std**2).mean().sqrt())); print("global scale", ae.latent_std[0])
enc=T.text_encoder(); data=T.encode_dataset(ae, enc, 20000, seed=1)
torch.manual_seed(0); unet=cfg.denoiser(); sch=cfg.schedule()
if minsnr:
    import torch.nn.functional as F
    from mmcourse.diffusion.guidance import condition_dropout
    def loss(model, schedule, x0, text, null, p_uncond, generator):
        text = condition_dropout(text, null, p_uncond, generator)
        B = x0.shape[0]
        t = torch.randint(0, schedule.num_train_timesteps, (B,), generator=generator)
        noise = torch.randn(x0.shape, generator=generator)
        ab = schedule.alphas_cumprod.float()[t]; snr = ab/(1-ab)
        wgt = (snr.clamp(max=minsnr)/snr)
        err = ((model(schedule.add_noise(x0, noise, t), t, text) - noise)**2).mean(dim=(1,2,3))
        return (wgt*err).mean()
    T.text_eps_loss = loss
t0=time.time()
unet,hist=T.train_denoiser(unet, sch, data, steps, batch_size=bs, lr=lr, ema_decay=ema or None, progress=False)
sec=time.time()-t0
model=T.TextToImage(ae, unet, enc, sch, cfg); J=Judges.load()
tab=guidance_accuracy(model, J, npr, (2.0,4.0,8.0), 50, 0)
res=dict(name=name, args=sys.argv[2:], seconds=round(sec), final=hist.final(100), params=sum(p.numel() for p in unet.parameters()),
         table={w:{k:round(v,3) for k,v in d.items()} for w,d in tab.items()})
print(json.dumps(res), flush=True)
open("/tmp/exp/den_results.jsonl","a").write(json.dumps(res)+"\n")
torch.save(unet.state_dict(), f"/tmp/exp/unet_{name}.pt")
