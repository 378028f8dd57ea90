"""Energy networks E_theta(x) (optionally E_theta(x, y)) returning one scalar energy per input, shape (N,).

No normalisation layers anywhere: A.8 found batch/group/layer normalisation hurts sampling because a sample's
energy then depends on the other samples in the batch. Lipschitz control comes from spectral normalisation
(section 3.3, Miyato et al. 2018), optional per network.

Class conditioning follows A.6: per-class gains and biases on hidden features (Dumoulin et al.), selected
by the label. ``n_classes=None`` gives an unconditional network.
"""
from __future__ import annotations

import contextlib
from typing import Optional

import torch
from torch import Tensor, nn
from torch.nn.utils.parametrizations import spectral_norm as _spectral_norm

__all__ = ["ACTIVATIONS", "activation", "maybe_spectral_norm", "ConditionalGainBias", "MLPEnergy", "MNISTConvEnergy", "count_parameters",
           "CIFAR_LAYOUTS", "IMAGENET_LAYOUTS", "RESNET_LAYOUTS", "ResidualBlock", "CIFARResNetEnergy",
           "imagenet32_energy", "imagenet128_energy", "labels_checked"]

ACTIVATIONS = {
    "swish": nn.SiLU,  # Swish (Ramachandran et al. 2017); A.8: the most stable choice
    "relu": nn.ReLU,
    "leaky_relu": lambda: nn.LeakyReLU(0.2),  # slope 0.2 as in the paper's code release
    "softplus": nn.Softplus,
}


def activation(name: str) -> nn.Module:
    if name not in ACTIVATIONS:
        raise ValueError(f"unknown activation {name!r}; expected one of {sorted(ACTIVATIONS)}")
    return ACTIVATIONS[name]()


def maybe_spectral_norm(layer: nn.Module, use: bool) -> nn.Module:
    # One power iteration per forward pass (the default), as in the paper's release.
    return _spectral_norm(layer) if use else layer


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


@contextlib.contextmanager
def labels_checked(model: nn.Module):
    """Within: the conditional layers skip their per-call check that the labels lie in [0, n_classes).

    That check reads a value back to the host, which on a GPU stalls the queue of kernels at every call; a
    Langevin chain calls the network K times with the same labels, so a sampler checks them once and runs the
    chain inside this context. Shapes and dtypes are still checked at every call (that needs no device read).
    """
    mods = [m for m in model.modules() if hasattr(m, "check_label_values")]
    saved = [m.__dict__.get("check_label_values") for m in mods]
    for m in mods:
        m.check_label_values = False
    try:
        yield model
    finally:
        for m, v in zip(mods, saved):
            if v is None:
                m.__dict__.pop("check_label_values", None)
            else:
                m.check_label_values = v


class ConditionalGainBias(nn.Module):
    """h -> h * gain[y] + bias[y] over the channel dimension (A.6's conditional gains and biases)."""

    check_label_values = True   #: switched off inside :func:`labels_checked`

    def __init__(self, n_classes: int, features: int):
        super().__init__()
        self.gain = nn.Embedding(n_classes, features)
        self.bias = nn.Embedding(n_classes, features)
        nn.init.ones_(self.gain.weight)
        nn.init.zeros_(self.bias.weight)
        self.n_classes = n_classes

    def forward(self, h: Tensor, y: Tensor) -> Tensor:
        if y.dtype not in (torch.int64, torch.int32) or y.shape != (h.shape[0],):
            raise ValueError(f"labels must be an integer tensor of shape ({h.shape[0]},), got "
                             f"{y.dtype} {tuple(y.shape)}")
        if self.check_label_values and ((y < 0).any() or (y >= self.n_classes).any()):
            raise ValueError(f"labels must lie in [0, {self.n_classes}), got values in "
                             f"[{int(y.min())}, {int(y.max())}]")
        shape = (h.shape[0], h.shape[1]) + (1,) * (h.ndim - 2)
        return h * self.gain(y).view(shape) + self.bias(y).view(shape)


