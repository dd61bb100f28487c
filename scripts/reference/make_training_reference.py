#!/usr/bin/env python3
"""PyTorch's loss, gradients and optimizer trajectories for a tiny Llama, for SwiftLMTrainingTests.

The Swift training core (autograd, AdamW, SGD, clipping, the learning-rate schedule) is held to
these numbers. The model is HF transformers' LlamaForCausalLM in float32 with eager attention, so
the reference is the plain matmul-softmax-matmul path, not a fused kernel.

    .venv-ref/bin/python scripts/reference/make_training_reference.py

Needs torch (CPU build), transformers and safetensors in .venv-ref (see README-training.md).
Writes into Tests/SwiftLMTrainingTests/Fixtures/:

  training_reference_weights.safetensors  initial weights, HF names, float32
  training_reference_grads.safetensors    d loss / d weight at the initial weights, on `inputs`
  training_reference_final.safetensors    weights after the 20 AdamW steps
  training_reference.json                 everything else, keys below

Tensor names are HF's (`model.embed_tokens.weight`, `model.layers.0.self_attn.q_proj.weight`, ...,
`model.norm.weight`). The output projection is tied to the embedding, so there is no
`lm_head.weight`: the embedding's gradient already sums both uses. q_proj and k_proj are stored as
HF holds them (rows ordered for rotate_half: dimension i pairs with i + headDim/2). SwiftLM keeps
weights in GGUF's adjacent-pair layout and reorders these rows on loading, as llama.cpp's
converter does (WeightNames.interleavedRoPERowOrder); the test maps gradients the same way.

JSON keys (every float is a float64 written by Python's repr, so it parses back exactly; float32
values are widened first, so they too are exact):

  generator            this script's path
  versions             {"torch", "transformers"}: the builds that wrote the files
  config               the LlamaConfig arguments, plus "attn_implementation": "eager"
  init                 {"seed", "weight_std", "norm_std"}: how the initial weights were drawn
  parameter_names      HF names in model order, the order AdamW and SGD visit them
  inputs               [2][12] token ids of the gradient batch
  targets              [2][12] next-token ids, -100 where ignored (3 positions per batch)
  loss                 mean cross-entropy over the non-ignored targets of that batch
  logits_row0_position0, logits_row0_position11
                       [64] logits of batch row 0 at positions 0 and 11
  batches              20 x {"inputs": [2][12], "targets": [2][12]}: one per optimizer step,
                       drawn separately from the gradient batch
  adamw                {"lr_peak", "lr_min", "warmup_steps", "steps", "betas", "eps",
                        "weight_decay", "norm_weight_decay", "max_grad_norm",
                        "losses", "grad_norms", "learning_rates"}
                       losses[i]: loss on batches[i] before update i; grad_norms[i]: global L2
                       norm of all gradients before clipping; learning_rates[i]: lr of update i.
                       weight_decay applies to the 2-D weights (the tied embedding once),
                       norm_weight_decay (0.0) to the RMSNorm weights.
  sgd                  {"lr", "momentum", "steps", "losses"}: 5 steps from the initial weights
                       on batches[0..4], constant lr, no clipping, no weight decay

What the Swift side has to do the way PyTorch does, to match beyond rounding:
  - AdamW (single-tensor path on CPU): p *= 1 - lr * wd; m = lerp(m, g, 1 - beta1);
    v = beta2 * v + (1 - beta2) * g * g; p -= lr / (1 - beta1^t) * m / (sqrt(v) / sqrt(1 - beta2^t)
    + eps). The bias corrections are float64 scalars; the tensors are float32.
  - clip_grad_norm_: norm of the per-tensor norms, coef = min(1, max_norm / (norm + 1e-6)), and
    every gradient is multiplied by coef even when it is 1.
  - SGD momentum: the first step's buffer is the gradient itself (no (1 - dampening) scaling).
"""

import json
import math
from importlib.metadata import version
from pathlib import Path

import torch
import torch.nn.functional as F
from safetensors.torch import save_file
from transformers import LlamaConfig, LlamaForCausalLM

SCRIPT = "scripts/reference/make_training_reference.py"
OUT = Path(__file__).resolve().parents[2] / "Tests" / "SwiftLMTrainingTests" / "Fixtures"

