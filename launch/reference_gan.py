"""Times stylegan2-ada-pytorch's own networks and loss phases on CPU, beside medgan's `bench.py gan`.

  /tmp/torch-venv/bin/python launch/reference_gan.py --repo /tmp/stylegan2-ada-pytorch \\
      --resolution 64 --batch 32 --steps 16 --labels 14 --channel-base 4096 --channel-max 128 \\
      --mapping-layers 8 --r1-interval 16 [--repeats 3] [--threads 2] [--out result.json]

What it measures
----------------
The reference's (NVlabs/stylegan2-ada-pytorch) training step, built from its own
code: `training/networks.py`'s Generator (z_dim 512, c_dim --labels, w_dim 512,
1 image channel, mapping num_layers --mapping-layers, synthesis channel_base /
channel_max as given, num_fp16_res 0, conv_clamp None: float32 throughout) and
Discriminator (same widths, its default resnet architecture, mbstd group 4,
its 8-layer label mapping), `training/loss.py`'s StyleGAN2Loss (r1_gamma
--r1-gamma, pl_weight 0: no path-length term; style mixing probability
--style-mixing-prob, default 0 because medgan's step has no style mixing — pass
0.9 for the reference's own default; augment_pipe None: ADA off, medgan measured
ADA not to be the cost), and Adam(lr 0.0025, betas (0, 0.99), eps 1e-8) as
train.py configures it.

One step is what `training/training_loop.py` does per batch: the phases Gmain,
Greg, Dmain, Dreg with lazy regularisation (each network's Adam built with the
loop's mb_ratio = interval / (interval + 1) applied to lr and to both betas;
G_reg_interval 4 as the loop's default, --r1-interval for D), a phase running
when batch_idx % interval == 0 with gain = interval: zero_grad, requires_grad
on for that network, accumulate_gradients, requires_grad off, nan_to_num of the
gradients, opt.step. Greg is a no-op apart from that bookkeeping since pl_weight
is 0. Then the G_ema update (ema_kimg 10, no ramp-up). Latents are drawn per
step as the loop does; the real batch (uniform in [-1, 1]) and its multi-hot
labels (each label on with probability 0.3, as bench.py) are fixed, and the
fakes are conditioned on the real labels, as medgan's step does.

Timing: one warm-up step (batch_idx 0, which includes Dreg), then --repeats
runs of --steps steps rounded up to whole R1 periods (so each run holds its
share of Dreg, as in training); the median run gives seconds per step and
img/s (= batch / seconds per step). Also recorded: the mean seconds per step
spent in each phase (Dreg amortised over its period), parameter counts, the
widths per resolution, torch's version and thread count, the CPU model.

How this maps onto medgan
-------------------------
The matching medgan run (run it in the same session, on the same machine):

  .venv/bin/python launch/bench.py gan --models stylegan2 --resolution 64 --batch 32 \\
      --steps 16 --fmap-base 2048 --fmap-max 128 --memory ''

Widths: medgan's `layers.feature_maps` is min(fmap_max, fmap_base // (res // 2));
the reference's is channels_dict = {res: min(channel_base // res, channel_max)}.
For a power-of-two res >= 4, res // 2 is exactly res / 2, so
fmap_base // (res // 2) == (2 * fmap_base) // res at every resolution: the widths
agree exactly when channel_base = 2 * fmap_base (and channel_max = fmap_max).
So medgan's fmap_base 2048 / fmap_max 128 is channel_base 4096 / channel_max 128
(128 channels at 4-32 px, 64 at 64 px; D's cmap_dim = the 4 px width, 128, in
both), and medgan's defaults 8192 / 512 are channel_base 16384 / 512 (train.py's
fmaps 0.5, its paper256 config). The mapping networks match too (8 layers of 512,
the label embedded to 512 and concatenated with z in G; an 8-layer label mapping
in D).

What still differs, by design of the two codes: medgan's step is one jitted
D-then-G update on the same batch with the R1 term folded into the D update
every r1_interval steps (one D pass on the reals), where the reference runs
Dreg as its own phase (a second D pass on the reals, with its own Adam step);
bench.py runs stylegan2 with ADA on; medgan's Adam lr is 1e-3 (lr does not
change the cost). Both update the generator EMA every step.

CPU notes on the reference: its custom ops fall back by themselves — bias_act
and upfirdn2d take their pure-torch reference paths whenever the tensor is not
on CUDA, and conv2d_gradfix (enabled as the loop enables it) calls
torch.nn.functional.conv2d for CPU tensors before its torch-version check, so
nothing needs disabling; no plugin is compiled. `conv2d_gradfix.no_weight_gradients`
has no effect there (autograd prunes the weight gradients of the R1 gradient
pass by itself). `dnnlib/util.py` imports `requests` and `distutils`:
Python <= 3.11, or 3.12+ with setuptools installed.

Setup (outside the repository)
------------------------------
  python3 -m venv /tmp/torch-venv
  /tmp/torch-venv/bin/pip install torch numpy requests
      # PyTorch's CPU-only wheel index works as well; the default wheel runs on CPU too
  git clone <NVlabs/stylegan2-ada-pytorch on GitHub> /tmp/stylegan2-ada-pytorch

Without torch, or when --repo has no training/networks.py, it prints
`reference_gan: skipped (<reason>)` and exits 0 (medgan's own venv has no torch).
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import statistics
import subprocess
import sys
import time

DEFAULT_REPO = os.environ.get("STYLEGAN2_ADA_PYTORCH", "/tmp/stylegan2-ada-pytorch")
Z_DIM = W_DIM = 512
LEARNING_RATE = 0.0025  # train.py's paper256 / cifar lrate; betas (0, 0.99) in every config
BETAS = (0.0, 0.99)
G_REG_INTERVAL = 4  # training_loop.py's default (path-length phase; empty here, pl_weight = 0)
EMA_KIMG = 10.0  # training_loop.py's default, no ramp-up
LABEL_PROBABILITY = 0.3  # bench.py's multi-hot labels


def cpu_model() -> str:
    """The first "model name" of /proc/cpuinfo ("unknown" elsewhere)."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                key, _, value = line.partition(":")
                if key.strip() == "model name":
                    return value.strip()
    except OSError:
        pass
    return "unknown"