class _EnergyNet(nn.Module):
    """Shared input checks: conditional nets need labels, unconditional ones refuse them."""

    n_classes: Optional[int] = None
    input_shape: tuple[int, ...] = ()
    check_label_values = True   #: switched off inside :func:`labels_checked`

    def _check(self, x: Tensor, y: Optional[Tensor]) -> None:
        if x.shape[1:] != self.input_shape:
            raise ValueError(f"{type(self).__name__} expects inputs of shape (N, {', '.join(map(str, self.input_shape))}), "
                             f"got {tuple(x.shape)}")
        if self.n_classes is None and y is not None:
            raise ValueError(f"{type(self).__name__} is unconditional (n_classes=None) but labels were given")
        if self.n_classes is not None and y is None:
            raise ValueError(f"{type(self).__name__} is conditional on {self.n_classes} classes: pass labels y")

    def _hidden(self, h: Tensor, y: Optional[Tensor], layers: nn.ModuleList) -> Tensor:
        """layer -> (class gain and bias) -> activation, for each hidden layer."""
        for i, (layer, act) in enumerate(zip(layers, self.acts)):
            h = layer(h)
            if self.cond is not None:
                h = self.cond[i](h, y)
            h = act(h)
        return h


class MLPEnergy(_EnergyNet):
    """A fully connected energy for low-dimensional data (2D toys, robot states).

    ``depth`` hidden layers of ``hidden`` units; the last linear layer maps to a scalar and is not
    spectrally normalised (as in the paper's release), so the energy's scale stays free.
    """

    def __init__(self, in_dim: int = 2, hidden: int = 128, depth: int = 3, act: str = "swish",
                 spectral_norm: bool = False, n_classes: Optional[int] = None):
        super().__init__()
        if in_dim < 1 or hidden < 1 or depth < 1:
            raise ValueError(f"need in_dim, hidden, depth >= 1; got {in_dim}, {hidden}, {depth}")
        self.input_shape = (in_dim,)
        self.n_classes = n_classes
        dims = [in_dim] + [hidden] * depth
        self.layers = nn.ModuleList(maybe_spectral_norm(nn.Linear(a, b), spectral_norm) for a, b in zip(dims[:-1], dims[1:]))
        self.acts = nn.ModuleList(activation(act) for _ in range(depth))
        self.cond = (nn.ModuleList(ConditionalGainBias(n_classes, hidden) for _ in range(depth))
                     if n_classes is not None else None)
        self.head = nn.Linear(hidden, 1)

    def forward(self, x: Tensor, y: Optional[Tensor] = None) -> Tensor:
        self._check(x, y)
        return self.head(self._hidden(x, y, self.layers)).squeeze(-1)


class MNISTConvEnergy(_EnergyNet):
    """The small CNN energy for 28x28 images (the paper's release: conv3 1->w, strided 4x4 convs w->w->2w->4w,
    fc 16*4w -> 2w, fc -> 1; ~1.25M parameters at width w=64).

    Inputs are images in [0, 1]; no input normalisation (as in the paper). ``width`` scales every layer, so a
    CPU-sized model (width 32, ~0.3M parameters) and the release's (width 64) are the same code.
    """

    def __init__(self, width: int = 64, act: str = "swish", spectral_norm: bool = True,
                 n_classes: Optional[int] = None, in_channels: int = 1):
        super().__init__()
        if width < 1:
            raise ValueError(f"width must be >= 1, got {width}")
        self.input_shape = (in_channels, 28, 28)
        self.n_classes = n_classes
        w = width
        sn = spectral_norm
        self.convs = nn.ModuleList([
            maybe_spectral_norm(nn.Conv2d(in_channels, w, 3, 1, 1), sn),   # 28x28
            maybe_spectral_norm(nn.Conv2d(w, w, 4, 2, 1), sn),             # -> 14x14
            maybe_spectral_norm(nn.Conv2d(w, 2 * w, 4, 2, 1), sn),         # -> 7x7
            maybe_spectral_norm(nn.Conv2d(2 * w, 4 * w, 4, 2, 2), sn),     # -> 4x4 (TF 'SAME' padding gives 4 too)
        ])
        self.acts = nn.ModuleList(activation(act) for _ in self.convs)
        self.cond = (nn.ModuleList(ConditionalGainBias(n_classes, c.out_channels) for c in self.convs) if n_classes is not None else None)
        self.fc = maybe_spectral_norm(nn.Linear(16 * 4 * w, 2 * w), sn)
        self.fc_act = activation(act)
        self.head = nn.Linear(2 * w, 1)

    def forward(self, x: Tensor, y: Optional[Tensor] = None) -> Tensor:
        self._check(x, y)
        h = self._hidden(x, y, self.convs)
        h = self.fc_act(self.fc(h.flatten(1)))
        return self.head(h).squeeze(-1)


