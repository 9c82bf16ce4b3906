"""The dynamics network f(t, x, context) of a CNF block: a stack of time-conditioned convolutions."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

# Memory layout of the activations inside the network. Channels-last (NHWC) makes oneDNN's CPU
# convolutions faster than the default NCHW, and benchmarks/training_step.py can switch it.
# NOTE: measured on the CPU only; on CUDA the default layout may be the faster one.
ACTIVATION_LAYOUT = torch.channels_last


class TimeConcatConv2d(nn.Module):
    """A 3x3 convolution that takes time as one extra constant input channel."""

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        self.conv = nn.Conv2d(in_channels + 1, out_channels, kernel_size=3, padding=1)

    def forward(self, t: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
        # The time channel takes the activations' layout, so that the concatenation keeps it.
        time_channel = t.to(h).expand(h.shape[0], 1, h.shape[2], h.shape[3]).contiguous(memory_format=ACTIVATION_LAYOUT)
        return self.conv(torch.cat([time_channel, h], dim=1))

    def state_weight(self, channels: int | None = None) -> torch.Tensor:
        """Return the kernel of the input channels after time, or of the first ``channels`` of them."""
        weight = self.conv.weight[:, 1:]
        return weight if channels is None else weight[:, :channels]


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
        h = h.contiguous(memory_format=ACTIVATION_LAYOUT)
        for index, layer in enumerate(self.layers):
            h = layer(t, h)
            if index < len(self.layers) - 1:
                h = F.softplus(h)
        return h.contiguous()

    def forward_and_vjp(
        self, t: torch.Tensor, x: torch.Tensor, context: torch.Tensor | None, e: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Evaluate dx/dt and the vector-Jacobian product ``e^T (d dx / dx)`` in one pass.

        The product is written out layer by layer (a transposed convolution and the softplus
        slope, the sigmoid), so it is an ordinary differentiable function of x and the weights.
        Training then backpropagates through it once, instead of through the double backward of
        a convolution, which is slower, and evaluation needs no autograd graph at all.

        Args:
            t: scalar time tensor.
            x: state, (B, C, H, W).
            context: conditioning image, (B, C_context, H, W), or None.
            e: the vector, shaped like x.

        Returns:
            ``(dx, vjp)``: dx/dt and ``e^T (d dx / dx)``, both (B, C, H, W).
        """
        h = x if context is None else torch.cat([x, context], dim=1)
        h = h.contiguous(memory_format=ACTIVATION_LAYOUT)
        slopes = []
        for index, layer in enumerate(self.layers):
            h = layer(t, h)
            if index < len(self.layers) - 1:
                slopes.append(torch.sigmoid(h))
                h = F.softplus(h)

        g = e.contiguous(memory_format=ACTIVATION_LAYOUT)
        for index in reversed(range(len(self.layers))):
            g = F.conv_transpose2d(g, self.layers[index].state_weight(self.channels if index == 0 else None), padding=1)
            if index > 0:
                g = g * slopes[index - 1]
        return h.contiguous(), g.contiguous()
