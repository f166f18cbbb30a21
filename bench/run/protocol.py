"""The one training protocol every method runs under.

AdamW with per-group learning rates (from the modules' `param_groups` hooks), linear
warm-up then cosine decay per step, optional gradient clipping, bf16 autocast on CUDA
only. The checkpoint with the best *validation* metric is selected; the test set is
evaluated once, on that checkpoint.

Early stopping (train.patience > 0): when the validation metric has not improved for `patience`
epochs, the learning rate is multiplied by `train.lr_decay_factor` (0.1) if the run has had fewer
than `train.lr_decays` such decays (and the count starts again), else the run stops; train.epochs
is the cap. With `train.stop_patience` > 0 the stop has its own count instead: the run stops after
that many epochs without a better metric, decays or not (the CKConv paper: ReduceLROnPlateau with
factor 1/5 and patience 20, and a stop after 100 epochs without improvement). The
warm-up and cosine curve are laid over the cap and the decays multiply it, so the schedule is
a function of the step and of the validation metrics seen so far, never of the test set: a run
that stops early has followed exactly the curve a longer run would have followed until then.
(With min_lr_factor=1 the curve is flat after the warm-up: a plateau schedule, as the CKConv
paper's ReduceLROnPlateau.)
"""

from __future__ import annotations

import math
import random
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from scipy.stats import rankdata
from tqdm.auto import tqdm

from bench.base import Diverged
from bench.run import checkpoint, fastpath
from bench.run.batches import batches
from bench.run.config import RunConfig
from bench.run.store import encode_correct
from methods import build_model, hooks
from methods.task import HIGHER_IS_BETTER

LOOP_STATE = ("best", "best_state", "best_epoch", "history", "train_time", "samples")


def seed_everything(seed: int) -> torch.Generator:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    return torch.Generator().manual_seed(seed)


def loss_fn(out: torch.Tensor, y: torch.Tensor, metric: str) -> torch.Tensor:
    return F.mse_loss(out.float(), y.float()) if metric == "mse" else F.cross_entropy(out.float(), y)


def roc_auc(scores: np.ndarray, labels: np.ndarray) -> float:
    """The area under the ROC curve (0 to 1, as the papers): the probability that a positive scores above a negative (ties count
    half), from the ranks (Mann-Whitney U). Needs both labels."""
    positive = labels == 1
    n_pos, n_neg = int(positive.sum()), int((~positive).sum())
    if not n_pos or not n_neg:
        raise ValueError(f"the AUC needs both labels; this split has {n_pos} positives and {n_neg} negatives")
    ranks = rankdata(scores)
    return (ranks[positive].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg)


@torch.no_grad()
def evaluate(model, dataset, metric: str, batch_size: int, device, autocast, per_example: bool = False) -> dict:
    """Mean loss and the metric: accuracy in %, mean squared error, or ROC AUC (0 to 1); with `per_example` (accuracy
    only) also "correct", the bool vector of right answers in the dataset's order (for paired tests over test
    examples)."""
    model.eval()
    total, loss_sum, hits, scores, labels = 0, torch.zeros((), dtype=torch.float64, device=device), [], [], []
    for x, y in batches(dataset, batch_size, shuffle=False, generator=None, device=device):
        with autocast():
            out = model(x)
        loss_sum += loss_fn(out, y, metric).double() * len(y)  # in float64, as a Python float sum
        if metric == "accuracy":
            hits.append(out.argmax(-1) == y)
        elif metric == "auc":
            scores.append(out.float().softmax(-1)[:, 1])
            labels.append(y)
        total += len(y)
    loss = loss_sum.item() / total  # one host read per evaluation, not one per batch
    result = {"loss": loss, "metric": loss}
    if metric == "accuracy":
        hit = torch.cat(hits).cpu()
        result["metric"] = 100.0 * hit.sum().item() / total
        if per_example:
            result["correct"] = hit.numpy()
    elif metric == "auc":
        result["metric"] = roc_auc(torch.cat(scores).cpu().double().numpy(), torch.cat(labels).cpu().numpy())
    return result


DECAY = 0.1  # the learning rate's factor at each plateau decay, unless train.lr_decay_factor says otherwise


def lr_lambda(warmup_steps: int, total_steps: int, min_factor: float, decays: list[int] | None = None,
              decay: float = DECAY):  # fmt: skip
    """Warm-up then cosine per step, times decay ** decays[0] (a one-element list the loop updates)."""

    def factor(step: int) -> float:
        plateau = decay ** decays[0] if decays else 1.0
        if step < warmup_steps:
            return plateau * (step + 1) / warmup_steps
        progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
        return plateau * (min_factor + (1 - min_factor) * 0.5 * (1 + math.cos(math.pi * min(1.0, progress))))

    return factor


