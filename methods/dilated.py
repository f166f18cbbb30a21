"""Fixed dilated convolution: a non-learned dilation baseline for the learned-spacing methods."""

from __future__ import annotations

from methods import register_method
from methods.conv import Conv


@register_method(
    "dilated",
    description="fixed dilated convolution (3 taps per dimension, dilation 2 by default: a 5 x 5 span)",
    paper="Yu, Koltun: Multi-Scale Context Aggregation by Dilated Convolutions (ICLR); baseline",
    year=2016,
    dims=(1, 2),
    causal=True,
    kernel_size_unit="taps: the span dilation*(k-1)+1",
)
def dilated(
    cin, cout, *, dim, causal, size,
    kernel_size: int = 3,  # taps per side
    dilation: int = 2,  # spacing between the taps
):  # fmt: skip
    return Conv(cin, cout, kernel_size, dim, causal, dilation=dilation)
