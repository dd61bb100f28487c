#!/usr/bin/env python3
"""Every intermediate tensor of one llama.cpp forward pass, by name, for finding the first op
where SwiftLM's numbers leave llama.cpp's.

    .venv-ref/bin/python scripts/reference/dump_llama_tensors.py MODEL.gguf OUT.npz ID [ID ...]

llama.cpp calls a context's `cb_eval` callback with each graph node it computes; this script
copies out the F32 and F16 ones (attn_norm-0, Qcur-0, kq-0, kq_soft_max-0, ffn_swiglu-0,
result_output, ...). Names repeat (Qcur-0 is the product, then its reshape, then its RoPE), so
later ones get #1, #2. Arrays keep ggml's dimension order reversed (outermost first), and
OUT.npz.order.txt lists every node with its op, ne and nb. The settings are those of the
fixtures: no flash attention, every row's logits, one batch.
"""
import ctypes
import sys
from pathlib import Path

import numpy as np
import llama_cpp
from llama_cpp import Llama, _internals

LIB = Path(llama_cpp.__file__).parent / "lib"
base = ctypes.CDLL(str(LIB / "libggml-base.so"))
base.ggml_get_name.restype = ctypes.c_char_p
base.ggml_get_name.argtypes = [ctypes.c_void_p]
base.ggml_op_desc.restype = ctypes.c_char_p
base.ggml_op_desc.argtypes = [ctypes.c_void_p]
base.ggml_backend_tensor_get.argtypes = [
    ctypes.c_void_p, ctypes.c_void_p, ctypes.c_size_t, ctypes.c_size_t]

tensors = {}
order = []


def layout(tensor: int):
    """type, ne and nb from the head of `struct ggml_tensor` (ggml.h): int32 type, a pointer,
    int64 ne[4], size_t nb[4]."""
    type_id = ctypes.c_int32.from_address(tensor).value
    ne = [ctypes.c_int64.from_address(tensor + 16 + 8 * i).value for i in range(4)]
    nb = [ctypes.c_uint64.from_address(tensor + 48 + 8 * i).value for i in range(4)]
    return type_id, ne, nb


@llama_cpp.ggml_backend_sched_eval_callback
def observe(tensor, ask, _user_data):
    if ask:
        return True  # observe every node
    type_id, ne, nb = layout(tensor)
    name = base.ggml_get_name(tensor).decode()
    if type_id in (0, 1):  # F32, F16
        size = 4 if type_id == 0 else 2
        extent = sum((n - 1) * stride for n, stride in zip(ne, nb)) + size
        raw = (ctypes.c_uint8 * extent)()
        base.ggml_backend_tensor_get(tensor, raw, 0, extent)
        flat = np.frombuffer(raw, dtype=np.uint8)[: extent - extent % size]
        values = np.lib.stride_tricks.as_strided(
            flat.view(np.float32 if type_id == 0 else np.float16), shape=ne[::-1],
            strides=nb[::-1])
        key, copy = name, 1
        while key in tensors:
            key, copy = f"{name}#{copy}", copy + 1
        tensors[key] = values.copy()
        order.append(f"{key}\t{base.ggml_op_desc(tensor).decode()}\t{ne}\t{nb}")
    return True


def main():
    model, out, ids = sys.argv[1], sys.argv[2], [int(i) for i in sys.argv[3:]]
    create = llama_cpp.llama_init_from_model

    def with_callback(model_handle, params):
        params.cb_eval = observe
        return create(model_handle, params)

    _internals.llama_cpp.llama_init_from_model = with_callback
    llm = Llama(model_path=model, n_ctx=max(256, len(ids)), n_batch=512, logits_all=True,
                n_threads=2, n_threads_batch=2, flash_attn=False, verbose=False)
    llm.eval(ids)
    tensors["logits"] = np.asarray(llm.scores[: len(ids)], dtype=np.float32)
    np.savez(out, **tensors)
    Path(out + ".order.txt").write_text("\n".join(order) + "\n")
    print(f"{out}: {len(tensors)} tensors")


if __name__ == "__main__":
    main()
