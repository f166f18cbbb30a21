"""One batched kernel-net call for all the continuous-kernel layers of a network (issue 23).

A FlexNet has one CKConv or FlexConv per conv, each sampling its own small kernel net on the
same grid: one small MLP per layer is a few hundred tiny ops per layer and step, and on a GPU
each op is a kernel launch. `link(model)` gives the layers of one network a shared `KernelBank`;
in training, the first layer that needs its kernel has the bank evaluate every layer's kernel net
at once (the nets' weights stacked, batched matmuls), on the union of their crops, with their
masks; each layer then takes its own kernel, cut to its own crop.

Nothing else changes: the parameters stay the layers' own (state dicts, optimizer groups and
hooks as before), the kernel nets are pointwise in the position, so a kernel evaluated with its
neighbours on a larger grid and cut to its crop is the kernel the layer computes alone (to float
rounding; tests/test_continuous_kernels.py checks it). Layers whose nets differ in kind or size,
grid, or resolution ratio go to separate batches; a batch of one is the layer's own call. In eval
mode without gradients each layer keeps its cached kernel (methods/ckconv.py).
"""

from __future__ import annotations

import torch
from torch import nn

from methods.kernelnets import MFN, SIREN


class _Stack(torch.autograd.Function):
    """torch.stack whose backward is one unbind (views), not one select per input."""

    @staticmethod
    def forward(ctx, dim: int, *tensors: torch.Tensor) -> torch.Tensor:
        ctx.dim = dim
        return torch.stack(tensors, dim)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        return (None, *grad.unbind(ctx.dim))


class _Cat(torch.autograd.Function):
    """torch.cat whose backward is one split (views), not one slice per input."""

    @staticmethod
    def forward(ctx, dim: int, *tensors: torch.Tensor) -> torch.Tensor:
        ctx.dim, ctx.sizes = dim, [t.shape[dim] for t in tensors]
        return torch.cat(tensors, dim)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        return (None, *grad.split(ctx.sizes, ctx.dim))


def stack(tensors, dim: int = 0) -> torch.Tensor:
    """torch.stack of the layers' parameters: the same values and gradients; its backward is one aten op
    instead of one per tensor (the bank stacks every layer's parameters in every step)."""
    return _Stack.apply(dim, *tensors)


def cat(tensors, dim: int = 0) -> torch.Tensor:
    """torch.cat, with one split as its backward (see `stack`)."""
    return _Cat.apply(dim, *tensors)


def net_signature(net: nn.Module):
    if isinstance(net, MFN):
        return ("mfn", net.filter, tuple(net.A.shape), tuple(net.W.shape))
    if isinstance(net, SIREN) and not any(hasattr(lin, "parametrizations") for lin in net.linears):
        return ("siren", net.omega_0, tuple(tuple(lin.weight.shape) for lin in net.linears[:-1]))
    return None  # not batched


def _outputs(
    weights: list[torch.Tensor], biases: list[torch.Tensor], h: torch.Tensor, scale: torch.Tensor | None = None
) -> list[torch.Tensor]:
    """Per net b, W_b h_b^T + bias_b, shape (out_b, N); nets with equal output sizes in one batched product.
    `scale` (B, N), if given, multiplies each net's outputs (a mask: one product per batch, not per net)."""
    out: list = [None] * len(weights)
    groups: dict = {}
    for i, w in enumerate(weights):
        groups.setdefault(tuple(w.shape), []).append(i)
    for idx in groups.values():
        if len(idx) == 1:
            out[idx[0]] = torch.addmm(biases[idx[0]].unsqueeze(1), weights[idx[0]], h[idx[0]].t())
            if scale is not None:
                out[idx[0]] = out[idx[0]] * scale[idx[0]]
            continue
        sel = h if len(idx) == h.shape[0] else h[idx[0] : idx[-1] + 1]
        if sel.shape[0] != len(idx):  # not a contiguous run of nets (no index tensor: no host-to-device copy)
            sel = stack([h[i] for i in idx])
        res = torch.baddbmm(stack([biases[i] for i in idx]).unsqueeze(2),
                            stack([weights[i] for i in idx]), sel.transpose(1, 2))  # fmt: skip
        if scale is not None:
            s = scale if len(idx) == scale.shape[0] else scale[idx[0] : idx[-1] + 1]
            if s.shape[0] != len(idx):
                s = stack([scale[i] for i in idx])
            res = res * s.unsqueeze(1)
        for i, r in zip(idx, res.unbind(0)):
            out[i] = r
    return out


def _mfn_hidden(nets: list[MFN], pos: torch.Tensor) -> torch.Tensor:
    """MFN.forward's hidden state for every net at once, shape (B, N, H)."""
    A = stack([n.A for n in nets])  # (B, F, H, D)
    c = stack([n.c for n in nets])  # (B, F, H)
    g = torch.sin(torch.einsum("nd,bfhd->bfnh", pos, A) + c.unsqueeze(2))  # (B, F, N, H)
    if nets[0].filter != "fourier":
        mu = stack([n.mu for n in nets])  # (B, F, H, D)
        gamma = stack([n.gamma for n in nets])  # (B, F, H, D) or (B, F, H, 1)
        diff = pos[:, None, :] - mu.unsqueeze(2)  # (B, F, N, H, D)
        g = g * torch.exp(-0.5 * (gamma.unsqueeze(2) * diff).square().sum(-1))
    W = stack([n.W for n in nets])  # (B, L, H, H)
    b = stack([n.b for n in nets])  # (B, L, H)
    gs, Ws, bs = g.unbind(1), W.unbind(1), b.unbind(1)
    h = gs[0]
    for i in range(len(Ws)):
        h = torch.baddbmm(bs[i].unsqueeze(1), h, Ws[i].transpose(1, 2)) * gs[i + 1]
    return h


