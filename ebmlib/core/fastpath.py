"""The fast path of A.7's Langevin sampler: the same update as :class:`~ebmlib.core.samplers.PaperLangevin`, with
the speed-ups measured in ``python -m ebmlib bench langevin`` / ``bench resnet`` (tables in benchmarks/README.md).

:class:`FastPaperLangevin` is a drop-in sampler (``Trainer(model, data, config, sampler=fast_sampler(config,
device))``); nothing here changes :class:`PaperLangevin`, whose CPU float32 numbers the shipped checkpoints rest on.
What it adds, each an option:

* ``gradient="manual"``: for :class:`~ebmlib.core.nets.MNISTConvEnergy`, E(x) and grad_x E(x) written out layer
  by layer (:class:`MNISTInputGradient`): no autograd graph is built per step, the spectrally normalised weights
  (and their bf16 copies) are computed once per chain, the input gradient of the 1-channel input convolution is a
  1x1 convolution and a fold (oneDNN's own kernel for it is slow on the CPU), the fully connected layer reads the
  channels_last activations without a copy (its weight's columns are permuted once per chain instead).
  ``"auto"`` picks it where it applies, else ``"autograd"``
  (``torch.autograd.grad`` on the module, as PaperLangevin does).
* ``autocast_dtype=torch.bfloat16``: the network in bf16 (the chain state and the update stay float32).
* ``compile=True``: ``torch.compile`` of one function returning (E, grad_x E), through ``torch.func`` on a copy of
  the network without parametrizations that takes the chain's weights as inputs (so a new chain, with new
  spectrally normalised weights, reuses the compiled code).
* ``device_noise=True``: on a GPU, the noise is drawn by a generator on the GPU, seeded by one draw from the
  caller's (CPU) generator per chain, so a resumed run still replays exactly, and no noise is copied from the host
  per step. On the CPU nothing changes: the caller's generator draws the noise, as in PaperLangevin.
* ``check_every``: the finiteness check of :class:`~ebmlib.core.samplers.Sampler`; by default read once at the end
  of the chain on a GPU (no host synchronisation inside the loop), at every step on the CPU.

Labels of a conditional network are checked once per chain and the chain runs inside
:func:`~ebmlib.core.nets.labels_checked`, so no per-step range check reads from the device either.

:func:`keep_freed_memory` is the one CPU setting outside PyTorch that the benchmark found to matter: glibc hands
large freed blocks back to the kernel, so every Langevin step page-faults its activations in again.
"""
from __future__ import annotations

import contextlib
import copy
import ctypes
import ctypes.util
import math
from typing import Callable, Optional

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.utils import parametrize

from ebmlib.core.nets import MNISTConvEnergy, labels_checked
from ebmlib.core.samplers import PaperLangevin, draw_random, frozen

__all__ = ["FastPaperLangevin", "fast_sampler", "sampler_for", "FAST_ENV", "FAST_DEFAULTS", "MNISTInputGradient",
           "plain_twin", "chain_weights", "functional_energy_and_grad", "keep_freed_memory", "GRADIENTS"]

GRADIENTS = ("auto", "autograd", "manual")

#: what :func:`fast_sampler` turns on per device type (the measurements behind each choice: benchmarks/README.md).
#: CPU: the hand-written MNIST gradient; bf16 only where the caller asks (it changes the numbers, within the
#: tolerances the tests state). CUDA: bf16 autocast (tensor cores) and noise drawn on the device; compile stays an
#: explicit choice (its first call compiles for tens of seconds, and on a GPU no measurement was made here yet).
FAST_DEFAULTS = {
    "cpu": dict(gradient="auto", autocast_dtype=None, compile=False, device_noise=True),
    "cuda": dict(gradient="auto", autocast_dtype=torch.bfloat16, compile=False, device_noise=True),
}

_aten = torch.ops.aten


# -------------------------------------------------------------------------------------------------- CPU memory
def keep_freed_memory() -> bool:
    """Tell glibc's allocator to keep freed memory for reuse (process-wide; returns whether it applied).

    By default glibc returns a freed block of more than ~32 MiB (and the free top of its heap) to the kernel; a
    Langevin step allocates and frees its activations again at every step, so each step page-faults them back in
    (the kernel zeroes every page): in benchmarks/README.md's runs the MNIST CNN's reference loop ran 1.8x-1.9x
    faster with it than without, on the same machine. With the mmap threshold
    and the trim threshold raised, freed blocks are reused and the process keeps its peak memory instead. Only
    glibc (Linux) has ``mallopt``; elsewhere this does nothing and returns False.
    """
    name = ctypes.util.find_library("c")
    if name is None:
        return False
    try:
        libc = ctypes.CDLL(name)
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3                 # glibc's <malloc.h>
    ok_mmap = mallopt(M_MMAP_THRESHOLD, 1 << 30)                # larger blocks than this use mmap
    ok_trim = mallopt(M_TRIM_THRESHOLD, (1 << 31) - 1)         # free heap top kept up to this size
    return bool(ok_mmap and ok_trim)


