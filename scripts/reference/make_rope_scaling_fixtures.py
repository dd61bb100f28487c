#!/usr/bin/env python3
"""llama.cpp's RoPE scaling, linear position interpolation and YaRN (the two kinds llama.cpp
reads from `llama.rope.scaling.type`), recorded twice:

    .venv-ref/bin/python scripts/reference/make_rope_scaling_fixtures.py

1. Tests/SwiftLMModelsTests/Fixtures/tiny_model_rope_scaling_logits.json: llama.cpp's logits for
   the formula-built tiny Llama model (tiny_model.py) with the scaling in its GGUF metadata. The
   Swift test builds the same GGUF files (TinyModel.writer plus the keys listed under
   "metadata") and compares its logits with these bit for bit, as for the unscaled model.
2. Tests/SwiftLMCoreTests/Fixtures/rope_scaling.json: ggml's own `ggml_rope_ext` (called through
   ctypes in llama-cpp-python's libggml) on heads of 64 and 128 values at positions up to 32767,
   which the tiny model (heads of 16, 18 positions) does not reach. The `attn_factor` passed is
   the one `llama_context` computes for YaRN (see `yarn_attention_factor`), so the outputs are
   what llama.cpp's graph gets.

The YaRN variants are chosen so that the ramp between extrapolation and interpolation has
fractional weights on some pairs of the 16-dimension heads, which is where the arithmetic of
ggml's `rope_yarn` (which multiply-adds are fused) shows: with base 10000 and beta_fast 32,
beta_slow 1, an original context of 150 gives correction dims 0...3 (weights 2/3 and 1/3), and
1000 gives 1...5 (weights 3/4, 1/2, 1/4). A factor of 2.5 makes 1 / factor inexact.

The last two factors test the magnitude on cos and sin, `a * (1 + 0.1 ln factor)` with
`a = get_mscale(factor) * (1 / (1 + 0.1 ln factor))` from llama_context: for 12, `a` is not 1;
for 29.75 the result differs in the last bit depending on which of the two `1 + 0.1 ln factor`
terms is fused (ggml-cpu's is, libllama's is not), so only the right order matches.
"""
import ctypes
import base64
import json
import os
import sys
import tempfile

import gguf
import numpy as np
from llama_cpp import Llama

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import make_tiny_model_fixtures as fixtures  # noqa: E402
import tiny_model as tm  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
OUT = os.path.join(
    ROOT, "Tests", "SwiftLMModelsTests", "Fixtures", "tiny_model_rope_scaling_logits.json")
KERNEL_OUT = os.path.join(ROOT, "Tests", "SwiftLMCoreTests", "Fixtures", "rope_scaling.json")

# name -> (scaling type, factor, original context length or None)
VARIANTS = {
    "linear_4": ("linear", 4.0, None),
    "yarn_4_ctx150": ("yarn", 4.0, 150),
    "yarn_2.5_ctx1000": ("yarn", 2.5, 1000),
    "yarn_12_ctx64": ("yarn", 12.0, 64),
    "yarn_29.75_ctx4096": ("yarn", 29.75, 4096),
}


def logits_for(kind, factor, original_context):
    def add_scaling(w):
        w.add_rope_scaling_type(gguf.RopeScalingType(kind))
        w.add_rope_scaling_factor(factor)
        if original_context is not None:
            w.add_rope_scaling_orig_ctx_len(original_context)

    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "tiny-scaled.gguf")
        fixtures.write_gguf(path, gguf.GGMLQuantizationType.F32, add_scaling)
        llm = Llama(model_path=path, n_ctx=tm.CONTEXT, n_batch=64, logits_all=True,
                    n_threads=1, flash_attn=False, verbose=False)
        llm.eval(tm.INPUT_IDS)
        logits = np.asarray(llm.scores[: len(tm.INPUT_IDS)], dtype=np.float32)
        del llm
    return [[float(x) for x in row] for row in logits]


# --- ggml_rope_ext through ctypes -----------------------------------------------------------

LIB = os.path.join(os.path.dirname(os.path.abspath(__import__("llama_cpp").__file__)), "lib")
GGML_TYPE_F32, GGML_TYPE_I32, GGML_ROPE_TYPE_NORMAL = 0, 26, 0


class InitParams(ctypes.Structure):
    _fields_ = [("mem_size", ctypes.c_size_t), ("mem_buffer", ctypes.c_void_p),
                ("no_alloc", ctypes.c_bool)]


def load_ggml():
    base = ctypes.CDLL(os.path.join(LIB, "libggml-base.so"), mode=ctypes.RTLD_GLOBAL)
    cpu = ctypes.CDLL(os.path.join(LIB, "libggml-cpu.so"), mode=ctypes.RTLD_GLOBAL)
    pointer, i64, i32, f32 = ctypes.c_void_p, ctypes.c_int64, ctypes.c_int, ctypes.c_float
    signatures = {
        "ggml_init": ([InitParams], pointer),
        "ggml_new_tensor_1d": ([pointer, i32, i64], pointer),
        "ggml_new_tensor_3d": ([pointer, i32, i64, i64, i64], pointer),
        "ggml_rope_ext": ([pointer] * 4 + [i32] * 3 + [f32] * 6, pointer),
        "ggml_new_graph": ([pointer], pointer),
        "ggml_build_forward_expand": ([pointer, pointer], None),
        "ggml_get_data": ([pointer], pointer),
        "ggml_free": ([pointer], None),
    }
    for name, (arguments, result) in signatures.items():
        getattr(base, name).argtypes = arguments
        getattr(base, name).restype = result
    cpu.ggml_graph_compute_with_ctx.argtypes = [pointer, pointer, i32]
    return base, cpu


