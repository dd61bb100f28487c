#!/usr/bin/env python3
"""Record what llama.cpp's own CPU kernels compute, for SwiftLMCoreTests' bit-exact checks.

SwiftLM reproduces the float arithmetic of ggml-cpu (the x86 build with AVX-512, as llama-cpp-python
builds it with GGML_NATIVE on this project's machines). This script feeds random inputs to the
exported functions of that build's libggml-cpu.so and stores inputs and outputs, so the Swift
tests compare against ggml without loading it:

  exp          ggml_v_expf, read through ggml_vec_soft_max_f32 with max = 0
  softmax      one row of ggml's soft_max op: ggml_vec_soft_max_f32, then a scale by 1 / sum
  swiglu       ggml_vec_swiglu_f32
  dot_f32      ggml_vec_dot_f32 (a product with one row)
  dot_f16      ggml_vec_dot_f16
  mul_mat      whole ggml_mul_mat graphs (F32, F16, Q8_0, Q4_1 weights; one row and several),
               so that ggml itself picks its kernels: llamafile's tinyBLAS for several rows

    .venv-ref/bin/python scripts/reference/make_kernel_fixtures.py [--lib DIR]

DIR defaults to the llama_cpp/lib folder of the running Python's llama-cpp-python. Writes
Tests/SwiftLMCoreTests/Fixtures/float_kernels.json (arrays base64-encoded, little-endian).
"""

import argparse
import base64
import ctypes
import json
from importlib.metadata import version
from pathlib import Path

import numpy as np
from gguf import GGMLQuantizationType as T
from gguf import quants

OUT = Path(__file__).resolve().parents[2] / "Tests" / "SwiftLMCoreTests" / "Fixtures"
rng = np.random.default_rng(20250917)
GGML_TYPE = {"F32": 0, "F16": 1, "Q4_1": 3, "Q8_0": 8}


def b64(array: np.ndarray) -> str:
    return base64.b64encode(np.ascontiguousarray(array).tobytes()).decode("ascii")


class GGML:
    def __init__(self, lib: Path):
        self.base = ctypes.CDLL(str(lib / "libggml-base.so"))
        self.cpu = ctypes.CDLL(str(lib / "libggml-cpu.so"))
        self.cpu.ggml_cpu_init()
        self.cpu.ggml_vec_soft_max_f32.restype = ctypes.c_double
        self.cpu.ggml_vec_soft_max_f32.argtypes = [
            ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_float]
        features = ("avx2", "fma", "f16c", "avx512", "avx512_vnni", "llamafile")
        self.features = [f for f in features if getattr(self.cpu, f"ggml_cpu_has_{f}")()]
        for name in ("ggml_init", "ggml_new_tensor_2d", "ggml_mul_mat", "ggml_new_graph",
                     "ggml_get_data"):
            getattr(self.base, name).restype = ctypes.c_void_p

    @staticmethod
    def ptr(array: np.ndarray):
        return array.ctypes.data_as(ctypes.c_void_p)

    def softmax_sum(self, y: np.ndarray, x: np.ndarray, maximum: float) -> float:
        return self.cpu.ggml_vec_soft_max_f32(x.size, self.ptr(y), self.ptr(x), maximum)

    def swiglu(self, gate: np.ndarray, up: np.ndarray) -> np.ndarray:
        y = np.zeros_like(gate)
        self.cpu.ggml_vec_swiglu_f32(gate.size, self.ptr(y), self.ptr(gate), self.ptr(up))
        return y

    def dot(self, name: str, x: np.ndarray, y: np.ndarray) -> np.float32:
        result = ctypes.c_float()
        getattr(self.cpu, name)(
            ctypes.c_int(x.size), ctypes.byref(result), ctypes.c_size_t(0), self.ptr(x),
            ctypes.c_size_t(0), self.ptr(y), ctypes.c_size_t(0), ctypes.c_int(1))
        return np.float32(result.value)

    def mul_mat(self, type_name: str, weights: np.ndarray, out_features: int, in_features: int,
                x: np.ndarray) -> np.ndarray:
        """ggml_mul_mat(weights [out, in] of type_name, x [rows, in] F32) -> [rows, out]."""

        class InitParams(ctypes.Structure):
            _fields_ = [("mem_size", ctypes.c_size_t), ("mem_buffer", ctypes.c_void_p),
                        ("no_alloc", ctypes.c_bool)]

        self.base.ggml_init.argtypes = [InitParams]
        ctx = ctypes.c_void_p(self.base.ggml_init(InitParams(64 << 20, None, False)))
        a = ctypes.c_void_p(self.base.ggml_new_tensor_2d(
            ctx, GGML_TYPE[type_name], ctypes.c_int64(in_features), ctypes.c_int64(out_features)))
        b = ctypes.c_void_p(self.base.ggml_new_tensor_2d(
            ctx, 0, ctypes.c_int64(in_features), ctypes.c_int64(x.shape[0])))
        ctypes.memmove(self.base.ggml_get_data(a), self.ptr(weights), weights.nbytes)
        ctypes.memmove(self.base.ggml_get_data(b), self.ptr(x), x.nbytes)
        c = ctypes.c_void_p(self.base.ggml_mul_mat(ctx, a, b))
        graph = ctypes.c_void_p(self.base.ggml_new_graph(ctx))
        self.base.ggml_build_forward_expand(graph, c)
        assert self.cpu.ggml_graph_compute_with_ctx(ctx, graph, 2) == 0
        result = np.empty((x.shape[0], out_features), dtype=np.float32)
        ctypes.memmove(self.ptr(result), self.base.ggml_get_data(c), result.nbytes)
        self.base.ggml_free(ctx)
        return result