CONFIG = dict(
    vocab_size=64, hidden_size=32, intermediate_size=48, num_hidden_layers=2,
    num_attention_heads=4, num_key_value_heads=2, head_dim=8, max_position_embeddings=64,
    rope_theta=10000.0, rms_norm_eps=1e-5, tie_word_embeddings=True, attention_dropout=0.0,
    attention_bias=False, mlp_bias=False,
)
BATCH_SIZE, SEQ_LEN, IGNORED_PER_BATCH = 2, 12, 3

# Weights far larger than HF's 0.02 init, so that gradients sit well above float32 rounding noise
# and a wrong sign or a missing term shows.
INIT_SEED, WEIGHT_STD, NORM_STD = 0, 0.2, 0.1
GRAD_BATCH_SEED, TRAIN_BATCHES_SEED = 1, 2

STEPS, LR_PEAK, LR_MIN_RATIO, WARMUP_STEPS = 20, 3e-3, 0.1, 4
BETAS, EPS, WEIGHT_DECAY, MAX_GRAD_NORM = (0.9, 0.95), 1e-8, 0.1, 1.0
SGD_STEPS, SGD_LR, SGD_MOMENTUM = 5, 0.05, 0.9


def build_model() -> LlamaForCausalLM:
    # transformers 5 folds rope_theta into config.rope_parameters; the forward is the same.
    config = LlamaConfig(**CONFIG, attn_implementation="eager")
    model = LlamaForCausalLM(config).to(torch.float32)
    assert model.config._attn_implementation == "eager"
    assert model.lm_head.weight is model.model.embed_tokens.weight, "embedding must be tied"
    return model


def initialize(model: LlamaForCausalLM) -> None:
    # Drawn in named_parameters order from one seeded stream; HF's own init consumed the global
    # generator earlier, so reseed here. The Swift side loads the result rather than redrawing it.
    torch.manual_seed(INIT_SEED)
    with torch.no_grad():
        for _, param in model.named_parameters():
            if param.dim() == 2:
                param.normal_(0.0, WEIGHT_STD)
            else:
                param.copy_(1.0 + NORM_STD * torch.randn(param.shape))


def weights(model: LlamaForCausalLM) -> dict[str, torch.Tensor]:
    # named_parameters lists a tied tensor once, so lm_head.weight does not appear.
    return {name: p.detach().clone().contiguous() for name, p in model.named_parameters()}


def make_batch(generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    # One random sequence of SEQ_LEN + 1 tokens per row: inputs are its head, targets its tail.
    sequence = torch.randint(0, CONFIG["vocab_size"], (BATCH_SIZE, SEQ_LEN + 1),
                             generator=generator)
    inputs = sequence[:, :-1].clone()
    targets = sequence[:, 1:].clone()

    ignored = torch.randperm(BATCH_SIZE * SEQ_LEN, generator=generator)[:IGNORED_PER_BATCH]
    targets.view(-1)[ignored] = -100
    return inputs, targets


def forward(model: LlamaForCausalLM, inputs: torch.Tensor, targets: torch.Tensor):
    # [batch, seqLen] -> logits [batch, seqLen, vocabSize], loss (mean over non-ignored targets)
    positions = torch.arange(SEQ_LEN).unsqueeze(0).expand(BATCH_SIZE, -1)
    logits = model(input_ids=inputs, position_ids=positions, use_cache=False).logits
    loss = F.cross_entropy(logits.view(-1, CONFIG["vocab_size"]), targets.view(-1),
                           ignore_index=-100)
    return logits, loss


def lr_factor(step: int) -> float:
    # Linear warmup to the peak, then a cosine from the peak down towards LR_MIN_RATIO * peak;
    # LambdaLR multiplies this by the peak.
    if step < WARMUP_STEPS:
        return (step + 1) / WARMUP_STEPS
    progress = (step - WARMUP_STEPS) / (STEPS - WARMUP_STEPS)
    return LR_MIN_RATIO + 0.5 * (1.0 - LR_MIN_RATIO) * (1.0 + math.cos(math.pi * progress))


def reference_gradients(model, inputs, targets) -> tuple[dict, dict[str, torch.Tensor]]:
    model.zero_grad(set_to_none=True)
    logits, loss = forward(model, inputs, targets)
    loss.backward()
    grads = {name: p.grad.detach().clone().contiguous() for name, p in model.named_parameters()}
    record = {
        "inputs": inputs.tolist(),
        "targets": targets.tolist(),
        "loss": float(loss.item()),
        "logits_row0_position0": logits[0, 0].tolist(),
        "logits_row0_position11": logits[0, SEQ_LEN - 1].tolist(),
    }
    model.zero_grad(set_to_none=True)
    return record, grads


def train_adamw(model, batches) -> dict:
    decay = [p for p in model.parameters() if p.dim() == 2]
    no_decay = [p for p in model.parameters() if p.dim() != 2]
    # foreach=False pins the single-tensor path, the one the docstring spells out (it is also
    # PyTorch's CPU default).
    groups = [{"params": decay, "weight_decay": WEIGHT_DECAY},
              {"params": no_decay, "weight_decay": 0.0}]
    optimizer = torch.optim.AdamW(groups, lr=LR_PEAK, betas=BETAS, eps=EPS, foreach=False)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_factor)

    losses, grad_norms, learning_rates = [], [], []
    for inputs, targets in batches:
        optimizer.zero_grad(set_to_none=True)
        _, loss = forward(model, inputs, targets)
        loss.backward()
        norm = torch.nn.utils.clip_grad_norm_(list(model.parameters()), MAX_GRAD_NORM)

        learning_rates.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
        losses.append(float(loss.item()))
        grad_norms.append(float(norm.item()))

    return {
        "lr_peak": LR_PEAK, "lr_min": LR_MIN_RATIO * LR_PEAK, "warmup_steps": WARMUP_STEPS,
        "steps": STEPS, "betas": list(BETAS), "eps": EPS, "weight_decay": WEIGHT_DECAY,
        "norm_weight_decay": 0.0, "max_grad_norm": MAX_GRAD_NORM,
        "losses": losses, "grad_norms": grad_norms, "learning_rates": learning_rates,
    }


