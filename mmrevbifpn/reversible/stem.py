"""The invertible stem: RGB channel stacking followed by SpaceToDepth(4)."""
from typing import Tuple

import torch
from torch import Tensor

from .base import GradSink, ReversibleModule, Streams


def space_to_depth(x: Tensor, block: int) -> Tensor:
    """``out[n, (bh*B + bw)*C + c, i, j] = x[n, c, B*i + bh, B*j + bw]``.

    Block row, block column, then channel: not the order of ``pixel_unshuffle``.
    """
    n, c, h, w = x.shape
    x = x.reshape(n, c, h // block, block, w // block, block)
    x = x.permute(0, 3, 5, 1, 2, 4)
    return x.reshape(n, block * block * c, h // block, w // block)


def depth_to_space(y: Tensor, block: int) -> Tensor:
    """Inverse of :func:`space_to_depth`."""
    n, bc, h, w = y.shape
    c = bc // (block * block)
    y = y.reshape(n, block, block, c, h, w)
    y = y.permute(0, 3, 4, 1, 5, 2)
    return y.reshape(n, c, h * block, w * block)


class SpaceToDepthStem(ReversibleModule):
    """Stack image channels to ``stacked_channels``, then SpaceToDepth.

    The stacked input repeats the image channels cyclically (``RGBRGB...R``): channel
    ``k`` is image channel ``k % in_channels``. The map is injective, so the image is
    recovered from the first ``in_channels`` stacked channels; the gradient of each
    image channel is the sum over its copies.

    Args:
        in_channels: image channels.
        stacked_channels: channels after stacking (``out_channels / block**2``).
        block: SpaceToDepth block size.
    """

    def __init__(self, in_channels: int = 3, stacked_channels: int = 3,
                 block: int = 4) -> None:
        super().__init__()
        self.in_channels = in_channels
        self.block = block
        self.register_buffer(
            'stack_index', torch.arange(stacked_channels) % in_channels,
            persistent=False)

    @property
    def out_channels(self) -> int:
        return self.stack_index.numel() * self.block**2

    def forward(self, xs: Streams, replay=None) -> Streams:
        (x, ) = xs
        return [space_to_depth(x.index_select(1, self.stack_index), self.block)]

    def inverse(self, ys: Streams) -> Streams:
        (y, ) = ys
        return [depth_to_space(y, self.block)[:, :self.in_channels]]

    def backward_pass(self, ys: Streams, dys: Streams, replay,
                      sink: GradSink) -> Tuple[Streams, Streams]:
        d_stacked = depth_to_space(dys[0], self.block)
        n, _, h, w = d_stacked.shape
        dx = d_stacked.new_zeros(n, self.in_channels, h, w)
        dx.index_add_(1, self.stack_index, d_stacked)
        return self.inverse(ys), [dx]
