"""Convolution with an explicitly sampled kernel: causal or centred, direct or FFT.

Conventions (shared by every method that samples its own kernel):
- weight has shape (C_out, C_in, K) or (C_out, C_in, Kh, Kw); cross-correlation as in F.conv.
- causal (1D): the last tap multiplies x[t], the first x[t-K+1]; output t never sees t' > t.
- centred ("same", 1D or 2D): odd kernel sides, output size equals input size.
- depthwise: a weight of shape (C, 1, ...) on an input of C > 1 channels convolves each channel
  with its own kernel (groups = C), as separable and state-space layers need.
The FFT path computes the same thing through a linear (zero-padded) convolution.
"""

from __future__ import annotations

import functools
import math

import torch
import torch.nn.functional as F
from torch.autograd.function import once_differentiable


def _fft_size(n: int) -> int:
    """The smallest size >= n of the form 2^a * c with a small odd part c.

    FFT libraries are slow on sizes with a large odd part: on MKL an rfft of 1125 = 9 * 125
    takes three times as long as one of 1152 = 128 * 9, one of 103 x 103 three times one of
    108 x 108 = (4 * 27)^2 (measured while writing bench/cost/perf_conv.py).
    """
    best = 1 << max(0, (n - 1).bit_length())
    for c in (3, 5, 7, 9, 15, 21, 27):
        m = c
        while m < n:
            m *= 2
        best = min(best, m)
    return best


def is_depthwise(x_shape, w_shape) -> bool:
    """Whether a (C, 1, ...) weight convolves each of the C > 1 input channels on its own."""
    channels = x_shape[1]
    if w_shape[1] == channels:
        return False
    if w_shape[1] != 1 or w_shape[0] != channels:
        raise ValueError(
            f"weight {tuple(w_shape)} fits neither {channels} input channels (C_out, {channels}, ...) "
            f"nor a depthwise convolution ({channels}, 1, ...)"
        )
    return True