# ------------------------------------------------------------------------------- the MNIST CNN, written out
def _act_pair(act: nn.Module) -> Optional[tuple[Callable, Callable]]:
    """(forward, backward(grad, z)) of an activation module, or None if it has no written-out form here."""
    if isinstance(act, nn.SiLU):
        return F.silu, _aten.silu_backward
    if isinstance(act, nn.LeakyReLU):
        s = act.negative_slope
        return (lambda z: F.leaky_relu(z, s)), (lambda g, z: _aten.leaky_relu_backward(g, z, s, False))
    if isinstance(act, nn.ReLU):
        return F.relu, (lambda g, z: torch.where(z > 0, g, torch.zeros_like(g)))
    if isinstance(act, nn.Softplus):
        b, t = act.beta, act.threshold
        return (lambda z: F.softplus(z, b, t)), (lambda g, z: _aten.softplus_backward(g, z, b, t))
    return None


class MNISTInputGradient:
    """E(x) and grad_x E(x) of one :class:`~ebmlib.core.nets.MNISTConvEnergy`, written out, for one chain.

    Built once per chain: it reads the network's (spectrally normalised, cached) weights once, casts them to
    ``dtype`` once (bf16: where the CPU has native bf16 dot products), and permutes the fully connected layer's
    columns to the channels_last order of its input. Per call: four convolutions and their input gradients
    (``aten.convolution_backward`` with only the input's gradient asked for), the activations' backward from the
    saved pre-activations, no autograd graph. The input convolution has one channel: its input gradient is a 1x1
    convolution to 9 channels and a fold (oneDNN's own input gradient of a 1-channel convolution is 5x slower).
    Agreement with autograd on the module: equal to float32 rounding (the tests: 1e-5 relative).
    """

    def __init__(self, model: MNISTConvEnergy, dtype: torch.dtype = torch.float32):
        if not self.supports(model):
            raise TypeError(f"MNISTInputGradient needs an MNISTConvEnergy with activations of "
                            f"{{SiLU, LeakyReLU, ReLU, Softplus}}, got {type(model).__name__}")
        self.dtype = dtype
        self.model = model
        cast = lambda t: t.detach().to(dtype)   # noqa: E731 - one place for the per-chain casts
        self.convs = []
        for i, conv in enumerate(model.convs):
            w = conv.weight.detach()              # spectral norm computed here, once (cached under frozen())
            self.convs.append(dict(
                w=cast(w).contiguous(memory_format=torch.channels_last), b=cast(conv.bias),
                # the 1-channel conv's input gradient as a 1x1 convolution to k*k channels, then fold (col2im)
                w_cols=(cast(w).reshape(w.shape[0], -1).t().reshape(-1, w.shape[0], 1, 1)
                        .contiguous(memory_format=torch.channels_last) if w.shape[1] == 1 else None),
                k=w.shape[-1], stride=conv.stride[0], pad=conv.padding[0], act=_act_pair(model.acts[i]),
                cond=model.cond[i] if model.cond is not None else None))
        c_last, out = model.convs[-1].out_channels, model.fc.out_features
        side = int(math.isqrt(model.fc.in_features // c_last))
        self.side = side
        # fc's columns in (h, w, c) order: a channels_last activation flattens to them without a copy
        self.fc_w = (cast(model.fc.weight).reshape(out, c_last, side, side).permute(0, 2, 3, 1)
                     .reshape(out, -1).contiguous())
        self.fc_b = cast(model.fc.bias)
        self.fc_act = _act_pair(model.fc_act)
        self.head_w, self.head_b = cast(model.head.weight), cast(model.head.bias)

    @staticmethod
    def supports(model) -> bool:
        return (isinstance(model, MNISTConvEnergy) and type(model).forward is MNISTConvEnergy.forward
                and all(_act_pair(a) is not None for a in list(model.acts) + [model.fc_act]))

    # -- the input gradient of the 1-channel input convolution -------------------------------------------------
    @staticmethod
    def _conv1ch_input_grad(g: Tensor, c: dict, shape) -> Tensor:
        """dE/dx of a stride-1 convolution from one channel: each output pixel's k*k contributions (a 1x1
        convolution w -> k*k channels) summed back onto the pixels they came from (fold, i.e. col2im)."""
        n, _, h, w = shape
        k, p = c["k"], c["pad"]
        cols = F.conv2d(g, c["w_cols"])                                 # (n, k*k, ho, wo)
        return F.fold(cols.reshape(n, k * k, -1), (h, w), k, padding=p).reshape(n, 1, h, w)

    # -- E and grad_x E --------------------------------------------------------------------------------------
    def _forward(self, x: Tensor, y: Optional[Tensor], keep: bool):
        h = x.to(self.dtype)
        saved = []
        for c in self.convs:
            z = F.conv2d(h, c["w"], c["b"], c["stride"], c["pad"])
            gain = None
            if c["cond"] is not None:
                gain = c["cond"].gain(y).to(self.dtype)[:, :, None, None]
                z = z * gain + c["cond"].bias(y).to(self.dtype)[:, :, None, None]
            if keep:
                saved.append((h, z, gain))
            h = c["act"][0](z)
        n = h.shape[0]
        flat = h.permute(0, 2, 3, 1).reshape(n, -1)      # a view for channels_last h
        zf = F.linear(flat, self.fc_w, self.fc_b)
        hf = self.fc_act[0](zf)
        e = F.linear(hf, self.head_w, self.head_b).squeeze(-1)
        return e, (saved, h.shape, zf)

    def energy(self, x: Tensor, y: Optional[Tensor] = None) -> Tensor:
        with torch.no_grad():
            return self._forward(x, y, keep=False)[0]

    def energy_and_grad(self, x: Tensor, y: Optional[Tensor] = None) -> tuple[Tensor, Tensor]:
        """(E(x) as float32 (N,), grad_x sum E as x's dtype and shape)."""
        with torch.no_grad():
            e, (saved, shape4, zf) = self._forward(x, y, keep=True)
            n = x.shape[0]
            g = self.fc_act[1](self.head_w.expand(n, -1), zf)           # d sum(E) / d zf
            g = (g @ self.fc_w).reshape(n, shape4[2], shape4[3], shape4[1]).permute(0, 3, 1, 2)
            for i in reversed(range(len(self.convs))):
                c = self.convs[i]
                h_in, z, gain = saved[i]
                g = c["act"][1](g, z)
                if gain is not None:
                    g = g * gain
                if c["w_cols"] is not None and c["stride"] == 1:
                    g = self._conv1ch_input_grad(g, c, h_in.shape)
                else:
                    g = _aten.convolution_backward(g, h_in, c["w"], None, [c["stride"]] * 2, [c["pad"]] * 2, [1, 1],
                                                   False, [0, 0], 1, [True, False, False])[0]
        return e.float(), g.to(x.dtype)


# ------------------------------------------------------------------------------- any network, through torch.func
def plain_twin(model: nn.Module) -> nn.Module:
    """A deep copy of ``model`` with every parametrization (spectral norm) replaced by a plain buffer, to be called
    with :func:`torch.func.functional_call` and the original's effective weights (:func:`chain_weights`).

    (``parametrize.remove_parametrizations`` on a deep copy would delete the property from the parametrized class
    that the copy shares with the original, so the copy's modules are switched back to their base class instead.)
    """
    twin = copy.deepcopy(model)
    for mod in twin.modules():
        if parametrize.is_parametrized(mod):
            names = list(mod.parametrizations.keys())
            mod.__class__ = type(mod).__bases__[0]                  # the class before parametrization
            del mod._modules["parametrizations"]
            for name in names:
                mod.register_buffer(name, torch.empty(0))
        if hasattr(mod, "check_label_values"):
            mod.check_label_values = False                         # the sampler checks them once per chain
    for p in twin.parameters():
        p.requires_grad_(False)
    return twin


def chain_weights(model: nn.Module, twin: nn.Module) -> dict[str, Tensor]:
    """The tensors ``twin`` needs, read from ``model``: parametrized weights as the parametrization computes them
    (once per chain: under ``parametrize.cached()`` the spectral norm's power iteration runs at the first read)."""
    names = [n for n, _ in twin.named_parameters()] + [n for n, _ in twin.named_buffers()]
    out = {}
    for name in names:
        path, _, leaf = name.rpartition(".")
        out[name] = getattr(model.get_submodule(path) if path else model, leaf).detach()
    return out


def functional_energy_and_grad(twin: nn.Module, autocast_dtype: Optional[torch.dtype]):
    """``f(x, y, weights) -> (E(x) float32 (N,), grad_x sum E)`` through ``torch.func.grad_and_value``: one
    function of tensors only, which ``torch.compile`` traces whole (forward, input gradient, the casts)."""

    def energy_and_grad(x: Tensor, y: Optional[Tensor], weights: dict[str, Tensor]):
        def total(x):
            amp = (torch.autocast(x.device.type, dtype=autocast_dtype) if autocast_dtype is not None
                   else contextlib.nullcontext())
            with amp:
                e = torch.func.functional_call(twin, weights, (x,) if y is None else (x, y))
            e = e.float()
            return e.sum(), e
        g, (_, e) = torch.func.grad_and_value(total, has_aux=True)(x)
        return e, g.to(x.dtype)

    return energy_and_grad


# ----------------------------------------------------------------------------------------------- the sampler
class _Chain:
    """What one chain evaluates: (E, grad_x E) and E alone, by the chosen route."""

    def __init__(self, sampler: "FastPaperLangevin", energy, y):
        self.energy_fn, self.y = energy, y
        self.route = sampler._route(energy)
        self.manual = MNISTInputGradient(energy, sampler.autocast_dtype or torch.float32) \
            if self.route == "manual" else None
        self.compiled = None
        if self.route == "compiled":
            twin, fn = sampler._compiled_for(energy)
            self.compiled, self.weights = fn, chain_weights(energy, twin)


class FastPaperLangevin(PaperLangevin):
    """:class:`~ebmlib.core.samplers.PaperLangevin`'s update (eq. (3) with A.7's noise, clip and clamp) with the
    options of this module's docstring. Same arguments as PaperLangevin, plus:

    Args:
        gradient: ``"auto"`` (written out where the network is an MNISTConvEnergy, else autograd), ``"manual"``
            (refuse other networks) or ``"autograd"``.
        compile: ``torch.compile`` the (E, grad_x E) function (first call compiles; ``compile_mode`` is passed on,
            e.g. ``"max-autotune"``). Takes precedence over ``gradient``.
        device_noise: draw the noise on the chain's device (GPU) from a generator seeded by the caller's.
        check_every: see :attr:`~ebmlib.core.samplers.Sampler.check_every`.

    Tolerances against the float32 autograd path (tests/test_fastpath.py): manual float32 equal to 1e-5 relative
    in E and grad_x E, so one Langevin step agrees to 1e-6; bf16 within 2e-2 relative in E and 0.1 in the
    normalised gradient, one step within 2e-3 of the float32 step in x.
    """

    def __init__(self, step_size: float = 10.0, noise_std: float = 0.005, grad_clip: Optional[float] = 0.01,
                 autocast_dtype: Optional[torch.dtype] = None, *, gradient: str = "auto", compile: bool = False,
                 compile_mode: Optional[str] = None, device_noise: bool = True, check_every: Optional[int] = None):
        super().__init__(step_size, noise_std, grad_clip, autocast_dtype)
        if gradient not in GRADIENTS:
            raise ValueError(f"gradient must be one of {GRADIENTS}, got {gradient!r}")
        if check_every is not None and (not isinstance(check_every, int) or isinstance(check_every, bool)
                                        or check_every < 0):
            raise ValueError(f"check_every must be None or an int >= 0, got {check_every!r}")
        self.gradient = gradient
        self.compile = bool(compile)
        self.compile_mode = compile_mode
        self.device_noise = bool(device_noise)
        self.check_every = check_every
        self._compiled: dict = {}      # id(model) -> (twin, compiled function), reused across chains

    # -- routes ------------------------------------------------------------------------------------------------
    def _route(self, energy) -> str:
        if self.compile:
            if not isinstance(energy, nn.Module):
                raise TypeError("compile=True needs the energy to be an nn.Module (its weights become inputs)")
            return "compiled"
        if self.gradient == "autograd":
            return "autograd"
        if MNISTInputGradient.supports(energy):
            return "manual"
        if self.gradient == "manual":
            raise TypeError(f"gradient='manual' is written out for MNISTConvEnergy only, got {type(energy).__name__}; "
                            "use gradient='auto' or 'autograd'")
        return "autograd"

    def _compiled_for(self, model: nn.Module):
        key = id(model)
        if key not in self._compiled:
            twin = plain_twin(model)
            fn = torch.compile(functional_energy_and_grad(twin, self.autocast_dtype), dynamic=False,
                               mode=self.compile_mode)
            self._compiled[key] = (twin, fn)
        return self._compiled[key]

    # -- one chain ------------------------------------------------------------------------------------------------
    def run(self, energy, x0: Tensor, n_steps: int, *, y: Optional[Tensor] = None, generator=None, **kwargs):
        generator = self._chain_generator(generator, x0.device)
        with contextlib.ExitStack() as stack:
            if isinstance(energy, nn.Module):
                if y is not None and getattr(energy, "n_classes", None) is not None and y.numel():
                    lo, hi = (int(v) for v in torch.stack([y.min(), y.max()]).tolist())   # once per chain
                    if lo < 0 or hi >= energy.n_classes:
                        raise ValueError(f"labels must lie in [0, {energy.n_classes}), got values in [{lo}, {hi}]")
                stack.enter_context(labels_checked(energy))
                stack.enter_context(frozen(energy))
            return super().run(energy, x0, n_steps, y=y, generator=generator, **kwargs)

    def _chain_generator(self, generator, device: torch.device):
        """CUDA: a generator on the device, seeded by one draw from the caller's; CPU: the caller's own."""
        if not self.device_noise or generator is None or generator.device.type == device.type:
            return generator
        seed = int(torch.randint(0, 2 ** 62, (1,), generator=generator, device=generator.device))
        return torch.Generator(device=device).manual_seed(seed)

    def _state_for(self, energy, y):
        return _Chain(self, energy, y)

    def _energy(self, ctx, x: Tensor) -> Tensor:
        if not isinstance(ctx, _Chain):                    # called with the base class's (energy, y)
            return super()._energy(ctx, x)
        if ctx.manual is not None:
            return ctx.manual.energy(x, ctx.y)
        return super()._energy((ctx.energy_fn, ctx.y), x)

    def _energy_and_grad(self, ctx, x: Tensor, check: bool = True) -> tuple[Tensor, Tensor]:
        if not isinstance(ctx, _Chain) or ctx.route == "autograd":
            return super()._energy_and_grad(ctx if not isinstance(ctx, _Chain) else (ctx.energy_fn, ctx.y), x, check)
        if ctx.manual is not None:
            e, g = ctx.manual.energy_and_grad(x, ctx.y)
        else:
            e, g = ctx.compiled(x.detach(), ctx.y, ctx.weights)
        if e.shape != (x.shape[0],):
            raise ValueError(f"energy must return one value per chain, shape ({x.shape[0]},); got {tuple(e.shape)}")
        if check:
            self._check_finite(e, g)
        return e, g

    def _noise(self, x: Tensor, generator) -> Tensor:
        return draw_random(torch.randn, x.shape, generator, x.dtype, x.device)


def fast_sampler(config, device: str | torch.device = "cpu", **overrides) -> FastPaperLangevin:
    """A :class:`FastPaperLangevin` with a :class:`~ebmlib.core.train.TrainConfig`'s Langevin settings and
    :data:`FAST_DEFAULTS` for ``device``'s type (``overrides`` win); pass it as ``Trainer(..., sampler=...)``.

    The config's ``autocast_dtype`` is kept if set; on CUDA bf16 is the default otherwise.
    """
    kind = torch.device(device).type
    opts = dict(FAST_DEFAULTS.get(kind, FAST_DEFAULTS["cpu"]))
    if getattr(config, "autocast_dtype", None):
        opts["autocast_dtype"] = getattr(torch, config.autocast_dtype)
    opts.update(overrides)
    return FastPaperLangevin(config.step_size, config.noise_std, config.grad_clip, **opts)


#: the environment variable :func:`sampler_for` reads when ``fast`` is not given
FAST_ENV = "EBMLIB_FAST_SAMPLER"


def sampler_for(config, device: str | torch.device = "cpu", fast: Optional[str | bool] = None):
    """The sampler a recipe should train with: ``config.make_sampler()`` (PaperLangevin) or :func:`fast_sampler`.

    ``fast``: ``"auto"`` (the default) the fast path on CUDA only, so every CPU run, and the committed numbers
    made on the CPU, stay exactly as they were; ``True``/``"on"`` on every device; ``False``/``"off"`` never.
    ``None`` reads ``$EBMLIB_FAST_SAMPLER`` (same values; unset means ``"auto"``).
    """
    import os
    raw = os.environ.get(FAST_ENV, "auto") if fast is None else fast
    choice = {True: "on", False: "off"}.get(raw, raw) if isinstance(raw, bool) else str(raw).strip().lower()
    choice = {"1": "on", "true": "on", "yes": "on", "0": "off", "false": "off", "no": "off"}.get(choice, choice)
    if choice not in ("auto", "on", "off"):
        where = f"${FAST_ENV}" if fast is None else "fast"
        raise ValueError(f"{where} must be 'auto', 'on' or 'off' (or a bool), got {raw!r}")
    kind = torch.device(device).type
    if choice == "on" or (choice == "auto" and kind == "cuda"):
        return fast_sampler(config, device)
    return config.make_sampler()
