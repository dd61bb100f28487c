#!/usr/bin/env python3
"""Reference logits for LoRA adapters in Hugging Face PEFT's on-disk format, computed by PEFT
itself on SmolLM2-135M-Instruct (the Q4_1 GGUF, dequantized to float32 by transformers).

SwiftLM reads and writes LoRA adapters as PEFT does (adapter_config.json plus
adapter_model.safetensors), so that adapters move between SwiftLM and the Python ecosystem.
This script is the other side of that exchange, in two modes:

make-peft-adapter --out-adapter DIR --out-fixture FILE.json
    Creates a small random LoRA adapter with PEFT (r=2, alpha=4 on v_proj, gate_proj and
    down_proj, seed 0, lora_B rescaled by a power of two so the logits move by a few units),
    saves it with save_pretrained, loads it back as a user would, and records the base and the
    adapted logits. The Swift tests load the same adapter and must reproduce both. Committed as:

        .venv-ref/bin/python scripts/reference/make_peft_reference.py make-peft-adapter \\
            --out-adapter Tests/EndToEndTests/Fixtures/peft_lora \\
            --out-fixture Tests/EndToEndTests/Fixtures/peft_lora_logits.json

score-adapter --adapter DIR --out-fixture FILE.json
    Loads an adapter written by someone else (SwiftLM's writer) with PeftModel.from_pretrained
    and records the same JSON, so a test can check that PEFT reads SwiftLM's files as SwiftLM
    meant them. Fails if PEFT's checkpoint and the model's adapter parameters disagree in any
    key, shape or value (PEFT itself only warns about missing keys and ignores unexpected ones).

The JSON: {"description", "model", "text", "tokens", "vocab_ids", "base_logits",
"adapted_logits"}: logits for every position of a fixed sentence (no special tokens), at a fixed
set of 128 vocabulary ids (96 evenly spaced ones plus the adapted top ids, the argmax of every
position included), rounded to 6 significant digits. scripts/reference/setup-venv installs PEFT.
Run time is about a minute on one or two CPU threads. The reverse direction's adapter comes from
scripts/reference/make-swiftlm-lora-fixture, which runs score-adapter on it.
"""
import argparse
import json
import os
import shutil
import sys
import warnings

# PEFT keeps target_modules as a set and writes it as a list in set order, which depends on
# Python's per-process string hashing: fix the hash seed so adapter_config.json is reproducible.
if os.environ.get("PYTHONHASHSEED") != "0":
    os.environ["PYTHONHASHSEED"] = "0"
    os.execv(sys.executable, [sys.executable] + sys.argv)

# No model hub is reachable here and none is needed: without this, PEFT's save path asks the hub
# whether the base model's vocabulary was resized, and transformers looks for remote files.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import numpy as np  # noqa: E402
import torch  # noqa: E402
from safetensors import safe_open  # noqa: E402

DEFAULT_GGUF = os.path.expanduser("~/.cache/swiftlm/SmolLM2-135M-Instruct.Q4_1.gguf")
# 15 tokens with SmolLM2's tokenizer ("sleeps" is two); plain English, so most positions have a
# confident next token.
SENTENCE = "The quick brown fox jumps over the lazy dog while the cat sleeps."
VOCAB_SPACED = 96
VOCAB_TOTAL = 128
# The adapter fixture's change of the logits is brought into this range (max over positions and
# the whole vocabulary): large enough that a test cannot pass by ignoring the adapter, small
# enough that the adapted model is still the base model plus a perturbation.
TARGET_CHANGE = (2.0, 8.0)


def load_base(gguf_path, threads):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    torch.set_num_threads(threads)
    folder, name = os.path.split(os.path.abspath(gguf_path))
    tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=name)
    # transformers dequantizes every tensor to float32 and un-permutes the q/k rows that
    # llama.cpp's converter interleaved (LlamaTensorProcessor in modeling_gguf_pytorch_utils.py).
    model = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name, dtype=torch.float32)
    model.eval()
    # The fixture assumes one shared embedding/output matrix, as the GGUF has (no output.weight).
    if model.lm_head.weight.data_ptr() != model.model.embed_tokens.weight.data_ptr():
        sys.exit("expected tied embeddings (lm_head is embed_tokens)")
    return model, tokenizer


def fixed_tokens(tokenizer):
    ids = tokenizer(SENTENCE, add_special_tokens=False)["input_ids"]
    if not 12 <= len(ids) <= 16:
        sys.exit(f"the fixed sentence is {len(ids)} tokens, expected 12-16: {ids}")
    return ids


@torch.no_grad()
def logits_for(model, ids):
    out = model(input_ids=torch.tensor([ids]), use_cache=False)
    # Prompt tuning prepends its virtual tokens to the logits; the last len(ids) rows are the
    # sentence's in every method (LoRA and prefix tuning add no rows).
    return out.logits[0, -len(ids):].double().numpy()


