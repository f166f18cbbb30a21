"""Convolution with an explicitly sampled kernel: causal or centred, direct or FFT.

Conventions (shared by every method that samples its own kernel):
- weight has shape (C_out, C_in, K) or (C_out, C_in, Kh, Kw); cross-correlation as in F.conv.
- causal (1D): the last tap multiplies x[t], the first x[t-K+1]; output t never sees t' > t.
- centred ("same", 1D or 2D): odd kernel sides, output size equals input size.
The FFT path computes the same thing through a linear (zero-padded) convolution.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def _fft_size(n: int) -> int:
    """The smallest size >= n of the form 2^a * c, c in {1, 3, 5, 9}.

    FFT libraries are slow on sizes with a large odd part: an rfft of 1125 = 9 * 125 takes
    about twice as long as one of 1152 = 128 * 9 (MKL, measured in bench/perf_conv.py).
    """
    best = 1 << max(0, (n - 1).bit_length())
    for c in (3, 5, 9):
        m = c
        while m < n:
            m *= 2
        best = min(best, m)
    return best


def conv_direct(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, causal: bool) -> torch.Tensor:
    ks = weight.shape[2:]
    if causal:
        return F.conv1d(F.pad(x, (ks[0] - 1, 0)), weight, bias)
    if any(k % 2 == 0 for k in ks):
        raise ValueError(f"a centred convolution needs odd kernel sides, got {tuple(ks)}")
    conv = F.conv2d if x.dim() == 4 else F.conv1d
    return conv(x, weight, bias, padding=tuple(k // 2 for k in ks))


class _SpectralProduct(torch.autograd.Function):
    """Batched complex matmul (F, b, cin) x (F, cin, cout) -> (F, b, cout), with its own backward.

    Autograd's bmm backward receives the gradient in whatever layout the next op left it;
    for a permuted one, CPU complex bmm copies matrix by matrix (thousands of small
    copies). Here every operand reaches the batched gemm whole.
    """

    @staticmethod
    def forward(ctx, xc: torch.Tensor, wc: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(xc, wc)
        return torch.bmm(xc, wc)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        xc, wc = ctx.saved_tensors
        grad = grad.contiguous()
        gx = torch.bmm(grad, wc.transpose(1, 2).conj()) if ctx.needs_input_grad[0] else None
        gw = torch.bmm(xc.transpose(1, 2).conj(), grad) if ctx.needs_input_grad[1] else None
        return gx, gw


def _spectral_matmul(xf: torch.Tensor, wf: torch.Tensor) -> torch.Tensor:
    """yf[b, o, f] = sum_i xf[b, i, f] * wf[o, i, f]: one batched matmul over the frequencies."""
    b, cin, *freqs = xf.shape
    cout = wf.shape[0]
    xc = xf.reshape(b, cin, -1).permute(2, 0, 1).contiguous()
    wc = wf.reshape(cout, cin, -1).permute(2, 1, 0).contiguous()
    return _SpectralProduct.apply(xc, wc).permute(1, 2, 0).reshape(b, cout, *freqs)


def conv_fft(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, causal: bool) -> torch.Tensor:
    dims = x.dim() - 2
    ks, size = weight.shape[2:], x.shape[2:]
    if not causal and any(k % 2 == 0 for k in ks):
        raise ValueError(f"a centred convolution needs odd kernel sides, got {tuple(ks)}")
    fsize = [_fft_size(n + k - 1) for n, k in zip(size, ks)]
    axes = tuple(range(-dims, 0))
    # at least float32, and no autocast: half precision would wreck the spectral product
    dtype = torch.promote_types(x.dtype, torch.float32)
    with torch.autocast(x.device.type, enabled=False):
        # cross-correlation = linear convolution with the flipped kernel
        xf = torch.fft.rfftn(x.to(dtype), s=fsize, dim=axes)
        wf = torch.fft.rfftn(weight.flip(axes).to(dtype), s=fsize, dim=axes)
        y = torch.fft.irfftn(_spectral_matmul(xf, wf), s=fsize, dim=axes)
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
        use_fft = prefer_fft(x.shape, weight.shape)
    return (conv_fft if use_fft else conv_direct)(x, weight, bias, causal)


def direct_cost(x_shape, w_shape) -> float:
    """Multiply-adds of the direct convolution's forward pass."""
    b, (cout, cin) = x_shape[0], w_shape[:2]
    return b * cin * cout * math.prod(x_shape[2:]) * math.prod(w_shape[2:])


def fft_cost(x_shape, w_shape) -> float:
    """Flops of the FFT path's forward pass: three transforms and the spectral channel product.

    A real transform of N points costs about 2.5 N log2 N flops; each of the b*cin*cout
    products over the N/2 complex frequencies costs 4 real multiply-adds.
    """
    b, (cout, cin) = x_shape[0], w_shape[:2]
    n = math.prod(_fft_size(s + k - 1) for s, k in zip(x_shape[2:], w_shape[2:]))
    transforms = (b * cin + cin * cout + b * cout) * 2.5 * n * math.log2(max(n, 2))
    return transforms + 4 * b * cin * cout * n / 2


def prefer_fft(x_shape, w_shape) -> bool:
    """True when the FFT path is expected to be faster: FFT_COST * fft_cost < direct_cost."""
    return FFT_COST * fft_cost(x_shape, w_shape) < direct_cost(x_shape, w_shape)


# time of one FFT-path flop in direct-conv multiply-adds: fitted by bench/perf_conv.py
# (forward + backward, 2 CPU threads; see results/perf/conv_cpu.csv)
FFT_COST = 2.0
