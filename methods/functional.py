"""Convolution with an explicitly sampled kernel: causal or centred, direct or FFT.

Conventions (shared by every method that samples its own kernel):
- weight has shape (C_out, C_in, K) or (C_out, C_in, Kh, Kw); cross-correlation as in F.conv.
- causal (1D): the last tap multiplies x[t], the first x[t-K+1]; output t never sees t' > t.
- centred ("same", 1D or 2D): odd kernel sides, output size equals input size.
The FFT path computes the same thing through a linear (zero-padded) convolution.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def _fft_size(n: int) -> int:
    """A size >= n that the FFT handles fast (powers of 2, 3, 5)."""
    best = 1 << (n - 1).bit_length()
    p5 = 1
    while p5 < best:
        p35 = p5
        while p35 < best:
            m = p35
            while m < n:
                m *= 2
            best = min(best, m)
            p35 *= 3
        p5 *= 5
    return best


def conv_direct(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, causal: bool) -> torch.Tensor:
    ks = weight.shape[2:]
    if causal:
        return F.conv1d(F.pad(x, (ks[0] - 1, 0)), weight, bias)
    if any(k % 2 == 0 for k in ks):
        raise ValueError(f"a centred convolution needs odd kernel sides, got {tuple(ks)}")
    conv = F.conv2d if x.dim() == 4 else F.conv1d
    return conv(x, weight, bias, padding=tuple(k // 2 for k in ks))


def conv_fft(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, causal: bool) -> torch.Tensor:
    dims = x.dim() - 2
    ks, size = weight.shape[2:], x.shape[2:]
    if not causal and any(k % 2 == 0 for k in ks):
        raise ValueError(f"a centred convolution needs odd kernel sides, got {tuple(ks)}")
    fsize = [_fft_size(n + k - 1) for n, k in zip(size, ks)]
    axes = tuple(range(-dims, 0))
    # cross-correlation = linear convolution with the flipped kernel
    xf = torch.fft.rfftn(x.float(), s=fsize, dim=axes)
    wf = torch.fft.rfftn(weight.flip(axes).float(), s=fsize, dim=axes)
    yf = torch.einsum("bi...,oi...->bo...", xf, wf)
    y = torch.fft.irfftn(yf, s=fsize, dim=axes)
    # causal: y[t] already uses x[t-K+1..t]; centred: shift by the half-width
    starts = [0 if causal else k // 2 for k in ks]
    for axis, (s, n) in enumerate(zip(starts, size)):
        y = y.narrow(2 + axis, s, n)
    y = y.to(x.dtype)
    if bias is not None:
        y = y + bias.view(1, -1, *([1] * dims))
    return y


def conv_with_kernel(x, weight, bias=None, *, causal: bool, use_fft: bool | None = None) -> torch.Tensor:
    """Convolve x with a sampled kernel; `use_fft=None` picks the path by estimated cost."""
    if causal and x.dim() != 3:
        raise ValueError("causal convolution is 1D only")
    if use_fft is None:
        use_fft = prefer_fft(x.shape[2:], weight.shape[2:])
    return (conv_fft if use_fft else conv_direct)(x, weight, bias, causal)


def prefer_fft(size, kernel) -> bool:
    """Rough cost model: direct ~ prod(size) * prod(kernel); FFT ~ prod(n) * log2(prod(n)) * c.

    The constant is set by bench/perf_conv.py (see results/perf/); it favours the direct
    path for small kernels, where cuDNN/oneDNN are far better tuned than the FFT.
    """
    import math

    direct = math.prod(size) * math.prod(kernel)
    n = math.prod(s + k - 1 for s, k in zip(size, kernel))
    fft = FFT_COST * n * math.log2(max(n, 2))
    return fft < direct


FFT_COST = 6.0  # direct-conv MACs per FFT "n log n" unit at the crossover; measured in bench/perf_conv.py
