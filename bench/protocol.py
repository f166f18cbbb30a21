"""The one training protocol every method runs under.

AdamW with per-group learning rates (from the modules' `param_groups` hooks), linear
warm-up then cosine decay per step, optional gradient clipping, bf16 autocast on CUDA
only. The checkpoint with the best *validation* metric is selected; the test set is
evaluated once, on that checkpoint.
"""

from __future__ import annotations

import math
import random
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from bench import checkpoint, fastpath
from bench.batches import batches
from bench.config import RunConfig
from bench.errors import Diverged
from methods import build_model, hooks

LOOP_STATE = ("best", "best_state", "best_epoch", "history", "train_time", "samples")


def seed_everything(seed: int) -> torch.Generator:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    return torch.Generator().manual_seed(seed)


def loss_fn(out: torch.Tensor, y: torch.Tensor, metric: str) -> torch.Tensor:
    return F.mse_loss(out.float(), y.float()) if metric == "mse" else F.cross_entropy(out.float(), y)


@torch.no_grad()
def evaluate(model, dataset, metric: str, batch_size: int, device, autocast) -> dict[str, float]:
    """Mean loss and the metric: accuracy in %, or mean squared error."""
    model.eval()
    total, loss_sum, correct = 0, 0.0, 0
    for x, y in batches(dataset, batch_size, shuffle=False, generator=None, device=device):
        with autocast():
            out = model(x)
        loss_sum += loss_fn(out, y, metric).item() * len(y)
        correct += (out.argmax(-1) == y).sum().item() if metric == "accuracy" else 0
        total += len(y)
    loss = loss_sum / total
    return {"loss": loss, "metric": 100.0 * correct / total if metric == "accuracy" else loss}


def lr_lambda(warmup_steps: int, total_steps: int, min_factor: float):
    def factor(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / warmup_steps
        progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
        return min_factor + (1 - min_factor) * 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))

    return factor


def train_run(cfg: RunConfig, data, device: str, progress: bool = True, ckpt: Path | None = None, model=None) -> dict:
    """Train one run; returns the run record's results (metrics, history, kernel sizes, timings).

    With `ckpt`, the state is saved after every epoch and a run killed mid-way resumes there.
    With `model`, that model is trained further instead of a new one (cross-resolution fine-tuning).
    """
    tc, metric = cfg.train, data.task.metric
    gen = seed_everything(cfg.seed)
    model = (build_model(cfg.method, data.task, **cfg.model) if model is None else model).to(device)
    model, data, fast = fastpath.prepare(cfg, model, data, device)  # CUDA: TF32, cudnn.benchmark, data on GPU
    optimizer = torch.optim.AdamW(hooks.param_groups(model, tc.lr, tc.weight_decay))
    epochs = max(1, round(tc.epochs * cfg.budget))
    steps = math.ceil(len(data.train) / tc.batch_size)
    steps = min(steps, tc.max_steps_per_epoch) if tc.max_steps_per_epoch else steps
    # --budget shrinks the whole schedule, warm-up included, so a shortened run is the same curve
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lr_lambda(round(tc.warmup_epochs * cfg.budget * steps), epochs * steps, tc.min_lr_factor)
    )
    cuda = torch.device(device).type == "cuda"
    use_amp = tc.amp and cuda

    def autocast():
        return torch.autocast("cuda", dtype=torch.bfloat16, enabled=use_amp)

    higher_better = metric == "accuracy"
    best, best_state, best_epoch, history = None, None, -1, []
    train_time, samples, first_epoch = 0.0, 0, 0
    if ckpt and (saved := checkpoint.load(ckpt, model, optimizer, schedule, gen)):
        best, best_state, best_epoch, history, train_time, samples = (saved[k] for k in LOOP_STATE)
        first_epoch = len(history)
    for epoch in tqdm(range(first_epoch, epochs), desc=cfg.label, leave=False, disable=not progress):
        model.train()
        start, loss_sum, seen = time.perf_counter(), 0.0, 0
        for step, (x, y) in enumerate(batches(data.train, tc.batch_size, shuffle=True, generator=gen, device=device)):
            if step >= steps:
                break
            if data.augment is not None:
                x, y = data.augment(x, y, gen)
            with autocast():
                loss = loss_fn(model(x), y, metric)
            reg = hooks.regularization_loss(model)
            total = loss if reg is None else loss + reg
            if not torch.isfinite(total):
                raise Diverged(f"loss became {total.item()} at epoch {epoch}, step {step}")
            optimizer.zero_grad(set_to_none=True)
            total.backward()
            if tc.grad_clip:
                torch.nn.utils.clip_grad_norm_(model.parameters(), tc.grad_clip)
            optimizer.step()
            schedule.step()
            hooks.post_step(model)
            loss_sum, seen = loss_sum + loss.item() * len(y), seen + len(y)
        if cuda:
            torch.cuda.synchronize()
        train_time, samples = train_time + time.perf_counter() - start, samples + seen
        val = evaluate(model, data.val, metric, tc.eval_batch_size, device, autocast)
        history.append(
            {"epoch": epoch, "train_loss": loss_sum / max(seen, 1), "val_loss": val["loss"], "val": val["metric"],
             "lr": optimizer.param_groups[0]["lr"], "kernel_sizes": hooks.kernel_sizes(model)}
        )  # fmt: skip
        if best is None or (val["metric"] > best if higher_better else val["metric"] < best):
            best, best_epoch = val["metric"], epoch
            best_state = {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}
        if ckpt:
            loop = (best, best_state, best_epoch, history, train_time, samples)
            checkpoint.save(ckpt, model, optimizer, schedule, gen, dict(zip(LOOP_STATE, loop)))
    model.load_state_dict(best_state)
    splits = {"train": data.train, "val": data.val, "test": data.test}
    final = {name: evaluate(model, ds, metric, tc.eval_batch_size, device, autocast) for name, ds in splits.items()}
    return {
        "metric": metric,
        "higher_is_better": higher_better,
        **{f"{name}_{metric}": r["metric"] for name, r in final.items()},
        **{f"{name}_loss": r["loss"] for name, r in final.items()},
        "best_epoch": best_epoch,
        "epochs_run": epochs,
        "resumed_at_epoch": first_epoch or None,
        "history": history,
        "kernel_sizes": hooks.kernel_sizes(model),
        "params": sum(p.numel() for p in model.parameters() if p.requires_grad),
        "train_time_s": train_time,
        "throughput_train_samples_s": samples / train_time if train_time > 0 else None,
        "epoch_time_s": train_time / epochs,
        "peak_gpu_mem_mb": torch.cuda.max_memory_allocated() / 2**20 if cuda else None,
        "fastpath": fast,
        "model": model,
    }