# ------------------------------------------------------------------------------------------- CIFAR-10 ResNets
#: A.6's residual energies for 32x32 colour images, as (out_channels / base width, downsample) per block after
#: the input conv (3 -> width). "resnet32": the conditional CIFAR-10 model (Fig. 24a); "resnet32_large": the
#: unconditional one, which A.6 found needs more capacity (Fig. 24b). Multipliers of ``width`` (128 in the paper).
CIFAR_LAYOUTS = {
    "resnet32": ((1, True), (1, False), (2, True), (2, False), (2, True), (2, False)),
    "resnet32_large": ((1, True), (1, False), (1, False), (2, True), (2, False), (2, False),
                       (4, True), (4, False), (4, False)),
}

#: The release's ImageNet energies in the same form, multipliers of the input conv's width. "resnet32_wider"
#: (ImageNet32): input conv 3 -> 128, then blocks of F, 2F, 4F with F = 256 (so 2x, 4x, 8x of 128), ~90M
#: parameters with 1000 classes. "resnet128" (ImageNet128): input conv 3 -> 64, five downsampling blocks to
#: 512 channels at 4x4, then one more; ~21M with 1000 classes (Swish).
IMAGENET_LAYOUTS = {
    "resnet32_wider": ((2, True), (2, False), (2, False), (4, True), (4, False), (4, False),
                       (8, True), (8, False), (8, False)),
    "resnet128": ((1, True), (2, True), (4, True), (8, True), (8, True), (8, False)),
}
RESNET_LAYOUTS = {**CIFAR_LAYOUTS, **IMAGENET_LAYOUTS}


class ResidualBlock(nn.Module):
    """One residual block of A.6 (after SNGAN, Miyato et al. 2018; as in the paper's release):

        h = act(conv1(x + b1[y]));  h = conv2(h + b2[y]) * g[y];  out = act(avgpool(h + shortcut(x)))

    * ``b1``, ``b2``, ``g``: per-class input biases and output gain (A.6: "conditional bias and gains in each
      residual layer"); an unconditional block has one slot. Convolutions have no bias of their own.
    * A.6 initialises the second conv to zero so every block starts as its shortcut. Spectral norm rescales
      any initial weight to unit spectral norm, so here the *gain* starts at zero instead (the same start:
      h = 0, out = shortcut; SkipInit, De & Smith 2020).
    * ``shortcut``: identity, or a spectrally normalised 3x3 conv where the channel count changes.
    * Downsampling is 2x2 average pooling, not a strided conv (A.6, A.8).
    """

    def __init__(self, in_ch: int, out_ch: int, downsample: bool, act: str = "leaky_relu",
                 spectral_norm: bool = True, n_classes: Optional[int] = None):
        super().__init__()
        slots = n_classes if n_classes is not None else 1
        self.n_classes = n_classes
        self.conv1 = maybe_spectral_norm(nn.Conv2d(in_ch, out_ch, 3, 1, 1, bias=False), spectral_norm)
        self.conv2 = maybe_spectral_norm(nn.Conv2d(out_ch, out_ch, 3, 1, 1, bias=False), spectral_norm)
        self.shortcut = (maybe_spectral_norm(nn.Conv2d(in_ch, out_ch, 3, 1, 1, bias=False), spectral_norm)
                         if in_ch != out_ch else nn.Identity())
        self.bias1 = nn.Embedding(slots, in_ch)
        self.bias2 = nn.Embedding(slots, out_ch)
        self.gain = nn.Embedding(slots, out_ch)
        for e in (self.bias1, self.bias2, self.gain):
            nn.init.zeros_(e.weight)
        self.act1, self.act2 = activation(act), activation(act)
        self.pool = nn.AvgPool2d(2) if downsample else nn.Identity()

    def forward(self, x: Tensor, y: Optional[Tensor] = None) -> Tensor:
        slot = y if y is not None else torch.zeros(x.shape[0], dtype=torch.int64, device=x.device)
        h = self.act1(self.conv1(x + self.bias1(slot)[:, :, None, None]))
        h = self.conv2(h + self.bias2(slot)[:, :, None, None]) * self.gain(slot)[:, :, None, None]
        return self.act2(self.pool(h + self.shortcut(x)))