def select_vocab_ids(adapted):
    """96 ids evenly spaced over the vocabulary, then the adapted model's top ids taken rank by
    rank across all positions (every position's argmax first) until there are 128."""
    vocab = adapted.shape[1]
    chosen = [i * vocab // VOCAB_SPACED for i in range(VOCAB_SPACED)]
    seen = set(chosen)
    order = np.argsort(-adapted, axis=1, kind="stable")
    for rank in range(vocab):
        for position in range(adapted.shape[0]):
            if len(chosen) == VOCAB_TOTAL:
                return sorted(chosen)
            token = int(order[position, rank])
            if token not in seen:
                seen.add(token)
                chosen.append(token)
    return sorted(chosen)


def round6(x):
    return float(f"{x:.6g}")


def write_fixture(path, description, model_name, ids, base, adapted):
    vocab_ids = select_vocab_ids(adapted)
    fixture = {
        "description": description,
        "model": model_name,
        "text": SENTENCE,
        "tokens": ids,
        "vocab_ids": vocab_ids,
        "base_logits": [[round6(v) for v in row[vocab_ids]] for row in base],
        "adapted_logits": [[round6(v) for v in row[vocab_ids]] for row in adapted],
    }
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "w") as f:
        json.dump(fixture, f, separators=(",", ":"))
        f.write("\n")
    print(f"wrote {path} ({os.path.getsize(path)} bytes, {len(ids)} positions, "
          f"{len(vocab_ids)} vocabulary ids)")


def check_keys_against_file(peft_model, adapter_dir):
    """PeftModel.from_pretrained loads with strict=False: unexpected checkpoint keys are dropped
    silently and missing ones only warned about, which would let a misnamed tensor from our
    writer look like a working adapter. Compare the file with what PEFT would save instead."""
    from peft import get_peft_model_state_dict

    expected = get_peft_model_state_dict(peft_model, save_embedding_layers=False)
    path = os.path.join(adapter_dir, "adapter_model.safetensors")
    if not os.path.exists(path):
        sys.exit(f"{path} is missing (only the safetensors format is accepted)")
    with safe_open(path, framework="pt") as f:
        on_file = {k: f.get_tensor(k) for k in f.keys()}
    missing = sorted(set(expected) - set(on_file))
    unexpected = sorted(set(on_file) - set(expected))
    if missing or unexpected:
        sys.exit(f"adapter keys disagree with PEFT's:\n  missing: {missing}\n"
                 f"  unexpected: {unexpected}")
    for key, tensor in on_file.items():
        if tuple(tensor.shape) != tuple(expected[key].shape):
            sys.exit(f"{key}: shape {tuple(tensor.shape)} in the file, "
                     f"{tuple(expected[key].shape)} expected")
        # The loaded parameter must be the file's value (after PEFT's float32 upcast of
        # float16/bfloat16 adapters), else something between file and model rewrote it.
        if not torch.equal(tensor.to(expected[key].dtype), expected[key].cpu()):
            sys.exit(f"{key}: the loaded value differs from the file's")
    return {k: (tuple(v.shape), str(v.dtype).removeprefix("torch.")) for k, v in on_file.items()}


def score(adapter_dir, gguf_path, threads):
    """Base and adapted logits of the fixed sentence, the adapter loaded as PEFT's users do."""
    from peft import PeftConfig, PeftModel

    config_path = os.path.join(adapter_dir, "adapter_config.json")
    if not os.path.exists(config_path):
        sys.exit(f"{config_path} is missing")
    model, tokenizer = load_base(gguf_path, threads)
    ids = fixed_tokens(tokenizer)
    base = logits_for(model, ids)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        config = PeftConfig.from_pretrained(adapter_dir)
        peft_model = PeftModel.from_pretrained(model, adapter_dir)
    for w in caught:
        print(f"warning: {w.message}", file=sys.stderr)
        # These two are how PEFT reports an adapter it only partly understood.
        text = str(w.message)
        if "missing adapter keys" in text or "Unexpected keyword arguments" in text:
            sys.exit(f"PEFT did not load {adapter_dir} cleanly: {text}")
    peft_model.eval()
    tensors = check_keys_against_file(peft_model, adapter_dir)
    adapted = logits_for(peft_model, ids)
    if config.is_prompt_learning:
        reference = base
    else:
        # With the adapter disabled PEFT's model must be the base model again, bit for bit; if it
        # is not, the base logits recorded above would not be what the adapter was added to.
        with peft_model.disable_adapter():
            reference = logits_for(peft_model, ids)
        if not np.array_equal(reference, base):
            sys.exit("logits with the adapter disabled differ from the base model's")
    return config, tensors, ids, base, adapted


def describe(config, tensors, base, adapted, what):
    import peft
    import transformers

    change = float(np.abs(adapted - base).max())
    kind = config.peft_type.value if hasattr(config.peft_type, "value") else config.peft_type
    details = ""
    if kind == "LORA":
        details = (f" r={config.r}, lora_alpha={config.lora_alpha}, "
                   f"target_modules={sorted(config.target_modules)},")
    dtypes = sorted({d for _, d in tensors.values()})
    return (f"{what}: {kind} adapter,{details} {len(tensors)} tensors ({', '.join(dtypes)}), "
            f"on SmolLM2-135M-Instruct Q4_1 dequantized to float32 by transformers "
            f"{transformers.__version__}; logits by peft {peft.__version__}, torch "
            f"{torch.__version__}, at vocab_ids for each position of the tokens of `text` "
            f"(no special tokens); max |adapted - base| over the full vocabulary {change:.4g}")


