#!/usr/bin/env python3
"""llama.cpp's logits for the formula-built tiny Llama model, in F32, F16, BF16, Q8_0, Q4_0 and
Q4_1: for the input evaluated in one batch (`logits`) and token by token (`stepwise_logits`),
which in ggml take different kernels for attention and F32 products (llamafile's tinyBLAS for two
rows or more).

    .venv-ref/bin/python scripts/reference/make_tiny_model_fixtures.py

Writes Tests/SwiftLMModelsTests/Fixtures/tiny_model_logits.json. The Swift test builds the same
GGUF files itself (see tiny_model.py) and compares its logits with these, bit for bit: each
binary32 logit is written as the decimal of its exact value, which parses back to the same float.
"""
import json
import os
import sys
import tempfile

import gguf
import numpy as np
from llama_cpp import Llama

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import tiny_model as tm  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
OUT = os.path.join(ROOT, "Tests", "SwiftLMModelsTests", "Fixtures", "tiny_model_logits.json")


def write_gguf(path, weight_type, extra_metadata=None):
    """The tiny model as a GGUF file; `extra_metadata(writer)` may add keys (RoPE scaling)."""
    w = gguf.GGUFWriter(path, "llama")
    w.add_context_length(tm.CONTEXT)
    w.add_embedding_length(tm.HIDDEN)
    w.add_block_count(tm.LAYERS)
    w.add_feed_forward_length(tm.INTERMEDIATE)
    w.add_head_count(tm.HEADS)
    w.add_head_count_kv(tm.KV_HEADS)
    w.add_rope_dimension_count(tm.HEAD_DIM)
    w.add_rope_freq_base(tm.ROPE_BASE)
    w.add_layer_norm_rms_eps(tm.EPSILON)
    w.add_vocab_size(tm.VOCAB)
    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre("default")
    tokens = tm.byte_tokens() + ["<|bos|>", "<|eos|>", "<|pad|>", "<|unk|>"]
    w.add_token_list(tokens)
    w.add_token_types([1] * 256 + [3] * 4)
    w.add_token_merges(["Ġ t", "h e"])
    w.add_bos_token_id(256)
    w.add_eos_token_id(257)
    w.add_add_bos_token(False)
    if extra_metadata is not None:
        extra_metadata(w)
    for name, value, is_norm in tm.weights():
        if is_norm or weight_type == gguf.GGMLQuantizationType.F32:
            w.add_tensor(name, value)
        else:
            q = gguf.quants.quantize(value, weight_type)
            w.add_tensor(name, q, raw_dtype=weight_type)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def main():
    results = {}
    stepwise = {}
    types = gguf.GGMLQuantizationType
    for label, qtype in [("f32", types.F32), ("f16", types.F16), ("bf16", types.BF16),
                         ("q8_0", types.Q8_0), ("q4_0", types.Q4_0), ("q4_1", types.Q4_1)]:
        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, f"tiny-{label}.gguf")
            write_gguf(path, qtype)
            llm = Llama(model_path=path, n_ctx=tm.CONTEXT, n_batch=64, logits_all=True,
                        n_threads=1, flash_attn=False, verbose=False)
            llm.eval(tm.INPUT_IDS)
            logits = np.asarray(llm.scores[: len(tm.INPUT_IDS)], dtype=np.float32)
            results[label] = [[float(x) for x in row] for row in logits]
            llm.reset()
            for token in tm.INPUT_IDS:
                llm.eval([token])
            logits = np.asarray(llm.scores[: len(tm.INPUT_IDS)], dtype=np.float32)
            stepwise[label] = [[float(x) for x in row] for row in logits]
            del llm
    with open(OUT, "w") as f:
        json.dump({"generator": "scripts/reference/make_tiny_model_fixtures.py",
                   "input_ids": tm.INPUT_IDS, "logits": results, "stepwise_logits": stepwise}, f)
    print("wrote", OUT)


if __name__ == "__main__":
    main()
