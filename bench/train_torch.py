"""One PyTorch training measurement for bench/train-vs-pytorch: prints one JSON line.

The model is Hugging Face's LlamaForCausalLM with the sizes of a `swiftlm train --config` JSON
file, set up as SwiftLM trains: float32, tied embeddings, eager attention, no dropout, no biases.
Each step draws a random token batch, takes the mean cross-entropy of every position against the
next token, backpropagates, clips the global gradient norm to 1 and takes an AdamW step with
SwiftLM's defaults (betas 0.9/0.95, eps 1e-8, weight decay 0.1 on matrices only). The step time
is the median over the measured steps, after warmup steps that let the allocator and the thread
pool settle; tokens per second = batch * seqLen / that median, as `swiftlm train --json` reports
it (its median excludes only the first step).

Run by bench/train-vs-pytorch with .venv-bench's Python; usable alone:

  python bench/train_torch.py --config CONFIG.json --batch-size 8 --seq-len 128 --threads 2
"""

import argparse
import inspect
import json
import os
import resource
import statistics
import sys
import time


def parse_arguments():
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--config", required=True, metavar="FILE", help="swiftlm config JSON")
    parser.add_argument("--batch-size", type=int, default=8, metavar="N")
    parser.add_argument("--seq-len", type=int, default=128, metavar="N")
    parser.add_argument("--threads", type=int, default=1, metavar="N")
    parser.add_argument("--steps", type=int, default=20, metavar="N", help="measured steps (20)")
    parser.add_argument("--warmup", type=int, default=3, metavar="N", help="unmeasured steps (3)")
    parser.add_argument("--seed", type=int, default=1, metavar="N")
    return parser.parse_args()


def build_model(sizes, torch, transformers):
    """LlamaForCausalLM with the sizes of a swiftlm config file (same keys and defaults)."""
    heads = sizes["heads"]
    rope_base = float(sizes.get("rope_base", 10000.0))
    arguments = dict(
        vocab_size=sizes["vocab_size"],
        hidden_size=sizes["hidden"],
        intermediate_size=sizes["intermediate"],
        num_hidden_layers=sizes["layers"],
        num_attention_heads=heads,
        num_key_value_heads=sizes.get("kv_heads", heads),
        head_dim=sizes.get("head_dim", sizes["hidden"] // heads),
        max_position_embeddings=sizes["context_length"],
        rms_norm_eps=sizes.get("norm_epsilon", 1e-5),
        tie_word_embeddings=sizes.get("tied_embeddings", True),
        hidden_act="silu",
        attention_bias=False,
        mlp_bias=False,
        attention_dropout=0.0,
        use_cache=False,
    )
    # Transformers 5 moved rope_theta into rope_parameters; older releases take it directly,
    # and would silently ignore the newer key, so ask the signature which one it has.
    if "rope_parameters" in inspect.signature(transformers.LlamaConfig.__init__).parameters:
        arguments["rope_parameters"] = {"rope_type": "default", "rope_theta": rope_base}
    else:
        arguments["rope_theta"] = rope_base
    config = transformers.LlamaConfig(**arguments)
    config._attn_implementation = "eager"
    model = transformers.LlamaForCausalLM(config).to(torch.float32)
    model.train()
    return model


def make_optimizer(model, torch):
    """AdamW as SwiftLM sets it up: matrices decay, vectors (norm weights) do not."""
    parameters = [p for p in model.parameters() if p.requires_grad]
    decayed = [p for p in parameters if p.dim() >= 2]
    plain = [p for p in parameters if p.dim() < 2]
    groups = [{"params": decayed, "weight_decay": 0.1}, {"params": plain, "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=1e-3, betas=(0.9, 0.95), eps=1e-8)


def main():
    arguments = parse_arguments()
    # The thread count has to be in the environment before torch loads its OpenMP runtime.
    os.environ["OMP_NUM_THREADS"] = str(arguments.threads)
    os.environ["MKL_NUM_THREADS"] = str(arguments.threads)
    import torch
    import torch.nn.functional as functional
    import transformers

    torch.set_num_threads(arguments.threads)
    torch.manual_seed(arguments.seed)
    with open(arguments.config) as file:
        sizes = json.load(file)
    vocab_size = sizes["vocab_size"]
    model = build_model(sizes, torch, transformers)
    optimizer = make_optimizer(model, torch)
    batch, seq_len = arguments.batch_size, arguments.seq_len

    def step():
        # [batch, seqLen + 1] random tokens: inputs are the first seqLen, targets the last.
        window = torch.randint(0, vocab_size, (batch, seq_len + 1))
        inputs, targets = window[:, :-1], window[:, 1:]
        optimizer.zero_grad(set_to_none=True)
        logits = model(input_ids=inputs).logits
        loss = functional.cross_entropy(logits.reshape(-1, vocab_size), targets.reshape(-1))
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        return loss.item()

    for _ in range(arguments.warmup):
        step()
    seconds = []
    loss = float("nan")
    for _ in range(arguments.steps):
        start = time.perf_counter()
        loss = step()
        seconds.append(time.perf_counter() - start)

    median = statistics.median(seconds)
    parameters = sum(p.numel() for p in model.parameters())
    print(json.dumps({
        "engine": "pytorch",
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "threads": torch.get_num_threads(),
        "parameters": parameters,
        "steps": arguments.steps,
        "step_seconds": median,
        "step_seconds_all": seconds,
        "tokens_per_second": batch * seq_len / median,
        "loss": loss,
        # Linux reports ru_maxrss in KiB.
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }))


if __name__ == "__main__":
    sys.exit(main())