def make_peft_adapter(args):
    from peft import LoraConfig, get_peft_model

    model, tokenizer = load_base(args.gguf, args.threads)
    ids = fixed_tokens(tokenizer)
    base = logits_for(model, ids)
    config = LoraConfig(
        r=2, lora_alpha=4, target_modules=["v_proj", "gate_proj", "down_proj"],
        lora_dropout=0.0, bias="none", task_type="CAUSAL_LM",
        # False leaves nn.Linear's own initialization on both factors, so B is not zero and the
        # adapter changes the output (True, PEFT's default, zeroes B: an adapter that does nothing).
        init_lora_weights=False)
    torch.manual_seed(0)
    peft_model = get_peft_model(model, config)
    peft_model.eval()
    b_weights = [m.weight for n, m in peft_model.named_modules() if n.endswith("lora_B.default")]
    # Scaling by powers of two is exact, so the saved B is still exactly nn.Linear's draw times
    # 2^k; the loop is deterministic because the logits are.
    scale = 1.0
    for _ in range(40):
        change = float(np.abs(logits_for(peft_model, ids) - base).max())
        print(f"lora_B scale {scale:g}: max |logit change| {change:.4g}")
        if change > TARGET_CHANGE[1]:
            factor = 0.5
        elif change < TARGET_CHANGE[0]:
            factor = 2.0
        else:
            break
        scale *= factor
        with torch.no_grad():
            for w in b_weights:
                w.mul_(factor)
    else:
        sys.exit("could not bring the logit change into range")
    # Otherwise PEFT records the local folder of the GGUF (a path on this machine).
    peft_model.peft_config["default"].base_model_name_or_path = os.path.basename(args.gguf)
    if os.path.isdir(args.out_adapter):
        shutil.rmtree(args.out_adapter)
    peft_model.save_pretrained(args.out_adapter, safe_serialization=True,
                               save_embedding_layers=False)
    # save_pretrained also writes a boilerplate model card (README.md); the format is the two
    # other files, and a card would only be noise among the test fixtures.
    card = os.path.join(args.out_adapter, "README.md")
    if os.path.exists(card):
        os.remove(card)
    for name in sorted(os.listdir(args.out_adapter)):
        print(f"wrote {os.path.join(args.out_adapter, name)} "
              f"({os.path.getsize(os.path.join(args.out_adapter, name))} bytes)")
    in_memory = logits_for(peft_model, ids)
    del peft_model, model

    # Score the saved files through the same path as score-adapter, from a fresh base model, so
    # the fixture describes what is on disk rather than what was in memory.
    config, tensors, ids2, base2, adapted = score(args.out_adapter, args.gguf, args.threads)
    assert ids2 == ids and np.array_equal(base2, base)
    drift = float(np.abs(adapted - in_memory).max())
    if drift > 1e-4:
        sys.exit(f"the reloaded adapter's logits differ from the in-memory ones by {drift}")
    write_fixture(args.out_fixture,
                  describe(config, tensors, base, adapted,
                           f"PEFT-made LoRA adapter (seed 0, lora_B x {scale:g})"),
                  os.path.basename(args.gguf), ids, base, adapted)


def score_adapter(args):
    config, tensors, ids, base, adapted = score(args.adapter, args.gguf, args.threads)
    for key, (shape, dtype) in sorted(tensors.items())[:4]:
        print(f"  {key} {list(shape)} {dtype}")
    print(f"  ... {len(tensors)} tensors")
    write_fixture(args.out_fixture,
                  describe(config, tensors, base, adapted, f"adapter {args.adapter} scored"),
                  os.path.basename(args.gguf), ids, base, adapted)


def main():
    # The shared options go on each mode, so they may follow the mode's name.
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--gguf", default=DEFAULT_GGUF, help="base model (default: %(default)s)")
    common.add_argument("--threads", type=int, default=2, help="torch threads (default: 2)")
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="mode", required=True)
    make = sub.add_parser("make-peft-adapter", parents=[common],
                          help="create a LoRA adapter and its fixture")
    make.add_argument("--out-adapter", required=True, help="folder for the PEFT adapter")
    make.add_argument("--out-fixture", required=True, help="JSON file for the logits")
    scorer = sub.add_parser("score-adapter", parents=[common],
                            help="score an existing PEFT adapter folder")
    scorer.add_argument("--adapter", required=True, help="folder with adapter_config.json")
    scorer.add_argument("--out-fixture", required=True, help="JSON file for the logits")
    args = parser.parse_args()
    if args.mode == "make-peft-adapter":
        make_peft_adapter(args)
    else:
        score_adapter(args)


if __name__ == "__main__":
    main()
