"""The MLP, with all its parameters in one flat vector.

Alignment is a cosine over the flattened parameter vector, so the model keeps its parameters as
that vector: one gradient tensor per loss, no per-parameter bookkeeping in the training step.
Outputs 0-9 are the class logits, 10.. the auxiliary logits.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from sublim.core.config import TrialConfig
from sublim.core.schema import NUM_CLASSES

from .seeding import generator


def layer_shapes(config: TrialConfig) -> list[tuple[tuple[int, int], tuple[int]]]:
    """(weight shape, bias shape) of each linear layer: 784 → h → h → 10 + m."""
    widths = config.layer_widths
    return [((d_out, d_in), (d_out,)) for d_in, d_out in zip(widths[:-1], widths[1:])]


class MLP(nn.Module):
    def __init__(self, config: TrialConfig, flat: torch.Tensor):
        super().__init__()
        self.shapes = [shape for layer in layer_shapes(config) for shape in layer]
        self.sizes = [math.prod(shape) for shape in self.shapes]
        if flat.numel() != sum(self.sizes):
            raise ValueError(f"expected {sum(self.sizes)} parameters, got {flat.numel()}")
        self.flat = nn.Parameter(flat.detach().clone())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w1, b1, w2, b2, w3, b3 = (p.view(s) for p, s in zip(self.flat.split(self.sizes), self.shapes))
        h = F.relu(F.linear(x, w1, b1))
        h = F.relu(F.linear(h, w2, b2))
        return F.linear(h, w3, b3)

    def layer_index(self) -> torch.Tensor:
        """For each entry of the flat vector, the index of its layer (weights and bias together)."""
        per_param = torch.arange(len(self.sizes), device=self.flat.device) // 2
        return per_param.repeat_interleave(torch.tensor(self.sizes, device=self.flat.device))


def init_parameters(config: TrialConfig, stream: str) -> torch.Tensor:
    """A flat parameter vector drawn from `stream` of the trial seed.

    normal: weights ~ N(0, 1/d_in), biases 0 (the original subliminal-learning code);
    torch: nn.Linear's default, weights and biases ~ U(-1/sqrt(d_in), 1/sqrt(d_in)).
    """
    gen = generator(config.seed, stream)
    parts = []
    for (d_out, d_in), bias_shape in layer_shapes(config):
        bound = 1 / math.sqrt(d_in)
        if config.init == "normal":
            parts += [torch.randn(d_out, d_in, generator=gen) * bound, torch.zeros(bias_shape)]
        else:
            parts += [(torch.rand(d_out, d_in, generator=gen) * 2 - 1) * bound,
                      (torch.rand(bias_shape, generator=gen) * 2 - 1) * bound]
    return torch.cat([p.flatten() for p in parts])


@torch.no_grad()
def accuracy(model: MLP, x: torch.Tensor, y: torch.Tensor, chunk: int = 10_000) -> float:
    """Fraction of images whose argmax over the class logits (outputs 0-9) is the label."""
    correct = sum(
        (model(x[i:i + chunk])[:, :NUM_CLASSES].argmax(1) == y[i:i + chunk]).sum() for i in range(0, len(x), chunk)
    )
    return float(correct) / len(x)


@torch.no_grad()
def logits(model: MLP, x: torch.Tensor, chunk: int = 10_000) -> torch.Tensor:
    return torch.cat([model(x[i:i + chunk]) for i in range(0, len(x), chunk)])
