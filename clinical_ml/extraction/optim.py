"""The optimizer step and learning-rate schedule shared by the encoder and generative LoRA
training loops."""
from __future__ import annotations

import time
from typing import Any, Callable

import torch


def optimizer_step(loss: torch.Tensor, params: list, opt: Any, sched: Any, accelerator: Any = None) -> float:
    """Backward (through accelerate when given), clip to norm 1, step, schedule; the loss value."""
    (accelerator.backward(loss) if accelerator is not None else loss.backward())
    torch.nn.utils.clip_grad_norm_(params, 1.0)
    opt.step()
    sched.step()
    opt.zero_grad()
    return loss.item()


def lr_factor(step: int, total: int, budget_used: float = 0.0, floor: float = 0.0) -> float:
    """Linear warm-up over the first 10 % of the steps (at most 30), then linear decay to
    ``floor`` by the last step or by the end of the time budget (``budget_used``: the fraction
    spent), whichever comes first: a budgeted run ends annealed, not cut off at its peak,
    however fast or busy the machine turns out to be."""
    progress = max(step / total, budget_used)
    return min(1.0, (step + 1) / max(1, min(30, total // 10))) * max(floor, 1 - progress)


def budgeted_schedule(opt: Any, total: int, time_budget_s: float | None, floor: float = 0.0,
                      clock: Callable[[], float] | None = None) -> Any:
    """A LambdaLR of ``lr_factor`` whose clock starts now. ``clock`` (seconds elapsed) replaces
    the local clock: DDP ranks must agree on it, or their learning rates, and so their
    weights, drift apart."""
    t0 = time.time()
    elapsed = clock or (lambda: time.time() - t0)
    return torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: lr_factor(s, total, elapsed() / time_budget_s if time_budget_s else 0.0, floor))