def widths(resolution: int, channel_base: int, channel_max: int) -> dict[int, int]:
    """The reference's channels_dict: {res: min(channel_base // res, channel_max)} for res = 4 .. resolution."""
    res, out = 4, {}
    while res <= resolution:
        out[res] = min(channel_base // res, channel_max)
        res *= 2
    return out


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repo", default=DEFAULT_REPO, help="stylegan2-ada-pytorch checkout (work tree)")
    p.add_argument("--resolution", type=int, default=64)
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--steps", type=int, default=16, help="timed steps per repeat, rounded up to whole R1 periods")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--labels", type=int, default=14, help="c_dim (CheXpert's 14 findings, as bench.py)")
    p.add_argument("--channel-base", type=int, default=4096, help="= 2 x medgan's fmap_base")
    p.add_argument("--channel-max", type=int, default=128, help="= medgan's fmap_max")
    p.add_argument("--mapping-layers", type=int, default=8)
    p.add_argument("--mbstd-group", type=int, default=4)
    p.add_argument("--r1-interval", type=int, default=16, help="D_reg_interval (lazy R1)")
    p.add_argument("--r1-gamma", type=float, default=1.0)
    p.add_argument("--style-mixing-prob", type=float, default=0.0,
                   help="0 as medgan (no style mixing); the reference's default is 0.9")
    p.add_argument("--threads", type=int, default=0, help="torch.set_num_threads; 0 = torch's default")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default="", help="write the result as JSON here")
    args = p.parse_args(argv)
    if args.steps < 1 or args.repeats < 1 or args.r1_interval < 1 or args.batch < 1:
        p.error("--steps, --repeats, --r1-interval and --batch must be >= 1")
    return args


def skip(reason: str) -> int:
    print(f"reference_gan: skipped ({reason})")
    return 0


