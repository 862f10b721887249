"""AE experiment: python ae.py NAME key=val ... ; evaluates shape kept every N steps."""
import sys, json, time, math, torch
torch.set_num_threads(1)
from mmcourse.diffusion.autoencoder import AutoEncoder
from mmcourse.text2image.tasks import world, autoencoder_loss
from mmcourse.text2image.judges import Judges
name=sys.argv[1]; kv=dict(a.split("=") for a in sys.argv[2:])
steps=int(kv.pop("steps",4000)); bs=int(kv.pop("bs",32)); lr=float(kv.pop("lr",3e-3)); ow=float(kv.pop("ow",20)); clean=int(kv.pop("clean",0)); lnoise=float(kv.pop("lnoise",0))
akw={k:(int(v) if v.isdigit() else v) for k,v in kv.items()}
torch.manual_seed(0)
stem=int(akw.pop("stem",0)); arch=akw.pop("arch","")
ae=AutoEncoder(**akw)
if arch=="lin":
    from torch import nn
    from mmcourse.diffusion.autoencoder import _Res
    w=akw.get("width",64); L=akw.get("latent_channels",4)
    ae.encoder=nn.Sequential(nn.Conv2d(3,w,4,stride=4), _Res(w), _Res(w), nn.Conv2d(w,L,1))
    ae.decoder=nn.Sequential(nn.Conv2d(L,w,1), _Res(w), _Res(w), nn.Conv2d(w,48,1), nn.PixelShuffle(4))
if stem:
    from torch import nn
    from mmcourse.diffusion.autoencoder import _Res
    from mmcourse.diffusion.models import _groups
    w=akw.get("width",64); L=akw.get("latent_channels",4)
    ae.encoder=nn.Sequential(nn.Conv2d(3,stem,3,padding=1), nn.SiLU(), nn.Conv2d(stem,stem,3,padding=1), nn.SiLU(),
        nn.PixelUnshuffle(4), nn.Conv2d(16*stem,w,1), _Res(w), _Res(w), nn.GroupNorm(_groups(w),w), nn.SiLU(), nn.Conv2d(w,L,1))
    ae.decoder=nn.Sequential(nn.Conv2d(L,w,3,padding=1), _Res(w), _Res(w), nn.GroupNorm(_groups(w),w), nn.SiLU(),
        nn.Conv2d(w,16*stem,1), nn.PixelShuffle(4), nn.SiLU(), nn.Conv2d(stem,stem,3,padding=1), nn.SiLU(), nn.Conv2d(stem,3,3,padding=1))
opt=torch.optim.AdamW(ae.parameters(), lr=lr, weight_decay=0.0)
imgs=world().sample(20000, seed=0, split="train").images
from mmcourse.data.shapes import ShapesWorld
cl=ShapesWorld(image_size=32, min_objects=1, max_objects=1, colour_mode="named", noise=0.0).sample(20000, seed=0, split="train").images if clean else imgs
if clean: imgs=(cl+0.02*torch.randn(cl.shape, generator=torch.Generator().manual_seed(5))).clamp(0,1)
print("clean diff", float((cl-imgs).abs().mean()))
test=world().sample(1000, seed=7, split="test")
J=Judges.load(); want=J.shape(test.images)
g=torch.Generator().manual_seed(0); t0=time.time()
evals=[]
for s in range(1, steps+1):
    f = min(1, s/50) * 0.5*(1+math.cos(math.pi*s/steps))
    for pg in opt.param_groups: pg["lr"]=lr*f
    ix=torch.randint(0,len(imgs),(bs,),generator=g); x=imgs[ix]; y=cl[ix]
    z=ae.encode_raw(x)
    if lnoise: z=z+lnoise*z.detach().std(dim=(0,2,3),keepdim=True)*torch.randn(z.shape,generator=g)
    recon=ae.decode_raw(z); bgc=y.flatten(2).median(dim=-1).values[:,:,None,None]
    on=((y-bgc).norm(dim=1,keepdim=True)>0.2).float(); err=(recon-y).abs()
    loss=((err+err**2)*(1+ow*on)).mean(); opt.zero_grad(); loss.backward()
    torch.nn.utils.clip_grad_norm_(ae.parameters(),1.0); opt.step()
    if s % (steps//4) == 0:
        with torch.no_grad(): r=ae(test.images).clamp(0,1)
        kept=float((J.shape(r)==want).float().mean()); mse=float(((r-test.images)**2).mean())
        with torch.no_grad():
            ae.fit_latent_scale(imgs[:4000]); zt=ae.encode(test.images)
            nk=[round(float((J.shape(ae.decode(zt+s_*torch.randn(zt.shape,generator=torch.Generator().manual_seed(1))))==want).float().mean()),3) for s_ in (0.1,0.3)]
        print("noisy kept", nk, flush=True)
        evals.append((s, round(kept,3), round(mse,5), round(time.time()-t0)))
        print(name, s, round(float(loss),4), evals[-1], flush=True)
torch.save(ae.state_dict(), f"/tmp/exp/ae_{name}.pt")
json.dump(dict(name=name, args=sys.argv[2:], evals=evals, params=sum(p.numel() for p in ae.parameters())), open("/tmp/exp/ae_results.jsonl","a")); open("/tmp/exp/ae_results.jsonl","a").write("\n")