def conv_direct(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, causal: bool) -> torch.Tensor:
    ks = weight.shape[2:]
    groups = x.shape[1] if is_depthwise(x.shape, weight.shape) else 1
    if causal:
        return F.conv1d(F.pad(x, (ks[0] - 1, 0)), weight, bias, groups=groups)
    if any(k % 2 == 0 for k in ks):
        raise ValueError(f"a centred convolution needs odd kernel sides, got {tuple(ks)}")
    conv = F.conv2d if x.dim() == 4 else F.conv1d
    return conv(x, weight, bias, padding=tuple(k // 2 for k in ks), groups=groups)


def _fft_sizes(size, ks, causal: bool) -> list[int]:
    """Circular-convolution sizes whose outputs equal the linear convolution's where we keep them.

    Causal keeps outputs 0..L-1 of x * flipped kernel: no wrap-around needs n >= L + K - 1.
    Centred keeps K//2 .. K//2 + H - 1, and the wrap-around only reaches below that: n >= H + K//2
    (and n >= K, so the whole kernel, and its gradient, fit).
    """
    return [_fft_size(s + k - 1 if causal else max(s + k // 2, k)) for s, k in zip(size, ks)]


def _spectrum(t: torch.Tensor, fsize: list[int], order: tuple[int, int]) -> torch.Tensor:
    """rfftn of t (p, q, *spatial) zero-padded to fsize, laid out frequency-major with the frequencies
    flattened: (F, p, q) for order (0, 1), (F, q, p) for (1, 0), contiguous for the batched matmul.

    One multi-dimensional transform over contiguous trailing dims, then one copy: MKL is
    several times slower transforming one axis at a time or along a leading axis.
    """
    dims = len(fsize)
    t = torch.fft.rfftn(t, s=fsize, dim=tuple(range(2, 2 + dims)))
    t = t.permute(*range(2, 2 + dims), *order).contiguous()
    return t.view(-1, *t.shape[dims:]) if dims > 1 else t


def _from_spectrum(t: torch.Tensor, fsize: list[int], starts, sizes) -> torch.Tensor:
    """Inverse of `_spectrum`: (F, p, q) -> (p, q, *sizes), the outputs from `starts` on."""
    dims = len(fsize)
    t = t.permute(1, 2, 0)
    if dims > 1:
        t = t.view(*t.shape[:2], *fsize[:-1], fsize[-1] // 2 + 1)
    return _crop(torch.fft.irfftn(t, s=fsize, dim=tuple(range(2, 2 + dims))), starts, sizes)


def _crop(t: torch.Tensor, starts, sizes) -> torch.Tensor:
    """t (p, q, *n) narrowed to `sizes` from `starts` on, as one view; t is a transform's fresh output."""
    dims = t.dim() - 2
    if list(starts) == [0] * dims and list(sizes) == list(t.shape[2:]):
        return t
    if dims == 1:
        return t.narrow(2, starts[0], sizes[0])
    # one strided view instead of a narrow per axis (a fresh tensor: storage offset 0)
    offset = sum(s * st for s, st in zip(starts, t.stride()[2:]))
    return t.as_strided((*t.shape[:2], *sizes), t.stride(), offset)


@functools.lru_cache(maxsize=64)
def _dft(k: int, n: int, half: bool, inverse: bool, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """The n-point DFT between k samples and the frequencies (the first n//2 + 1 if `half`), in float64.

    Forward (k, F): exp(-2 pi i a u / n). Inverse (F, k): exp(+2 pi i u a / n) / n; a real
    inverse (`half`) counts each bin that stands for two (not DC, not Nyquist) twice, and
    its caller keeps the real part.
    """
    f = n // 2 + 1 if half else n
    phase = 2 * math.pi * torch.outer(torch.arange(k, dtype=torch.float64), torch.arange(f, dtype=torch.float64)) / n
    if not inverse:
        return torch.polar(torch.ones_like(phase), -phase).to(device, dtype)
    mat = torch.polar(torch.ones_like(phase), phase).T / n
    if half:
        weights = torch.full((f, 1), 2.0, dtype=torch.float64)
        weights[0] = 1.0
        if n % 2 == 0:
            weights[-1] = 1.0
        mat = mat * weights
    return mat.to(device, dtype)


@functools.lru_cache(maxsize=64)
def _flipped_dft(ks: tuple, fsize: tuple, inverse: bool, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """The whole multi-dimensional DFT of a flipped kernel as one matrix (the Kronecker product of the
    per-axis ones, their sample axes reversed, the last axis the real half).

    Forward (F, K): row u, column a (row-major flattenings of the frequencies and the unflipped taps) is
    prod_d exp(-2 pi i (k_d - 1 - a_d) u_d / n_d). Inverse (K, F): prod_d of `_dft`'s inverse entries at
    (u_d, k_d - 1 - a_d), whose real part is the flipped kernel's gradient.
    """
    dims = len(fsize)
    mats = []
    for axis, (k, n) in enumerate(zip(ks, fsize)):
        half = axis == dims - 1
        if inverse:
            mats.append(_dft(k, n, half, True, torch.complex128, torch.device("cpu")).flip(1).T)  # (k, F)
        else:
            mats.append(_dft(k, n, half, False, torch.complex128, torch.device("cpu")).flip(0))  # (k, F)
    mat = functools.reduce(torch.kron, mats)  # (K, F)
    return (mat if inverse else mat.T).contiguous().to(device, dtype)


def _small_kernel(ks, fsize) -> bool:
    """Whether the kernel's DFT by one matrix product (`_flipped_dft`: prod(ks) x prod(freqs) complex
    multiply-adds per channel pair) beats an FFT of the zero-padded kernel: true for kernels far smaller than
    the transform (FlexConv's cropped ones), where an FFT mostly transforms padding."""
    fft = 2.5 * math.prod(fsize) * math.log2(max(math.prod(fsize), 2))
    dft = 8 * math.prod(ks) * math.prod(fsize[:-1]) * (fsize[-1] // 2 + 1)
    return dft < 2 * fft  # a small matmul runs about twice as many flops per second as the FFT


def _complex(dtype: torch.dtype) -> torch.dtype:
    return torch.complex128 if dtype == torch.float64 else torch.complex64


def _kernel_spectrum(w: torch.Tensor, fsize: list[int]) -> torch.Tensor:
    """`_spectrum(w.flip(spatial), fsize, (1, 0))` for a small kernel w (cout, cin, *k), unflipped: one
    matrix product with the whole flipped DFT, (F, K) @ (K, cin * cout) -> (F, cin, cout)."""
    dims = len(fsize)
    cout, cin, ks = w.shape[0], w.shape[1], tuple(w.shape[2:])
    mat = _flipped_dft(ks, tuple(fsize), False, _complex(w.dtype), w.device)
    t = w.permute(*range(2, 2 + dims), 1, 0).reshape(math.prod(ks), cin * cout).to(mat.dtype)
    return torch.mm(mat, t).view(-1, cin, cout)


def _kernel_from_spectrum(t: torch.Tensor, fsize: list[int], ks) -> torch.Tensor:
    """The gradient of the unflipped small kernel (cout, cin, *ks) from that of its spectrum (F, cin, cout)."""
    dims = len(fsize)
    cin, cout = t.shape[-2:]
    mat = _flipped_dft(tuple(ks), tuple(fsize), True, t.dtype, t.device)
    g = torch.mm(mat, t.reshape(t.shape[0], cin * cout)).real.view(*ks, cin, cout)
    return g.permute(dims + 1, dims, *range(dims))


class _FFTConv(torch.autograd.Function):
    """conv_fft's forward and backward, both as products of saved spectra.

    y = crop(x (*) w') over circular convolutions of fsize points (w' = the flipped kernel);
    with G the output gradient padded back into that circle, dL/dx = G (star) w' and
    dL/dw' = G (star) x are circular correlations: conj() of the saved spectra. Autograd
    through torch.fft would instead run full complex transforms for every real one in the
    backward, and copy at every pad, crop and permute. The channel product is a matrix
    product per frequency (one bmm over the flattened frequencies), or an elementwise one for a
    depthwise kernel. A small kernel's flip is folded into its DFT matrices.
    """

    @staticmethod
    def forward(ctx, x: torch.Tensor, weight: torch.Tensor, causal: bool) -> torch.Tensor:
        dims = x.dim() - 2
        size, ks = tuple(x.shape[2:]), tuple(weight.shape[2:])
        fsize = _fft_sizes(size, ks, causal)
        # causal: y[t] already uses x[t-K+1..t]; centred: shift by the half-width
        starts = [0 if causal else k // 2 for k in ks]
        # at least float32: half precision would wreck the spectral product (torch.promote_types, without its op)
        dtype = torch.float64 if x.dtype == torch.float64 else torch.float32
        depthwise = is_depthwise(x.shape, weight.shape)
        small = _small_kernel(ks, fsize)
        if depthwise:  # an elementwise product: the spectra stay channel-major, (b, c, *F) and (1, c, *F)
            spatial = tuple(range(2, 2 + dims))
            xf = torch.fft.rfftn(x.to(dtype), s=fsize, dim=spatial)
            if small:
                wf = _kernel_spectrum(weight.to(dtype), fsize).permute(1, 2, 0).reshape(xf.shape[1:]).unsqueeze(0)
            else:
                wf = torch.fft.rfftn(weight.flip(spatial).to(dtype), s=fsize, dim=spatial).transpose(0, 1)
            y = _crop(torch.fft.irfftn(xf * wf, s=fsize, dim=spatial), starts, size)
        else:
            xf = _spectrum(x.to(dtype), fsize, (0, 1))  # (F, b, cin)
            if small:
                wf = _kernel_spectrum(weight.to(dtype), fsize)  # (F, cin, cout)
            else:
                wf = _spectrum(weight.flip(tuple(range(2, 2 + dims))).to(dtype), fsize, (1, 0))
            y = _from_spectrum(torch.bmm(xf, wf), fsize, starts, size)
        ctx.save_for_backward(xf, wf)
        ctx.geometry = (fsize, starts, size, ks, small, depthwise, x.dtype, weight.dtype, dtype)
        return y.to(x.dtype)

    @staticmethod
    @once_differentiable  # the saved spectra carry no graph: second derivatives would be wrong
    def backward(ctx, grad: torch.Tensor):
        xf, wf = ctx.saved_tensors
        fsize, starts, size, ks, small, depthwise, x_dtype, w_dtype, dtype = ctx.geometry
        dims = len(fsize)
        pad = []
        for start, n, total in zip(reversed(starts), reversed(size), reversed(fsize)):
            pad += [start, total - start - n]
        if depthwise:
            return _FFTConv._depthwise_backward(ctx, F.pad(grad.to(dtype), pad), xf, wf)
        gf = _spectrum(F.pad(grad.to(dtype), pad), fsize, (0, 1))  # (F, b, cout)
        gx = gw = None
        if ctx.needs_input_grad[0]:
            gx = _from_spectrum(torch.bmm(gf, wf.transpose(-1, -2).conj()), fsize, [0] * dims, size).to(x_dtype)
        if ctx.needs_input_grad[1]:
            gwf = torch.bmm(xf.transpose(-1, -2).conj(), gf)
            if small:
                gw = _kernel_from_spectrum(gwf, fsize, ks)
            else:
                gw = _from_spectrum(gwf, fsize, [0] * dims, ks).transpose(0, 1).flip(tuple(range(2, 2 + dims)))
            gw = gw.to(w_dtype)
        return gx, gw, None

    @staticmethod
    def _depthwise_backward(ctx, grad: torch.Tensor, xf: torch.Tensor, wf: torch.Tensor):
        """The backward of a depthwise kernel on the channel-major spectra (b, c, *F) and (1, c, *F)."""
        fsize, starts, size, ks, small, depthwise, x_dtype, w_dtype, dtype = ctx.geometry
        spatial = tuple(range(2, 2 + len(fsize)))
        gf = torch.fft.rfftn(grad, s=fsize, dim=spatial)
        gx = gw = None
        if ctx.needs_input_grad[0]:
            gx = _crop(torch.fft.irfftn(gf * torch.conj_physical(wf), s=fsize, dim=spatial), [0] * len(fsize), size)
            gx = gx.to(x_dtype)
        if ctx.needs_input_grad[1]:
            gwf = (torch.conj_physical(xf) * gf).sum(0)  # (c, *F), summed over the batch
            if small:
                gw = _kernel_from_spectrum(gwf.reshape(gwf.shape[0], -1).T.unsqueeze(1), fsize, ks)
            else:
                gw = _crop(torch.fft.irfftn(gwf.unsqueeze(1), s=fsize, dim=spatial), [0] * len(fsize), ks)
                gw = gw.flip(spatial)
            gw = gw.to(w_dtype)
        return gx, gw, None


def conv_fft(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, causal: bool) -> torch.Tensor:
    if not causal and any(k % 2 == 0 for k in weight.shape[2:]):
        raise ValueError(f"a centred convolution needs odd kernel sides, got {tuple(weight.shape[2:])}")
    with torch.autocast(x.device.type, enabled=False):
        y = _FFTConv.apply(x, weight, causal)
    if bias is not None:
        y = y + bias.view(1, -1, *([1] * (x.dim() - 2)))
    return y


def conv_with_kernel(x, weight, bias=None, *, causal: bool, use_fft: bool | None = None) -> torch.Tensor:
    """Convolve x with a sampled kernel; `use_fft=None` picks the path by estimated cost."""
    if causal and x.dim() != 3:
        raise ValueError("causal convolution is 1D only")
    if use_fft is None:
        use_fft = prefer_fft(x.shape, weight.shape, causal)
    return (conv_fft if use_fft else conv_direct)(x, weight, bias, causal)


def direct_cost(x_shape, w_shape) -> float:
    """Multiply-adds of the direct convolution's forward pass."""
    b, (cout, cin) = x_shape[0], w_shape[:2]
    return b * cin * cout * math.prod(x_shape[2:]) * math.prod(w_shape[2:])


def fft_cost(x_shape, w_shape, causal: bool = False) -> float:
    """Flops of the FFT path's forward pass: three transforms and the spectral channel product.

    A real transform of N points costs about 2.5 N log2 N flops; each of the b*cin*cout
    products over the N/2 complex frequencies costs 4 real multiply-adds (cin = 1 for a
    depthwise kernel, whose input still has cout channels to transform).
    """
    b, (cout, cin) = x_shape[0], w_shape[:2]
    n = math.prod(_fft_sizes(x_shape[2:], w_shape[2:], causal))
    transforms = (b * x_shape[1] + cin * cout + b * cout) * 2.5 * n * math.log2(max(n, 2))
    return transforms + 4 * b * cin * cout * n / 2


def prefer_fft(x_shape, w_shape, causal: bool = False) -> bool:
    """True when the FFT path is expected to be faster: FFT_COST * fft_cost < direct_cost, and a 1D kernel has
    at least MIN_FFT_TAPS_1D taps."""
    if len(x_shape) == 3 and w_shape[-1] < MIN_FFT_TAPS_1D:
        return False
    factor = (FFT_COST_DEPTHWISE if is_depthwise(x_shape, w_shape) else FFT_COST)[len(x_shape) - 2]
    return factor * fft_cost(x_shape, w_shape, causal) < direct_cost(x_shape, w_shape)


# time of one FFT-path flop in direct-conv multiply-adds, per spatial dimensionality, fitted
# by bench/cost/perf_conv.py (forward + backward, CPU; results/perf/fft_cost_cpu.csv): medians
# 1.1-1.4 in 1D; 2.6-2.8 in 2D at 36 channels, 3-5 at 8-16 channels, where the transforms
# weigh more than the model counts
FFT_COST = {1: 1.3, 2: 3.0}
# below 16 taps a 1D direct convolution was never slower (results/perf/fft_cost_cpu.csv: 9 taps at
# L = 200 and 1024, and depthwise below); at short lengths the model's FFT estimate is low: at L = 40,
# 16 channels, batch 64, 7 taps took 0.9 ms direct and 1.8 ms by FFT (forward + backward, 1 thread)
MIN_FFT_TAPS_1D = 16
# the same for depthwise kernels: a grouped direct convolution runs several times slower per
# multiply-add than a dense one, the FFT path has no channel product to speak of. Measured while
# adding them (1 thread, forward + backward, batch 64): 8 x 16^2 with 17^2 kernels direct 75 ms,
# FFT 13 ms (3^2: 1.2 vs 7.7 ms); 30 x 784 with 60 taps 95 vs 26 ms (9 taps: 23 vs 26 ms)
FFT_COST_DEPTHWISE = {1: 0.3, 2: 0.45}


def bucket_size(n: int) -> int:
    """The smallest of 1, 2, 3, 4, 6, 8, 12, 16, 24, ... (two per octave) that is >= n.

    A compiled step recompiles whenever a shape changes: a kernel that grows a tap at a time is
    sampled on a crop rounded up to these sizes, so it changes shape a few times per run, not at every
    tap, and never samples more than 1.5x (per axis) of what it needs."""
    if n <= 2:
        return max(n, 0)
    power = 1 << (n - 1).bit_length()
    return 3 * power // 4 if 3 * power // 4 >= n else power


def bucketed_crop(crop: list[tuple[int, int]], grid: tuple[int, ...], causal: bool) -> list[tuple[int, int]]:
    """Per axis, the [start, stop) crop grown to a bucket of taps (bucket_size), within the grid: causal
    crops grow into the past (they end at the present), centred ones by the same count on both sides."""
    out = []
    for (start, stop), k in zip(crop, grid):
        if causal:
            size = min(stop, bucket_size(stop - start))
            out.append((stop - size, stop))
        else:
            half = (k - 1) // 2
            n = min(half, bucket_size(half - start))
            out.append((half - n, half + n + 1))
    return out
