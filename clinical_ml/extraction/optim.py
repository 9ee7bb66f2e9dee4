"""One optimizer step, shared by the encoder and generative LoRA training loops."""
from __future__ import annotations

from typing import Any

import torch


def optimizer_step(loss: torch.Tensor, params: list, opt: Any, sched: Any, accelerator: Any = None) -> float:
    """Backward (through accelerate when given), clip to norm 1, step, schedule; the loss value."""
    (accelerator.backward(loss) if accelerator is not None else loss.backward())
    torch.nn.utils.clip_grad_norm_(params, 1.0)
    opt.step()
    sched.step()
    opt.zero_grad()
    return loss.item()
