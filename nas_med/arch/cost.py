"""What a spec costs, measured without training or allocating memory (everything runs on the meta device)."""
from __future__ import annotations

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from .spec import ArchSpec

__all__ = ["count_params", "spec_cost"]


def count_params(model: nn.Module) -> int:
    """Trainable parameters of ``model``."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def spec_cost(spec: ArchSpec) -> dict[str, int]:
    """``params`` (trainable), ``flops`` (one forward pass of one image; a multiply-add counts 2, as
    ``torch.utils.flop_counter`` does), ``activation_bytes`` (float32 bytes of the tensors that leaf modules
    create in that pass; in-place results and views are not counted) and ``layers`` (leaf-module calls in that
    pass: each one is a kernel launched forward and backward). Raises InvalidSpec for an unusable spec.
    """
    from .build import build

    with torch.device("meta"):
        model = build(spec).eval()
        x = torch.zeros(1, spec.in_channels, spec.input_size, spec.input_size)
    created = calls = 0

    def count(module: nn.Module, inputs: tuple, output) -> None:
        nonlocal created, calls
        calls += 1
        outputs = output if isinstance(output, (tuple, list)) else (output,)
        for out in outputs:
            if isinstance(out, torch.Tensor) and out._base is None and not any(out is i for i in inputs):
                created += out.numel() * 4

    hooks = [m.register_forward_hook(count) for m in model.modules() if not any(True for _ in m.children())]
    try:
        with FlopCounterMode(display=False) as flops:
            model(x)
    finally:
        for hook in hooks:
            hook.remove()
    return {"params": count_params(model), "flops": int(flops.get_total_flops()), "activation_bytes": created,
            "layers": calls}