class CIFARResNetEnergy(_EnergyNet):
    """The paper's residual energy for 32x32 colour images in [0, 1] (A.6, Fig. 24a/b).

    conv3x3 3 -> width, then the blocks of ``RESNET_LAYOUTS[layout]`` (:class:`ResidualBlock`), then activation,
    sum over space (as the release does) and a linear layer to the scalar energy (not spectrally normalised,
    so the energy's scale stays free). Leaky ReLU (slope 0.2) throughout as in A.6; spectral norm on every conv
    (section 3.3). ``n_classes=10`` gives the conditional model (per-class gains and biases in every block).

    Paper settings: ``layout="resnet32", width=128, n_classes=10`` (conditional CIFAR-10, 5.35M parameters)
    and ``layout="resnet32_large", width=128`` (unconditional CIFAR-10, 18.6M; the paper: ~5.3M and ~18.6M). ``width`` scales every layer
    for CPU-sized tests.
    """

    def __init__(self, width: int = 128, layout: str = "resnet32", act: str = "leaky_relu",
                 spectral_norm: bool = True, n_classes: Optional[int] = None, in_channels: int = 3,
                 image_size: int = 32):
        super().__init__()
        if layout not in RESNET_LAYOUTS:
            raise ValueError(f"unknown layout {layout!r}; expected one of {sorted(RESNET_LAYOUTS)}")
        if width < 1:
            raise ValueError(f"width must be >= 1, got {width}")
        n_down = sum(d for _, d in RESNET_LAYOUTS[layout])
        if image_size % (2 ** n_down):
            raise ValueError(f"image_size must be divisible by {2 ** n_down} for layout {layout!r}, got {image_size}")
        if n_classes is not None and n_classes < 1:
            raise ValueError(f"n_classes must be None or >= 1, got {n_classes}")
        self.input_shape = (in_channels, image_size, image_size)
        self.n_classes = n_classes
        self.layout = layout
        self.conv_in = maybe_spectral_norm(nn.Conv2d(in_channels, width, 3, 1, 1, bias=False), spectral_norm)
        blocks, ch = [], width
        for mult, down in RESNET_LAYOUTS[layout]:
            blocks.append(ResidualBlock(ch, mult * width, down, act, spectral_norm, n_classes))
            ch = mult * width
        self.blocks = nn.ModuleList(blocks)
        self.out_act = activation(act)
        self.head = nn.Linear(ch, 1)

    def forward(self, x: Tensor, y: Optional[Tensor] = None) -> Tensor:
        self._check(x, y)
        if y is not None and (y.dtype not in (torch.int64, torch.int32) or y.shape != (x.shape[0],)
                              or (self.check_label_values and ((y < 0).any() or (y >= self.n_classes).any()))):
            raise ValueError(f"labels must be integers in [0, {self.n_classes}) of shape ({x.shape[0]},), got "
                             f"{y.dtype} {tuple(y.shape)}" + (f" in [{int(y.min())}, {int(y.max())}]" if y.numel() else ""))
        h = self.conv_in(x)
        for block in self.blocks:
            h = block(h, y)
        return self.head(self.out_act(h).sum(dim=(2, 3))).squeeze(-1)   # sum over space, then linear


def imagenet32_energy(n_classes: Optional[int] = 1000, width: int = 128, act: str = "leaky_relu",
                      spectral_norm: bool = True) -> CIFARResNetEnergy:
    """ResNet32Wider of the release for 32x32 ImageNet (Fig. 24c): ``width=128`` gives F = 256 and ~90M
    parameters with 1000 classes; a smaller ``width`` or ``n_classes`` for CPU-sized stand-ins."""
    return CIFARResNetEnergy(width, "resnet32_wider", act, spectral_norm, n_classes, image_size=32)


def imagenet128_energy(n_classes: Optional[int] = 1000, width: int = 64, act: str = "swish",
                       spectral_norm: bool = True, image_size: int = 128) -> CIFARResNetEnergy:
    """ResNet128 of the release for 128x128 ImageNet (Fig. 24d): Swish, ``width=64``, ~21M parameters with 1000
    classes. ``image_size`` must be a multiple of 32 (five 2x2 poolings)."""
    return CIFARResNetEnergy(width, "resnet128", act, spectral_norm, n_classes, image_size=image_size)