def _commit(repo: str) -> str | None:
    try:
        out = subprocess.run(["git", "-C", repo, "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None


def build(args, torch):
    """(G, D, G_ema, loss, phases) as training_loop.py sets them up, on CPU in float32."""
    from torch_utils.ops import conv2d_gradfix  # the reference's packages, on sys.path
    from training.loss import StyleGAN2Loss
    from training.networks import Discriminator, Generator

    conv2d_gradfix.enabled = True  # as the loop does; a no-op for CPU tensors (plain F.conv2d)
    common = dict(c_dim=args.labels, img_resolution=args.resolution, img_channels=1)
    G = Generator(z_dim=Z_DIM, w_dim=W_DIM, **common,
                  mapping_kwargs=dict(num_layers=args.mapping_layers),
                  synthesis_kwargs=dict(channel_base=args.channel_base, channel_max=args.channel_max,
                                        num_fp16_res=0, conv_clamp=None))
    D = Discriminator(**common, channel_base=args.channel_base, channel_max=args.channel_max,
                      num_fp16_res=0, conv_clamp=None, epilogue_kwargs=dict(mbstd_group_size=args.mbstd_group))
    G = G.train().requires_grad_(False)
    D = D.train().requires_grad_(False)
    G_ema = copy.deepcopy(G).eval()
    device = torch.device("cpu")
    loss = StyleGAN2Loss(device=device, G_mapping=G.mapping, G_synthesis=G.synthesis, D=D, augment_pipe=None,
                         style_mixing_prob=args.style_mixing_prob, r1_gamma=args.r1_gamma, pl_weight=0)
    phases = []
    for name, module, reg_interval in (("G", G, G_REG_INTERVAL), ("D", D, args.r1_interval)):
        mb_ratio = reg_interval / (reg_interval + 1)  # training_loop.py's lazy-regularisation adjustment
        opt = torch.optim.Adam(module.parameters(), lr=LEARNING_RATE * mb_ratio,
                               betas=[beta ** mb_ratio for beta in BETAS], eps=1e-8)
        phases.append(dict(name=name + "main", module=module, opt=opt, interval=1))
        phases.append(dict(name=name + "reg", module=module, opt=opt, interval=reg_interval))
    return G, D, G_ema, loss, phases


def make_step(args, torch, G, G_ema, loss, phases, phase_seconds):
    """step(batch_idx): one iteration of training_loop.py's loop body (data fixed; latents drawn)."""
    gen = torch.Generator().manual_seed(args.seed + 1)
    real_img = torch.rand([args.batch, 1, args.resolution, args.resolution], generator=gen) * 2 - 1
    real_c = (torch.rand([args.batch, args.labels], generator=gen) < LABEL_PROBABILITY).to(torch.float32)
    ema_beta = 0.5 ** (args.batch / max(EMA_KIMG * 1000, 1e-8))

    def step(batch_idx: int) -> None:
        all_gen_z = torch.randn([len(phases) * args.batch, G.z_dim]).split(args.batch)
        for phase, gen_z in zip(phases, all_gen_z):
            if batch_idx % phase["interval"] != 0:
                continue
            start = time.perf_counter()
            phase["opt"].zero_grad(set_to_none=True)
            phase["module"].requires_grad_(True)
            loss.accumulate_gradients(phase=phase["name"], real_img=real_img, real_c=real_c, gen_z=gen_z,
                                      gen_c=real_c, sync=True, gain=phase["interval"])
            phase["module"].requires_grad_(False)
            for param in phase["module"].parameters():
                if param.grad is not None:
                    torch.nan_to_num(param.grad, nan=0, posinf=1e5, neginf=-1e5, out=param.grad)
            phase["opt"].step()
            phase_seconds[phase["name"]] += time.perf_counter() - start
        start = time.perf_counter()
        with torch.no_grad():
            for p_ema, p in zip(G_ema.parameters(), G.parameters()):
                p_ema.copy_(p.lerp(p_ema, ema_beta))
            for b_ema, b in zip(G_ema.buffers(), G.buffers()):
                b_ema.copy_(b)
        phase_seconds["Gema"] += time.perf_counter() - start

    return step


def main(argv=None) -> int:
    args = parse_args(argv)
    repo = os.path.abspath(args.repo)
    if not os.path.isfile(os.path.join(repo, "training", "networks.py")):
        return skip(f"{repo} has no training/networks.py: not a stylegan2-ada-pytorch checkout")
    try:
        import torch
    except ImportError as err:
        return skip(f"no torch in {sys.executable}: {err}")
    import numpy as np  # the reference needs it too

    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    np.random.seed(args.seed)
    sys.path.insert(0, repo)
    try:
        G, D, G_ema, loss, phases = build(args, torch)
    except ImportError as err:
        print(f"reference_gan: the reference's imports failed ({err}); install what it names, "
              "e.g. `pip install numpy requests` (and setuptools on Python 3.12+)", file=sys.stderr)
        return 2

    steps = -(-args.steps // args.r1_interval) * args.r1_interval  # whole R1 periods
    phase_seconds = {phase["name"]: 0.0 for phase in phases} | {"Gema": 0.0}
    step = make_step(args, torch, G, G_ema, loss, phases, phase_seconds)
    count = lambda module: sum(p.numel() for p in module.parameters())
    config = {"resolution": args.resolution, "batch": args.batch, "labels": args.labels,
              "channel_base": args.channel_base, "channel_max": args.channel_max,
              "mapping_layers": args.mapping_layers, "mbstd_group": args.mbstd_group,
              "r1_interval": args.r1_interval, "g_reg_interval": G_REG_INTERVAL, "r1_gamma": args.r1_gamma,
              "pl_weight": 0, "style_mixing_prob": args.style_mixing_prob, "augment": False,
              "dtype": "float32", "lr": LEARNING_RATE, "betas": list(BETAS),
              "widths": widths(args.resolution, args.channel_base, args.channel_max)}
    print(f"reference_gan: torch {torch.__version__}, {torch.get_num_threads()} threads, {cpu_model()}")
    print(f"  G {count(G) / 1e6:.2f} M params, D {count(D) / 1e6:.2f} M params, widths {config['widths']}")

    start = time.perf_counter()
    step(0)  # warm-up: batch_idx 0 runs every phase, Dreg included
    warmup_seconds = time.perf_counter() - start
    for name in phase_seconds:
        phase_seconds[name] = 0.0
    batch_idx, seconds = 1, []
    for _ in range(args.repeats):
        start = time.perf_counter()
        for _ in range(steps):
            step(batch_idx)
            batch_idx += 1
        seconds.append((time.perf_counter() - start) / steps)
    step_seconds = statistics.median(seconds)
    timed_steps = steps * args.repeats
    result = {
        "reference": "NVlabs/stylegan2-ada-pytorch", "repo": repo, "commit": _commit(repo),
        "torch": torch.__version__, "threads": torch.get_num_threads(), "cpu_model": cpu_model(),
        "cpus": os.cpu_count(), "python": sys.version.split()[0], **config,
        "g_params": count(G), "d_params": count(D),
        "steps": steps, "repeats": args.repeats, "warmup_seconds": warmup_seconds,
        "step_seconds": step_seconds, "step_seconds_all": seconds,
        "images_per_second": args.batch / step_seconds,
        "phase_seconds_per_step": {k: v / timed_steps for k, v in phase_seconds.items()},
    }
    phases_line = ", ".join(f"{k} {v * 1e3:.1f}" for k, v in result["phase_seconds_per_step"].items())
    print(f"  {args.resolution} px, batch {args.batch}, {steps} steps x {args.repeats} (R1 every "
          f"{args.r1_interval}): {result['images_per_second']:.2f} img/s, {step_seconds:.3f} s/step "
          f"(runs: {', '.join(f'{s:.3f}' for s in seconds)}), warm-up {warmup_seconds:.2f} s")
    print(f"  ms/step by phase (Dreg amortised): {phases_line}")
    if args.out:
        os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
        with open(args.out, "w") as f:
            json.dump(result, f, indent=2)
        print(f"  wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
