"""A tiny Llama model whose weights come from a formula, so that Swift tests can build the same
GGUF file themselves (Tests/SwiftLMModelsTests/TinyModel.swift mirrors this file exactly).

Weights: a 32-bit linear congruential generator per tensor, seeded with the tensor's index in
TENSOR_ORDER, mapped to [-0.5, 0.5) and scaled. Norm weights are 1 + 0.2 * value.
"""
import numpy as np

VOCAB = 260           # the 256 byte tokens of GPT-2's byte mapping, then 4 special tokens
HIDDEN = 64
INTERMEDIATE = 128
LAYERS = 2
HEADS = 4
KV_HEADS = 2
HEAD_DIM = HIDDEN // HEADS
CONTEXT = 128
ROPE_BASE = 10000.0
EPSILON = 1e-5
WEIGHT_SCALE = 0.4
INPUT_IDS = [256, 72, 101, 108, 108, 111, 44, 32, 119, 111, 114, 108, 100, 33, 10, 84, 104, 101]


def tensor_order():
    """(name, shape outermost-first, is_norm) in the order that seeds are assigned."""
    order = [("token_embd.weight", (VOCAB, HIDDEN), False)]
    for layer in range(LAYERS):
        p = f"blk.{layer}."
        order += [
            (p + "attn_norm.weight", (HIDDEN,), True),
            (p + "attn_q.weight", (HEADS * HEAD_DIM, HIDDEN), False),
            (p + "attn_k.weight", (KV_HEADS * HEAD_DIM, HIDDEN), False),
            (p + "attn_v.weight", (KV_HEADS * HEAD_DIM, HIDDEN), False),
            (p + "attn_output.weight", (HIDDEN, HEADS * HEAD_DIM), False),
            (p + "ffn_norm.weight", (HIDDEN,), True),
            (p + "ffn_gate.weight", (INTERMEDIATE, HIDDEN), False),
            (p + "ffn_up.weight", (INTERMEDIATE, HIDDEN), False),
            (p + "ffn_down.weight", (HIDDEN, INTERMEDIATE), False),
        ]
    order.append(("output_norm.weight", (HIDDEN,), True))
    return order


def values(seed, count):
    state = seed
    out = np.empty(count, dtype=np.float32)
    for i in range(count):
        state = (state * 1664525 + 1013904223) & 0xFFFFFFFF
        out[i] = np.float32((state >> 8) / float(1 << 24) - 0.5)
    return out


def weights():
    result = []
    for index, (name, shape, is_norm) in enumerate(tensor_order()):
        v = values(index + 1, int(np.prod(shape)))
        v = (1 + 0.2 * v) if is_norm else v * np.float32(WEIGHT_SCALE)
        result.append((name, v.astype(np.float32).reshape(shape), is_norm))
    return result


def byte_tokens():
    """GPT-2's byte-to-unicode table, in byte order."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + \
        list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    table = dict(zip(bs, cs))
    return [chr(table[b]) for b in range(256)]