def make_optimizer(model, tc) -> torch.optim.Optimizer:
    """AdamW over the modules' parameter groups; the fused kernel where the parameters allow it (4x
    faster steps on CPU), else the reference loop (complex parameters, a torch without it)."""
    groups = hooks.merge_equal_groups(hooks.param_groups(model, tc.lr, tc.weight_decay))
    real = all(p.dtype.is_floating_point for g in groups for p in g["params"])
    try:
        return torch.optim.AdamW(groups, fused=real)
    except (RuntimeError, TypeError, ValueError):
        return torch.optim.AdamW(groups)


def autocast_for(tc, device: str):
    """The protocol's mixed precision as a context factory: bf16 autocast on CUDA when train.amp, else nothing."""
    enabled = tc.amp and torch.device(device).type == "cuda"
    return lambda: torch.autocast("cuda", dtype=torch.bfloat16, enabled=enabled)


class TrainStep:
    """The protocol's training step, the one the protocol, gpu-check, cross-resolution fine-tuning and the ops
    count run: forward under autocast (`forward`: the compiled one, if any), loss, the modules' regularisation,
    backward, gradient clipping, the optimizer, the schedule (if any), then the post-step hooks. No host read."""

    def __init__(self, model, optimizer, tc, device: str, metric: str, forward=None, schedule=None):
        self.model, self.optimizer, self.schedule = model, optimizer, schedule
        self.forward, self.metric, self.grad_clip = forward or model, metric, tc.grad_clip
        self.autocast = autocast_for(tc, device)
        self.hooks = hooks.StepHooks(model)

    def update(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Everything but the post-step hooks; returns (loss, loss + regularisation)."""
        with self.autocast():
            loss = loss_fn(self.forward(x), y, self.metric)
        reg = self.hooks.regularization_loss()
        total = loss if reg is None else loss + reg
        self.optimizer.zero_grad(set_to_none=True)
        total.backward()
        if self.grad_clip:
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.grad_clip)
        self.optimizer.step()
        if self.schedule is not None:
            self.schedule.step()
        return loss, total

    def __call__(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        losses = self.update(x, y)
        self.hooks.post_step()
        return losses


def stalled(history: list[dict], best_epoch: int, patience: int) -> bool:
    """`patience` epochs since the best validation metric or the last decay (never when patience is 0)."""
    decayed = [h["epoch"] for h in history if h.get("lr_decay")]
    return patience > 0 and history[-1]["epoch"] - max([best_epoch, *decayed]) >= patience if history else False


def should_stop(history: list[dict], best_epoch: int, tc) -> bool:
    """With train.stop_patience, that many epochs since the best one; else a stall once the decays are spent."""
    if tc.stop_patience:
        return bool(history) and history[-1]["epoch"] - best_epoch >= tc.stop_patience
    return stalled(history, best_epoch, tc.patience)


def decays_in(history: list[dict]) -> int:
    return sum(1 for h in history if h.get("lr_decay"))


def train_run(cfg: RunConfig, data, device: str, progress: bool = True, ckpt: Path | None = None, model=None) -> dict:
    """Train one run; returns the run record's results (metrics, history, kernel sizes, timings).

    With `ckpt`, the state is saved after every epoch and a run killed mid-way resumes there.
    With `model`, that model is trained further instead of a new one (cross-resolution fine-tuning).
    """
    tc, metric = cfg.train, data.task.metric
    gen = seed_everything(cfg.seed)
    model = (build_model(cfg.method, data.task, **cfg.model) if model is None else model).to(device)
    model, data, fast = fastpath.prepare(cfg, model, data, device)  # CUDA: TF32, cudnn.benchmark, data on GPU
    compiled = fastpath.compile_mode(tc.compile, device, model, tc.deterministic)
    forward = fastpath.train_forward(model, compiled)  # the training step's (evaluation runs `model` eagerly)
    optimizer = make_optimizer(model, tc)
    epochs = max(1, round(tc.epochs * cfg.budget))
    steps = math.ceil(len(data.train) / tc.batch_size)
    steps = min(steps, tc.max_steps_per_epoch) if tc.max_steps_per_epoch else steps
    decays = [0]  # plateau decays so far (derived from the history when a run resumes)
    # --budget shrinks the whole schedule, warm-up included, so a shortened run is the same curve
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer,
        lr_lambda(
            round(tc.warmup_epochs * cfg.budget * steps), epochs * steps, tc.min_lr_factor, decays, tc.lr_decay_factor
        ),
    )
    step = TrainStep(model, optimizer, tc, device, metric, forward, schedule)
    cuda, autocast = torch.device(device).type == "cuda", step.autocast
    higher_better = HIGHER_IS_BETTER[metric]
    best, best_state, best_epoch, history = None, None, -1, []
    train_time, samples, first_epoch = 0.0, 0, 0
    try:
        saved = checkpoint.load(ckpt, model, optimizer, schedule, gen) if ckpt else None
    except checkpoint.Damaged as exc:  # the model may be half restored: start again from scratch, saying so
        tqdm.write(f"{cfg.label}: checkpoint {ckpt} is damaged ({exc}); discarded, the run starts afresh")
        ckpt.unlink(missing_ok=True)
        return train_run(cfg, data, device, progress, ckpt)
    if saved:
        best, best_state, best_epoch, history, train_time, samples = (saved[k] for k in LOOP_STATE)
        first_epoch, decays[0] = len(history), decays_in(history)
        tqdm.write(f"{cfg.label}: resuming at epoch {first_epoch + 1} from {ckpt}")
    for epoch in tqdm(range(first_epoch, epochs), desc=cfg.label, leave=False, disable=not progress):
        if should_stop(history, best_epoch, tc):
            break  # (a resumed run that had already stopped)
        model.train()
        start, loss_sum, seen = time.perf_counter(), torch.zeros((), device=device), 0
        nonfinite = torch.zeros((), device=device)  # nan once a step's loss was not finite: checked per epoch
        for i, (x, y) in enumerate(batches(data.train, tc.batch_size, shuffle=True, generator=gen, device=device)):
            if i >= steps:
                break
            if data.augment is not None:
                x, y = data.augment(x, y, gen)
            loss, total = step(x, y)
            nonfinite = nonfinite + total.detach() * 0  # no host read inside a step
            loss_sum, seen = loss_sum + loss.detach() * len(y), seen + len(y)
        if not torch.isfinite(nonfinite):
            raise Diverged(f"loss became {nonfinite.item()} in epoch {epoch} (steps run with a non-finite loss)")
        if cuda:
            torch.cuda.synchronize()
        train_time, samples = train_time + time.perf_counter() - start, samples + seen
        val = evaluate(model, data.val, metric, tc.eval_batch_size, device, autocast)
        history.append(
            {"epoch": epoch, "train_loss": loss_sum.item() / max(seen, 1), "val_loss": val["loss"], "val": val["metric"],
             "lr": optimizer.param_groups[0]["lr"], "kernel_sizes": hooks.kernel_sizes(model)}
        )  # fmt: skip
        if best is None or (val["metric"] > best if higher_better else val["metric"] < best):
            best, best_epoch = val["metric"], epoch
            best_state = {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}
        if decays[0] < tc.lr_decays and stalled(history, best_epoch, tc.patience):
            history[-1]["lr_decay"], decays[0] = True, decays[0] + 1
            for group, base, fn in zip(optimizer.param_groups, schedule.base_lrs, schedule.lr_lambdas):
                group["lr"] = base * fn(schedule.last_epoch)  # from the next step on
        if ckpt:
            loop = (best, best_state, best_epoch, history, train_time, samples)
            checkpoint.save(ckpt, model, optimizer, schedule, gen, dict(zip(LOOP_STATE, loop)))
    model.load_state_dict(best_state)
    splits = {"train": data.train, "val": data.val, "test": data.test}
    final = {name: evaluate(model, ds, metric, tc.eval_batch_size, device, autocast, per_example=name == "test")
             for name, ds in splits.items()}  # fmt: skip
    test_correct = final["test"].pop("correct", None)
    return {
        "metric": metric,
        "higher_is_better": higher_better,
        **{f"{name}_{metric}": r["metric"] for name, r in final.items()},
        **{f"{name}_loss": r["loss"] for name, r in final.items()},
        "best_epoch": best_epoch,
        "epochs_run": len(history),
        "epochs_cap": epochs,
        "stopped_early": len(history) < epochs,
        "lr_decays": decays[0],
        # per test example, right or wrong (base64 of numpy packbits): the report's paired tests carry the test set's error
        **(
            {"test_correct": encode_correct(test_correct), "test_n": len(test_correct)}
            if test_correct is not None
            else {}
        ),
        "resumed_at_epoch": first_epoch or None,
        "history": history,
        "kernel_sizes": hooks.kernel_sizes(model),
        "params": sum(p.numel() for p in model.parameters() if p.requires_grad),
        "train_time_s": train_time,
        "throughput_train_samples_s": samples / train_time if train_time > 0 else None,
        "epoch_time_s": train_time / max(1, len(history)),
        "peak_gpu_mem_mb": torch.cuda.max_memory_allocated() / 2**20 if cuda else None,
        "fastpath": fast,
        "compile": compiled,
        "threads": torch.get_num_threads(),
        "model": model,
    }
