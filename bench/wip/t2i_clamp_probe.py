import sys, torch; torch.set_num_threads(1)
from mmcourse.text2image import tasks as T
from mmcourse.text2image.judges import Judges
from mmcourse.text2image.recipe import guidance_accuracy
import mmcourse.diffusion.samplers as S
name, aep, aew, mults, lat = sys.argv[1], sys.argv[2], int(sys.argv[3]), [int(v) for v in sys.argv[4].split(",")], int(sys.argv[5])
cfg=T.T2IConfig(); cfg.ae.update(latent_channels=lat, width=aew); cfg.unet.update(in_channels=lat, channel_mults=mults)
ae=cfg.autoencoder(); ae.load_state_dict(torch.load(aep)); ae.eval(); ae.fit_latent_scale(T.world().sample(4000, seed=0, split="train").images)
if "gs" in sys.argv: ae.latent_std.fill_(float((ae.latent_std**2).mean().sqrt()))
unet=cfg.denoiser(); unet.load_state_dict(torch.load(f"/tmp/exp/unet_{name}.pt")); unet.eval()
m=T.TextToImage(ae, unet, T.text_encoder(), cfg.schedule(), cfg); J=Judges.load()
orig=S.ddim_step
for k in [float(v) for v in sys.argv[6].split(",")]:
    def step(schedule, eps, t, prev_t, x, eta=0.0, generator=None, clip_sample=False, clip_sample_range=1.0, k=k):
        a_t = schedule.alphas_cumprod[t].float()
        x0 = ((x - (1-a_t).sqrt()*eps)/a_t.sqrt()).clamp(-k,k)
        eps2 = (x - a_t.sqrt()*x0)/(1-a_t).sqrt()
        return orig(schedule, eps2, t, prev_t, x, eta, generator, False)
    S.ddim_step = step if k > 0 else orig
    tab=guidance_accuracy(m, J, 150, tuple(float(w) for w in sys.argv[7].split(",")), 50, 0)
    for w in tab: print(k, w, {a: round(v,3) for a,v in tab[w].items()}, flush=True)
