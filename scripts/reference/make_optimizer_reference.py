#!/usr/bin/env python3
"""Record what PyTorch's optimizers, gradient clipping and learning-rate schedule compute, for
SwiftLMTrainingTests' OptimizerTests, ClippingTests and ScheduleTests.

Two parameters, as a transformer has them: a 2-D weight, which decays, and a 1-D norm weight,
which does not (two parameter groups). Six seeded gradients are applied in turn; the norm has no
gradient (.grad = None) in step 4, so each optimizer must skip it, and AdamW must keep a step
count per parameter. Recorded:

  adamw          torch.optim.AdamW, weight decay on the weight only, the learning rate changed
                 before every step; parameters after each step
  sgd            torch.optim.SGD, momentum, weight decay on both parameters (one group)
  sgd_nesterov   torch.optim.SGD, Nesterov momentum, weight decay on the weight only
  clip           torch.nn.utils.clip_grad_norm_ on the first gradients: the returned norm and the
                 gradients after, for a max_norm that clips and one that does not
  schedule       LambdaLR's learning rate for steps 0..24 of linear warmup then cosine decay

Learning rates and hyperparameters that the Swift side holds as Float are chosen representable
in float32, so both sides start from the same numbers. Values are float32 results written as
float64 reprs.

    /work/main/.venv-ref/bin/python scripts/reference/make_optimizer_reference.py

Writes Tests/SwiftLMTrainingTests/Fixtures/optimizer_reference.json.
"""

import json
import math
from pathlib import Path

import torch

OUT = Path(__file__).resolve().parents[2] / "Tests" / "SwiftLMTrainingTests" / "Fixtures"
STEPS = 6
SKIPPED_NORM_STEP = 3  # zero-based: the fourth step has no gradient for the norm
WEIGHT_SHAPE = (5, 7)  # 35 elements: a vector part and a tail in PyTorch's kernels
NORM_SHAPE = (7,)


def f32(x: float) -> float:
    """x rounded to float32, as the Swift side holds it."""
    return torch.tensor(x, dtype=torch.float32).item()


def values(tensor: torch.Tensor) -> list:
    return tensor.detach().reshape(-1).double().tolist()


def make_inputs():
    generator = torch.Generator().manual_seed(20250918)
    weight = torch.randn(WEIGHT_SHAPE, generator=generator)
    norm = 1 + 0.1 * torch.randn(NORM_SHAPE, generator=generator)
    gradients = []
    for step in range(STEPS):
        weight_gradient = 0.5 * torch.randn(WEIGHT_SHAPE, generator=generator)
        norm_gradient = 0.5 * torch.randn(NORM_SHAPE, generator=generator)
        gradients.append(
            (weight_gradient, None if step == SKIPPED_NORM_STEP else norm_gradient))
    return weight, norm, gradients


def run(make_optimizer, weight, norm, gradients, learning_rates):
    """Applies the gradients in turn; returns the parameters after each step."""
    w = weight.clone().requires_grad_(True)
    n = norm.clone().requires_grad_(True)
    optimizer = make_optimizer(w, n)
    steps = []
    for (weight_gradient, norm_gradient), lr in zip(gradients, learning_rates):
        for group in optimizer.param_groups:
            group["lr"] = lr
        w.grad = weight_gradient.clone()
        n.grad = None if norm_gradient is None else norm_gradient.clone()
        optimizer.step()
        steps.append({"weight": values(w), "norm": values(n)})
    return steps


def main():
    torch.use_deterministic_algorithms(True)
    weight, norm, gradients = make_inputs()
    fixture = {
        "script": "scripts/reference/make_optimizer_reference.py",
        "torch": torch.__version__,
        "initial": {
            "weight": {"shape": list(WEIGHT_SHAPE), "values": values(weight)},
            "norm": {"shape": list(NORM_SHAPE), "values": values(norm)},
        },
        "gradients": [
            {"weight": values(g), "norm": None if n is None else values(n)}
            for g, n in gradients
        ],
    }

    # AdamW: the weight decays, the norm does not (PyTorch's defaults otherwise).
    adamw_rates = [f32(x) for x in (1e-2, 3e-2, 2e-2, 2.5e-2, 1.5e-2, 5e-3)]
    adamw = dict(betas=(0.9, 0.999), eps=1e-8, weight_decay=0.1)
    fixture["adamw"] = {
        "learning_rates": adamw_rates,
        "beta1": adamw["betas"][0], "beta2": adamw["betas"][1], "epsilon": adamw["eps"],
        "weight_decay": adamw["weight_decay"],
        "steps": run(
            lambda w, n: torch.optim.AdamW(
                [{"params": [w]}, {"params": [n], "weight_decay": 0.0}],
                foreach=False, **adamw),
            weight, norm, gradients, adamw_rates),
    }

    # SGD with momentum: decay on both parameters; Nesterov: on the weight only.
    sgd_rates = [f32(0.05)] * STEPS
    sgd = dict(momentum=0.9, weight_decay=0.1)
    fixture["sgd"] = {
        "learning_rates": sgd_rates, **sgd, "nesterov": False, "decays_norm": True,
        "steps": run(
            lambda w, n: torch.optim.SGD([w, n], foreach=False, **sgd),
            weight, norm, gradients, sgd_rates),
    }
    fixture["sgd_nesterov"] = {
        "learning_rates": sgd_rates, **sgd, "nesterov": True, "decays_norm": False,
        "steps": run(
            lambda w, n: torch.optim.SGD(
                [{"params": [w]}, {"params": [n], "weight_decay": 0.0}],
                nesterov=True, foreach=False, **sgd),
            weight, norm, gradients, sgd_rates),
    }

    # clip_grad_norm_ on the first gradients.
    fixture["clip"] = []
    for max_norm in (1.0, 100.0):
        w = weight.clone().requires_grad_(True)
        n = norm.clone().requires_grad_(True)
        w.grad = gradients[0][0].clone()
        n.grad = gradients[0][1].clone()
        total = torch.nn.utils.clip_grad_norm_([w, n], max_norm)
        fixture["clip"].append({
            "max_norm": max_norm, "norm": total.item(),
            "weight": values(w.grad), "norm_gradient": values(n.grad)})

    # Linear warmup, then cosine decay to the minimum, as a LambdaLR of the peak rate.
    peak, warmup, total, minimum = 3e-3, 4, 20, 3e-4

    def rate(step):
        if step < warmup:
            return peak * (step + 1) / warmup
        progress = min(max((step - warmup) / (total - warmup), 0.0), 1.0)
        return minimum + 0.5 * (peak - minimum) * (1 + math.cos(math.pi * progress))

    parameter = torch.zeros(1, requires_grad=True)
    optimizer = torch.optim.SGD([parameter], lr=peak)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: rate(step) / peak)
    schedule = []
    for _ in range(total + 5):
        schedule.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    fixture["schedule"] = {
        "peak": peak, "warmup_steps": warmup, "total_steps": total, "minimum": minimum,
        "learning_rates": schedule,
    }

    OUT.mkdir(parents=True, exist_ok=True)
    path = OUT / "optimizer_reference.json"
    path.write_text(json.dumps(fixture, indent=1) + "\n")
    print(f"wrote {path} ({path.stat().st_size} bytes)")


if __name__ == "__main__":
    main()