def train_sgd(model, batches) -> dict:
    optimizer = torch.optim.SGD(model.parameters(), lr=SGD_LR, momentum=SGD_MOMENTUM,
                                weight_decay=0.0, foreach=False)
    losses = []
    for inputs, targets in batches[:SGD_STEPS]:
        optimizer.zero_grad(set_to_none=True)
        _, loss = forward(model, inputs, targets)
        loss.backward()
        optimizer.step()
        losses.append(float(loss.item()))
    return {"lr": SGD_LR, "momentum": SGD_MOMENTUM, "steps": SGD_STEPS, "losses": losses}


def fresh_model(initial: dict[str, torch.Tensor]) -> LlamaForCausalLM:
    model = build_model()
    # The tied lm_head.weight is the only key the state dict has beyond `initial`.
    missing, unexpected = model.load_state_dict(initial, strict=False)
    assert missing == ["lm_head.weight"] and not unexpected, (missing, unexpected)
    assert torch.equal(model.lm_head.weight, initial["model.embed_tokens.weight"])
    model.train()
    return model


def save(tensors: dict[str, torch.Tensor], name: str) -> None:
    save_file(tensors, str(OUT / name), metadata={"generator": SCRIPT})


def main() -> None:
    torch.use_deterministic_algorithms(True)
    torch.set_num_threads(1)

    model = build_model()
    initialize(model)
    initial = weights(model)
    model.train()

    inputs, targets = make_batch(torch.Generator().manual_seed(GRAD_BATCH_SEED))
    gradient_record, grads = reference_gradients(model, inputs, targets)

    batch_generator = torch.Generator().manual_seed(TRAIN_BATCHES_SEED)
    batches = [make_batch(batch_generator) for _ in range(STEPS)]

    adamw_model = fresh_model(initial)
    adamw_record = train_adamw(adamw_model, batches)
    sgd_record = train_sgd(fresh_model(initial), batches)

    save(initial, "training_reference_weights.safetensors")
    save(grads, "training_reference_grads.safetensors")
    save(weights(adamw_model), "training_reference_final.safetensors")

    record = {
        "generator": SCRIPT,
        "versions": {"torch": torch.__version__, "transformers": version("transformers")},
        "config": {**CONFIG, "attn_implementation": "eager"},
        "init": {"seed": INIT_SEED, "weight_std": WEIGHT_STD, "norm_std": NORM_STD},
        "parameter_names": list(initial),
        **gradient_record,
        "batches": [{"inputs": i.tolist(), "targets": t.tolist()} for i, t in batches],
        "adamw": adamw_record,
        "sgd": sgd_record,
    }
    with open(OUT / "training_reference.json", "w") as f:
        json.dump(record, f)
        f.write("\n")
    print("loss", gradient_record["loss"])
    print("wrote", OUT)


if __name__ == "__main__":
    main()
