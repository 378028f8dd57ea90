"""Energy networks E_theta(x) (optionally E_theta(x, y)) returning one scalar energy per input, shape (N,).

No normalisation layers anywhere: A.8 found batch/group/layer normalisation hurts sampling because a sample's
energy then depends on the other samples in the batch. Lipschitz control comes from spectral normalisation
(section 3.3, Miyato et al. 2018), optional per network.

Class conditioning follows A.6: per-class gains and biases on hidden features (Dumoulin et al.), selected
by the label. ``n_classes=None`` gives an unconditional network.
"""
from __future__ import annotations

from typing import Optional

import torch
from torch import Tensor, nn
from torch.nn.utils.parametrizations import spectral_norm as _spectral_norm

__all__ = ["ACTIVATIONS", "activation", "ConditionalGainBias", "MLPEnergy", "MNISTConvEnergy", "MNISTClassifier", "count_parameters"]

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


def _maybe_sn(layer: nn.Module, use: bool) -> nn.Module:
    # One power iteration per forward pass (the default), as in the paper's release.
    return _spectral_norm(layer) if use else layer


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


class ConditionalGainBias(nn.Module):
    """h -> h * gain[y] + bias[y] over the channel dimension (A.6's conditional gains and biases)."""

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
        if (y < 0).any() or (y >= self.n_classes).any():
            raise ValueError(f"labels must lie in [0, {self.n_classes}), got values in "
                             f"[{int(y.min())}, {int(y.max())}]")
        shape = (h.shape[0], h.shape[1]) + (1,) * (h.ndim - 2)
        return h * self.gain(y).view(shape) + self.bias(y).view(shape)


class _EnergyNet(nn.Module):
    """Shared input checks: conditional nets need labels, unconditional ones refuse them."""

    n_classes: Optional[int] = None
    input_shape: tuple[int, ...] = ()

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
        self.layers = nn.ModuleList(_maybe_sn(nn.Linear(a, b), spectral_norm) for a, b in zip(dims[:-1], dims[1:]))
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
            _maybe_sn(nn.Conv2d(in_channels, w, 3, 1, 1), sn),   # 28x28
            _maybe_sn(nn.Conv2d(w, w, 4, 2, 1), sn),             # -> 14x14
            _maybe_sn(nn.Conv2d(w, 2 * w, 4, 2, 1), sn),         # -> 7x7
            _maybe_sn(nn.Conv2d(2 * w, 4 * w, 4, 2, 2), sn),     # -> 4x4 (TF 'SAME' padding gives 4 too)
        ])
        self.acts = nn.ModuleList(activation(act) for _ in self.convs)
        self.cond = (nn.ModuleList(ConditionalGainBias(n_classes, c.out_channels) for c in self.convs) if n_classes is not None else None)
        self.fc = _maybe_sn(nn.Linear(16 * 4 * w, 2 * w), sn)
        self.fc_act = activation(act)
        self.head = nn.Linear(2 * w, 1)

    def forward(self, x: Tensor, y: Optional[Tensor] = None) -> Tensor:
        self._check(x, y)
        h = self._hidden(x, y, self.convs)
        h = self.fc_act(self.fc(h.flatten(1)))
        return self.head(h).squeeze(-1)


class MNISTClassifier(nn.Module):
    """A small CNN classifier for 28x28 images, used to *measure* generated samples, not as an EBM.

    ``features(x)`` gives the penultimate ``num_features``-dim activations: the feature space of the book's
    offline FID stand-in (DESIGN.md: no Inception weights offline). ``forward`` gives class logits.
    """

    def __init__(self, n_classes: int = 10, width: int = 32, num_features: int = 128, in_channels: int = 1):
        super().__init__()
        w = width
        self.body = nn.Sequential(
            nn.Conv2d(in_channels, w, 3, 1, 1), nn.ReLU(), nn.MaxPool2d(2),     # -> 14x14
            nn.Conv2d(w, 2 * w, 3, 1, 1), nn.ReLU(), nn.MaxPool2d(2),           # -> 7x7
            nn.Flatten(), nn.Linear(2 * w * 49, num_features), nn.ReLU(),
        )
        self.head = nn.Linear(num_features, n_classes)
        self.num_features = num_features  # torchmetrics' FID reads this instead of probing with a 299x299 image
        self.input_shape = (in_channels, 28, 28)

    def features(self, x: Tensor) -> Tensor:
        if x.shape[1:] != self.input_shape:
            raise ValueError(f"MNISTClassifier expects inputs of shape (N, {', '.join(map(str, self.input_shape))}), "
                             f"got {tuple(x.shape)}")
        return self.body(x)

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.features(x))
