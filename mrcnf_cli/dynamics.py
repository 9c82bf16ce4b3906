"""The dynamics network f(t, x, context) of a CNF block: a stack of time-conditioned convolutions."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class TimeConcatConv2d(nn.Module):
    """A 3x3 convolution that takes time as one extra constant input channel."""

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        self.conv = nn.Conv2d(in_channels + 1, out_channels, kernel_size=3, padding=1)

    def forward(self, t: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
        time_channel = t.to(h).expand(h.shape[0], 1, h.shape[2], h.shape[3])
        return self.conv(torch.cat([time_channel, h], dim=1))


class DynamicsNet(nn.Module):
    """Time-dependent vector field for images, optionally conditioned on a context image.

    The context (a coarser image at the same spatial size as the state) is concatenated to the
    input channels; time enters every layer as an extra channel. Softplus activations keep the
    field smooth, as a CNF needs. The last layer's weights and bias start at zero, so a new
    network is the zero field and its CNF block the identity map.

    Args:
        channels: channels of the state x.
        context_channels: channels of the context image (0 for an unconditional network).
        hidden: widths of the hidden layers.
    """

    def __init__(self, channels: int, *, context_channels: int = 0, hidden: tuple[int, ...] = (64, 64, 64)):
        super().__init__()
        self.channels = channels
        self.context_channels = context_channels

        widths = [channels + context_channels, *hidden, channels]
        self.layers = nn.ModuleList(
            TimeConcatConv2d(width_in, width_out) for width_in, width_out in zip(widths[:-1], widths[1:])
        )

        last = self.layers[-1].conv
        nn.init.zeros_(last.weight)
        nn.init.zeros_(last.bias)

    def forward(self, t: torch.Tensor, x: torch.Tensor, context: torch.Tensor | None = None) -> torch.Tensor:
        """Evaluate dx/dt.

        Args:
            t: scalar time tensor.
            x: state, (B, C, H, W).
            context: conditioning image, (B, C_context, H, W), or None when unconditional.

        Returns:
            dx/dt, (B, C, H, W).
        """
        h = x if context is None else torch.cat([x, context], dim=1)
        for index, layer in enumerate(self.layers):
            h = layer(t, h)
            if index < len(self.layers) - 1:
                h = F.softplus(h)
        return h