def ggml_rope(x, positions, n_dims, freq_base, freq_scale, ext_factor, attn_factor, n_ctx_orig,
              beta_fast, beta_slow):
    """ggml_rope_ext in "normal" (adjacent-pair) mode on x of shape [tokens, heads, head_dim]."""
    base, cpu = load_ggml()
    tokens, heads, head_dim = x.shape
    ctx = base.ggml_init(InitParams(64 << 20, None, False))
    a = base.ggml_new_tensor_3d(ctx, GGML_TYPE_F32, head_dim, heads, tokens)
    p = base.ggml_new_tensor_1d(ctx, GGML_TYPE_I32, tokens)
    ctypes.memmove(base.ggml_get_data(a), np.ascontiguousarray(x).ctypes.data, x.size * 4)
    ctypes.memmove(base.ggml_get_data(p), np.asarray(positions, np.int32).ctypes.data, tokens * 4)
    r = base.ggml_rope_ext(ctx, a, p, None, n_dims, GGML_ROPE_TYPE_NORMAL, n_ctx_orig, freq_base,
                           freq_scale, ext_factor, attn_factor, beta_fast, beta_slow)
    graph = base.ggml_new_graph(ctx)
    base.ggml_build_forward_expand(graph, r)
    cpu.ggml_graph_compute_with_ctx(ctx, graph, 1)
    out = np.frombuffer(ctypes.string_at(base.ggml_get_data(r), x.size * 4), np.float32)
    base.ggml_free(ctx)
    return out.reshape(x.shape).copy()


def yarn_attention_factor(factor):
    """`cparams.yarn_attn_factor` as llama_context computes it for YaRN (llama-context.cpp:
    get_mscale(factor, 1) * (1 / (1 + 0.1 ln factor))), in binary32 without fused multiply-adds,
    as libllama is built, and with glibc's logf."""
    libm = ctypes.CDLL("libm.so.6")
    libm.logf.argtypes, libm.logf.restype = [ctypes.c_float], ctypes.c_float
    f32 = np.float32
    freq_scale = f32(1) / f32(factor)
    scale = f32(1) / freq_scale
    log_scale = f32(libm.logf(scale))
    mscale = f32(1) if scale <= 1 else f32(f32(f32(0.1) * log_scale) + f32(1))
    return float(f32(mscale * f32(f32(1) / f32(f32(1) + f32(f32(0.1) * log_scale)))))


# name -> (type, factor, original context, base, head_dim, n_dims, beta_fast, beta_slow)
KERNEL_CASES = {
    "linear_4": ("linear", 4.0, 4096, 10000.0, 128, 128, 32.0, 1.0),
    "linear_2.5_base500000": ("linear", 2.5, 8192, 500000.0, 128, 128, 32.0, 1.0),
    "yarn_4_ctx4096": ("yarn", 4.0, 4096, 10000.0, 128, 128, 32.0, 1.0),
    "yarn_8_ctx8192_base500000": ("yarn", 8.0, 8192, 500000.0, 128, 128, 32.0, 1.0),
    "yarn_29.75_ctx2048": ("yarn", 29.75, 2048, 10000.0, 128, 128, 32.0, 1.0),
    "yarn_12_ctx4096_betas": ("yarn", 12.0, 4096, 1000000.0, 128, 128, 16.0, 2.0),
    "yarn_4_ctx4096_partial": ("yarn", 4.0, 4096, 10000.0, 64, 48, 32.0, 1.0),
}
KERNEL_POSITIONS = [0, 1, 7, 100, 1000, 4095, 10000, 32767]


def floats(values):
    return base64.b64encode(np.asarray(values, "<f4").tobytes()).decode()


def kernel_cases():
    cases = []
    for name, (kind, factor, original, freq_base, head_dim, n_dims, fast, slow) in \
            KERNEL_CASES.items():
        rng = np.random.default_rng(len(cases) + 1)
        x = rng.uniform(-1, 1, (len(KERNEL_POSITIONS), 2, head_dim)).astype(np.float32)
        yarn = kind == "yarn"
        freq_scale = float(np.float32(1) / np.float32(factor))
        y = ggml_rope(x, KERNEL_POSITIONS, n_dims, freq_base, freq_scale,
                      1.0 if yarn else 0.0, yarn_attention_factor(factor) if yarn else 1.0,
                      original, fast, slow)
        cases.append({"name": name, "type": kind, "factor": factor,
                      "original_context_length": original, "base": freq_base,
                      "head_dim": head_dim, "dims": n_dims, "beta_fast": fast, "beta_slow": slow,
                      "positions": KERNEL_POSITIONS, "heads": 2,
                      "input": floats(x), "output": floats(y)})
    return cases


def main():
    with open(KERNEL_OUT, "w") as f:
        json.dump({"generator": "scripts/reference/make_rope_scaling_fixtures.py",
                   "cases": kernel_cases()}, f, indent=1)
    print("wrote", KERNEL_OUT)

    variants = {}
    for name, (kind, factor, original_context) in VARIANTS.items():
        variants[name] = {
            "metadata": {"type": kind, "factor": factor,
                         "original_context_length": original_context},
            "logits": logits_for(kind, factor, original_context),
        }
    with open(OUT, "w") as f:
        json.dump({"generator": "scripts/reference/make_rope_scaling_fixtures.py",
                   "input_ids": tm.INPUT_IDS, "variants": variants}, f)
    print("wrote", OUT)


if __name__ == "__main__":
    main()