def exp_cases(ggml: GGML) -> dict:
    """Inputs from deep underflow to overflow, the edges of the scale split, and specials."""
    x = np.concatenate([
        np.linspace(-110, 90, 2000), rng.uniform(-20, 0, 1000), rng.normal(0, 3, 500),
        np.array([-np.inf, -0.0, 0.0, 1e-30, -1e-30, 88.7, 88.72, -87.3, -87.34, -88.0, -103.9,
                  -104.0, -126 * np.log(2), -127 * np.log(2), 127 * np.log(2), 128 * np.log(2),
                  -192 * np.log(2), -193 * np.log(2)]),
    ]).astype(np.float32)
    x = np.concatenate([x, np.zeros((-x.size) % 16, dtype=np.float32)])
    y = np.zeros_like(x)
    ggml.softmax_sum(y, x, 0.0)
    return {"x": b64(x), "y": b64(y)}


def softmax_cases(ggml: GGML) -> list:
    cases = []
    for count in (1, 5, 16, 33, 64, 100, 256, 512):
        for masked in (0, count // 3):
            x = (rng.normal(0, 4, count)).astype(np.float32)
            if masked:
                x[count - masked:] = -np.inf
            y = np.zeros_like(x)
            total = ggml.softmax_sum(y, x, float(np.max(x)))
            y = (y * np.float32(1.0 / total)).astype(np.float32)
            cases.append({"count": count, "x": b64(x), "y": b64(y)})
    return cases


def swiglu_cases(ggml: GGML) -> list:
    cases = []
    for count in (7, 16, 40, 128, 1536):
        gate = rng.normal(0, 3, count).astype(np.float32)
        gate[:4] = [-120.0, 95.0, -0.0, 1e-20]  # far negative and positive, zeros, tiny
        up = rng.normal(0, 1, count).astype(np.float32)
        cases.append({"count": count, "gate": b64(gate), "up": b64(up),
                      "y": b64(ggml.swiglu(gate, up))})
    return cases


def dot_cases(ggml: GGML) -> list:
    cases = []
    for count in (1, 7, 8, 15, 16, 23, 40, 63, 64, 65, 100, 128, 200, 576, 1000):
        for dtype, name in ((np.float32, "ggml_vec_dot_f32"), (np.float16, "ggml_vec_dot_f16")):
            x = rng.normal(0, 1, count).astype(dtype)
            y = rng.normal(0, 1, count).astype(dtype)
            result = ggml.dot(name, x, y)
            cases.append({"type": "F32" if dtype == np.float32 else "F16", "count": count,
                          "x": b64(x), "y": b64(y), "dot": b64(np.array([result]))})
    return cases


def mul_mat_cases(ggml: GGML) -> list:
    cases = []
    for type_name in ("F32", "F16", "Q8_0", "Q4_1"):
        for in_features in (64, 80, 576):
            if type_name in ("Q8_0", "Q4_1") and in_features % 32:
                continue
            out_features = 8
            w = rng.normal(0, 0.5, (out_features, in_features)).astype(np.float32)
            if type_name == "F32":
                weights = w
            elif type_name == "F16":
                weights = w.astype(np.float16)
            else:
                weights = np.asarray(quants.quantize(w, getattr(T, type_name)))
            for rows in (1, 5):
                x = rng.normal(0, 1, (rows, in_features)).astype(np.float32)
                y = ggml.mul_mat(type_name, weights, out_features, in_features, x)
                cases.append({"type": type_name, "out_features": out_features,
                              "in_features": in_features, "rows": rows,
                              "weights": b64(weights), "x": b64(x), "y": b64(y)})
    return cases


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    default = None
    try:
        import llama_cpp
        default = Path(llama_cpp.__file__).parent / "lib"
    except ImportError:
        pass
    parser.add_argument("--lib", type=Path, default=default,
                        help="folder with libggml-base.so and libggml-cpu.so")
    args = parser.parse_args()
    ggml = GGML(args.lib)
    generator = (f"scripts/reference/make_kernel_fixtures.py, llama-cpp-python "
                 f"{version('llama_cpp_python')} ({' '.join(ggml.features)}), gguf "
                 f"{version('gguf')}, numpy {np.__version__}")
    fixture = {"generator": generator, "exp": exp_cases(ggml), "softmax": softmax_cases(ggml),
               "swiglu": swiglu_cases(ggml), "dot": dot_cases(ggml),
               "mul_mat": mul_mat_cases(ggml)}
    path = OUT / "float_kernels.json"
    path.write_text(json.dumps(fixture, indent=1) + "\n")
    print(f"{path.relative_to(OUT.parents[2])}: {path.stat().st_size // 1024} KiB")


if __name__ == "__main__":
    main()