def _siren_hidden(nets: list[SIREN], pos: torch.Tensor) -> torch.Tensor:
    omega = nets[0].omega_0
    h = pos.unsqueeze(0).expand(len(nets), *pos.shape)
    for i in range(len(nets[0].linears) - 1):
        W = stack([n.linears[i].weight for n in nets])
        b = stack([n.linears[i].bias for n in nets])
        h = torch.sin(omega * torch.baddbmm(b.unsqueeze(1), h, W.transpose(1, 2)))
    return h


def batched_net(nets: list[nn.Module], pos: torch.Tensor, scale: torch.Tensor | None = None) -> list[torch.Tensor]:
    """Each net's output at `pos` (out_features, N), as net(pos) gives it, from one batched evaluation; times
    `scale[b]` (N,) if a scale (B, N) is given."""
    if isinstance(nets[0], MFN):
        h = _mfn_hidden(nets, pos)
        return _outputs([n.W_out for n in nets], [n.b_out for n in nets], h, scale)
    h = _siren_hidden(nets, pos)
    return _outputs([n.linears[-1].weight for n in nets], [n.linears[-1].bias for n in nets], h, scale)


class KernelBank:
    """The continuous-kernel layers of one network; during a forward of the network, hands each its kernel
    from one batched evaluation (the network's forward hooks open and close that window)."""

    def __init__(self, layers: list[nn.Module]):
        self.layers = layers
        self.active = False
        self._kernels: dict[int, torch.Tensor] = {}  # id(layer) -> kernel, each taken once

    def start(self, *_) -> None:
        self._kernels, self.active = {}, True

    def stop(self, *_) -> None:
        self._kernels, self.active = {}, False

    def kernel(self, layer) -> torch.Tensor:
        kernel = self._kernels.pop(id(layer), None)
        if kernel is None:  # the first layer of this forward (or one called twice): evaluate them all
            self._kernels = self._compute()
            kernel = self._kernels.pop(id(layer))
        return kernel

    def _compute(self) -> dict[int, torch.Tensor]:
        groups: dict = {}
        for layer in self.layers:
            groups.setdefault((type(layer), layer.batch_key()), []).append(layer)
        out = {}
        for (kind, _), group in groups.items():
            kernels = [group[0].sample_kernel()] if len(group) == 1 else kind.sample_together(group)
            out.update({id(layer): k for layer, k in zip(group, kernels)})
        return out


def kernel_of(layer: nn.Module) -> torch.Tensor:
    """The layer's kernel: from its network's bank inside the network's forward, else its own call."""
    bank = layer.__dict__.get("_bank")
    return bank.kernel(layer) if bank is not None and bank.active else layer.sample_kernel()


def sample_continuous(layers: list[nn.Module]) -> list[torch.Tensor]:
    """`layer.sample_kernel()` for every CKConv-like layer (same grid, same kind of kernel net), in one batched
    call."""
    first = layers[0]
    crops = [layer.sampling_crop() for layer in layers]  # crop(), or its shape bucket when compiled
    union = [(min(c[d][0] for c in crops), max(c[d][1] for c in crops)) for d in range(first.dim)]
    pos, axes = first._grid_positions(union, first.bias.device, first.bias.dtype)
    sizes = [stop - start for start, stop in union]
    with torch.autocast(first.bias.device.type, enabled=False):
        masks = type(first).batched_envelope(layers, axes)  # (B, *sizes) or None
        # each net's output times its mask, in the batched products
        scale = None if masks is None else masks.reshape(len(layers), -1)
        raw = batched_net([layer.net for layer in layers], pos, scale)
        out = []
        for b, (layer, crop) in enumerate(zip(layers, crops)):
            kernel = raw[b].view(layer.cout, layer.cin, *sizes)
            if layer.rate_norm != 1.0:
                kernel = kernel * layer.rate_norm
            for d, ((start, stop), (u0, _)) in enumerate(zip(crop, union)):
                if stop - start != sizes[d]:
                    kernel = kernel.narrow(2 + d, start - u0, stop - start)
            keep = layer.bucket_keep(kernel.dtype)
            out.append(kernel if keep is None else kernel * keep)
    return out


def link(model: nn.Module) -> int:
    """Give the layers of `model` that can sample their kernels together (a `sample_together` static method,
    a `batch_key()` that is not None: layers of one type and key go in one batch) one shared bank, used during
    `model`'s forward; returns how many layers share it (0: fewer than two)."""
    layers = [m for m in model.modules() if callable(getattr(m, "sample_together", None)) and m.batch_key() is not None]
    if len(layers) < 2:
        return 0
    bank = KernelBank(layers)
    for layer in layers:
        layer.__dict__["_bank"] = bank  # not a submodule: the state dict stays the layers' own
    model.register_forward_pre_hook(bank.start)
    model.register_forward_hook(bank.stop)
    return len(layers)
