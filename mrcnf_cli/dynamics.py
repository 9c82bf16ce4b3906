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
    """A 3x3 convolution whose input carries time as its first channel, then ``in_channels`` more."""

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        self.conv = nn.Conv2d(in_channels + 1, out_channels, kernel_size=3, padding=1)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return self.conv(h)

    def state_weight(self, channels: int | None = None) -> torch.Tensor:
        """Return the kernel of the input channels after time, or of the first ``channels`` of them."""
        weight = self.conv.weight[:, 1:]
        return weight if channels is None else weight[:, :channels]


def _softplus_behind_time(t: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
    """Return the next layer's input for pre-activations h (B, C, H, W): time, then softplus(h).

    The result is (B, 1 + C, H, W), and softplus is written into its place, so no concatenation
    copies it again.
    """
    batch, channels, height, width = h.shape
    frame = torch.empty(
        (batch, channels + 1, height, width), dtype=h.dtype, device=h.device, memory_format=ACTIVATION_LAYOUT
    )
    frame[:, :1] = t
    torch.logaddexp(h, h.new_zeros(()), out=frame[:, 1:])
    return frame


class _SoftplusWithTime(torch.autograd.Function):
    """Autograd function of ``_softplus_behind_time`` that takes the slope sigmoid(h) as well.

    The backward pass multiplies by the slope, which the vector-Jacobian product computes anyway,
    instead of computing it again. The backward is made of differentiable operations, so autograd
    can differentiate it again, as the exact trace does.
    """

    @staticmethod
    def forward(ctx, t: torch.Tensor, h: torch.Tensor, slope: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(slope)
        ctx.time_shape, ctx.time_dtype = t.shape, t.dtype
        return _softplus_behind_time(t, h)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        (slope,) = ctx.saved_tensors
        grad_t = grad[:, 0].sum().reshape(ctx.time_shape).to(ctx.time_dtype) if ctx.needs_input_grad[0] else None
        return grad_t, grad[:, 1:] * slope, None


def _network_input(t: torch.Tensor, x: torch.Tensor, context: torch.Tensor | None) -> torch.Tensor:
    """Return time, x and the context stacked as channels, (B, 1 + C + C_context, H, W)."""
    time_channel = t.to(x).expand(x.shape[0], 1, x.shape[2], x.shape[3])
    parts = [time_channel, x] if context is None else [time_channel, x, context]
    return torch.cat(parts, dim=1).contiguous(memory_format=ACTIVATION_LAYOUT)


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
        h = _network_input(t, x, context)
        for layer in self.layers[:-1]:
            h = layer(h)
            if torch.is_grad_enabled():
                h = _SoftplusWithTime.apply(t, h, torch.sigmoid(h))
            else:
                h = _softplus_behind_time(t, h)
        return self.layers[-1](h).contiguous()

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
        h = _network_input(t, x, context)
        slopes = []
        for layer in self.layers[:-1]:
            h = layer(h)
            slopes.append(torch.sigmoid(h))
            h = _SoftplusWithTime.apply(t, h, slopes[-1])
        dx = self.layers[-1](h)

        g = e.contiguous(memory_format=ACTIVATION_LAYOUT)
        for index in reversed(range(len(self.layers))):
            g = F.conv_transpose2d(g, self.layers[index].state_weight(self.channels if index == 0 else None), padding=1)
            if index > 0:
                g = g * slopes[index - 1]
        return dx.contiguous(), g.contiguous()
