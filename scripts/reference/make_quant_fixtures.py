#!/usr/bin/env python3
"""Write the quantization fixtures of SwiftLMCoreTests from gguf-py, a reference nobody here wrote.

gguf-py (the `gguf` package of llama.cpp) has numpy dequantizers for every type SwiftLM reads and
quantizers for several; its Q8_0 quantizer is documented as bit-exact with ggml's reference. This
script draws random but valid blocks and random float rows, runs them through gguf-py, and stores
inputs and outputs, so the Swift tests compare against gguf-py without running Python.

    python3 -m venv /tmp/gg && /tmp/gg/bin/pip install gguf numpy
    /tmp/gg/bin/python scripts/reference/make_quant_fixtures.py \
        [--model ~/.cache/swiftlm/SmolLM2-135M-Instruct.Q4_1.gguf] \
        [--ggml-cpu .venv-ref/lib/python3.11/site-packages/llama_cpp/lib/libggml-cpu.so]

The committed fixtures were made with both (gguf 0.19.0, llama-cpp-python 0.3.36 built with
AVX2, FMA, F16C, AVX-512 and VNNI); the generator field of each file says so.

Outputs, in Tests/SwiftLMCoreTests/Fixtures/ (binary data base64-encoded, little-endian):
  quant_dequantize.json  blocks of each type and gguf-py's floats for them
  quant_quantize.json    float rows and gguf-py's blocks for them (the types it can quantize)
  quant_dot.json         weight rows, float activations, and float64 dot(dequantize(w), x)
With --model, rows sampled from the model's Q4_1 and Q8_0 tensors join the first and third.

With --ggml-cpu (libggml-cpu.so of a llama.cpp build, e.g. llama-cpp-python's), each dot case also
records what llama.cpp's CPU backend itself computes: the activation blocks of its `from_float`
quantizer (quantize_row_q8_0/_q8_1/_q8_K, ggml_cpu_fp32_to_fp16/_bf16) and the results of its
`ggml_vec_dot_*` kernel, both the build's SIMD one and the portable `_generic` one. The Swift
tests expect these fields, so regenerate with --ggml-cpu.
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
QK_K = 256
K_QUANTS = (T.Q4_K, T.Q5_K, T.Q6_K)
rng = np.random.default_rng(20240601)


def block_size(qtype: T) -> int:
    return QK_K if qtype in K_QUANTS else 32


def dequantized(raw: np.ndarray, qtype: T, dtype=np.float32) -> np.ndarray:
    return np.asarray(quants.dequantize(raw.reshape(-1).view(np.uint8), qtype), dtype=dtype).ravel()


def quantized(row: np.ndarray, qtype: T) -> np.ndarray:
    return np.asarray(quants.quantize(row.reshape(1, -1), qtype)).reshape(-1).view(np.uint8)


def b64(array: np.ndarray) -> str:
    return base64.b64encode(np.ascontiguousarray(array).tobytes()).decode("ascii")


def halves(values) -> np.ndarray:
    """Block scales as binary16 bytes."""
    return np.asarray(values, dtype=np.float16).reshape(-1, 1).view(np.uint8)


def random_bytes(n_blocks: int, n: int) -> np.ndarray:
    return rng.integers(0, 256, size=(n_blocks, n), dtype=np.uint8)


def scales(n_blocks: int, low: float, high: float, signed: bool) -> np.ndarray:
    """Log-uniform magnitudes, the spread real block scales have."""
    values = np.exp(rng.uniform(np.log(low), np.log(high), size=n_blocks))
    if signed:
        values *= rng.choice([-1.0, 1.0], size=n_blocks)
    return values


def random_blocks(qtype: T, n_blocks: int) -> np.ndarray:
    """Valid blocks of `qtype`: random quants, finite scales of plausible size. The layouts are
    those of ggml-common.h. Returns (n_blocks, bytes per block) uint8."""
    if qtype == T.Q8_0:
        return np.hstack([halves(scales(n_blocks, 1e-4, 1e-1, True)), random_bytes(n_blocks, 32)])
    if qtype == T.Q4_0:
        return np.hstack([halves(scales(n_blocks, 1e-4, 1e-1, True)), random_bytes(n_blocks, 16)])
    if qtype == T.Q4_1:
        d = halves(scales(n_blocks, 1e-4, 1e-1, False))
        m = halves(scales(n_blocks, 1e-3, 1.0, True))
        return np.hstack([d, m, random_bytes(n_blocks, 16)])
    if qtype == T.Q5_0:
        d = halves(scales(n_blocks, 1e-4, 1e-1, True))
        return np.hstack([d, random_bytes(n_blocks, 4 + 16)])
    if qtype == T.Q5_1:
        d = halves(scales(n_blocks, 1e-4, 1e-1, False))
        m = halves(scales(n_blocks, 1e-3, 1.0, True))
        return np.hstack([d, m, random_bytes(n_blocks, 4 + 16)])
    if qtype in (T.Q4_K, T.Q5_K):
        d = halves(scales(n_blocks, 1e-5, 1e-2, False))
        dmin = halves(scales(n_blocks, 1e-5, 1e-2, False))
        rest = 12 + 128 + (32 if qtype == T.Q5_K else 0)
        return np.hstack([d, dmin, random_bytes(n_blocks, rest)])
    if qtype == T.Q6_K:
        d = halves(scales(n_blocks, 1e-5, 1e-2, False))
        return np.hstack([random_bytes(n_blocks, 128 + 64 + 16), d])
    raise ValueError(qtype)


def random_halves(n: int) -> np.ndarray:
    """binary16 bit patterns: random finite ones plus zeros, subnormals, extremes, infinities."""
    special = [0x0000, 0x8000, 0x0001, 0x03FF, 0x0400, 0x7BFF, 0xFBFF, 0x7C00, 0xFC00, 0x3C00,
               0xC000, 0x3555]
    bits = rng.integers(0, 1 << 16, size=n, dtype=np.uint16)
    bits = bits[(bits & 0x7C00) != 0x7C00]  # no NaN, no infinity among the random ones
    return np.concatenate([np.array(special, dtype=np.uint16), bits])


def random_bfloats(n: int) -> np.ndarray:
    special = [0x0000, 0x8000, 0x0001, 0x007F, 0x0080, 0x7F7F, 0xFF7F, 0x7F80, 0xFF80, 0x3F80,
               0xC000]
    bits = rng.integers(0, 1 << 16, size=n, dtype=np.uint16)
    bits = bits[(bits & 0x7F80) != 0x7F80]
    return np.concatenate([np.array(special, dtype=np.uint16), bits])


def dequantize_case(name: str, qtype: T, raw: np.ndarray) -> dict:
    values = dequantized(raw, qtype)
    return {"name": name, "type": qtype.name, "count": int(values.size), "blocks": b64(raw),
            "values": b64(values)}


def float_rows() -> list[tuple[str, np.ndarray]]:
    """Rows of 256 floats (8 blocks of 32, one super-block) that exercise the quantizers."""
    rows = []
    rows.append(("gaussian", rng.normal(0, 0.05, 256)))
    outliers = rng.normal(0, 0.02, 256)
    outliers[rng.integers(0, 256, 8)] = rng.normal(0, 3.0, 8)
    rows.append(("outliers", outliers))

    # With amax = 127, d = 1 and x / d lands exactly on halves: round-half rules decide.
    ties = rng.integers(-126, 126, 256) + 0.5
    ties[::32] = 127.0
    rows.append(("exact ties", ties))

    # Zero blocks (d = 0), constant blocks (max = min), one-sign blocks, tiny values.
    special = np.concatenate([
        np.zeros(32), np.full(32, 0.3), np.full(32, -2.5), rng.uniform(0.1, 1.0, 32),
        -rng.uniform(0.1, 1.0, 32), rng.normal(0, 1e-6, 32), rng.normal(0, 1e4, 32),
        np.tile([1.0, -1.0], 16),
    ])
    rows.append(("special blocks", special))
    rows.append(("uniform", rng.uniform(-1, 1, 256)))
    return [(name, row.astype(np.float32)) for name, row in rows]


def quantize_cases() -> list[dict]:
    cases = []
    for name, row in float_rows():
        for qtype in (T.Q8_0, T.Q4_0, T.Q4_1, T.Q5_0, T.Q5_1, T.BF16, T.F16):
            cases.append(quantize_case(name, qtype, row, quantized(row, qtype)))

    # Random bit patterns, NaN and infinities included, for the 16-bit float conversions.
    bits = rng.integers(0, 1 << 32, size=512, dtype=np.uint64).astype(np.uint32)
    bits[:6] = [0x7F800000, 0xFF800000, 0x7FC00001, 0xFF812345, 0x00000001, 0x3F808000]
    row = bits.view(np.float32)
    cases.append(quantize_case("random bits", T.BF16, row, quantized(row, T.BF16)))
    finite = row[np.isfinite(row)][:256]
    with np.errstate(over="ignore"):  # beyond 65504 becomes infinity, as in C
        raw = quantized(finite, T.F16)
    cases.append(quantize_case("random bits", T.F16, finite, raw))
    return cases


def quantize_case(name: str, qtype: T, row: np.ndarray, raw: np.ndarray) -> dict:
    return {"name": name, "type": qtype.name, "count": int(row.size), "input": b64(row),
            "bytes": b64(raw)}


def dot_case(name: str, qtype: T, raw: np.ndarray, count: int) -> dict:
    """One weight row and a float activation row; the expected value is the exact dot product of
    gguf-py's dequantized weights with the unquantized activations, in float64."""
    weights = dequantized(raw, qtype, np.float64)
    assert weights.size == count
    x = rng.normal(0, 1.0, count).astype(np.float32)
    return {
        "name": name, "type": qtype.name, "count": count, "weights": b64(raw),
        "activations": b64(x),
        "expected": float(np.dot(weights, x.astype(np.float64))),
    }


def dot_cases() -> list[dict]:
    cases = []
    count = 512
    for qtype in (T.Q8_0, T.Q4_0, T.Q4_1, T.F16, T.BF16):
        for i in range(2):
            w = rng.normal(0, 0.05, count).astype(np.float32)
            cases.append(dot_case(f"quantized gaussian {i}", qtype, quantized(w, qtype), count))
    for qtype in (T.Q4_K, T.Q5_K, T.Q6_K, T.Q8_0, T.Q4_0, T.Q4_1):
        for i in range(2):
            blocks = random_blocks(qtype, count // block_size(qtype))
            cases.append(dot_case(f"random blocks {i}", qtype, blocks, count))
    w = rng.normal(0, 0.05, count).astype(np.float32)
    cases.append(dot_case("gaussian", T.F32, w.view(np.uint8), count))
    return cases


class GGML:
    """llama.cpp's CPU kernels, called through ctypes."""

    FROM_FLOAT = {"Q8_0": "quantize_row_q8_0", "Q8_1": "quantize_row_q8_1",
                  "Q8_K": "quantize_row_q8_K", "F16": "ggml_cpu_fp32_to_fp16",
                  "BF16": "ggml_cpu_fp32_to_bf16"}
    ACTIVATION = {"Q8_0": "Q8_0", "Q4_0": "Q8_0", "Q4_1": "Q8_1", "Q4_K": "Q8_K", "Q5_K": "Q8_K",
                  "Q6_K": "Q8_K", "F16": "F16", "BF16": "BF16", "F32": "F32"}
    ACTIVATION_BYTES = {"Q8_0": 34 / 32, "Q8_1": 36 / 32, "Q8_K": 292 / 256, "F16": 2, "BF16": 2,
                        "F32": 4}

    def __init__(self, path: Path):
        self.path = path
        self.lib = ctypes.CDLL(str(path))
        self.lib.ggml_cpu_init()
        features = ("avx2", "fma", "f16c", "avx512", "avx512_vnni")
        self.features = [f for f in features if getattr(self.lib, f"ggml_cpu_has_{f}")()]

    def kernel(self, weight_type: str) -> str:
        if weight_type in ("F32", "F16", "BF16"):
            return f"ggml_vec_dot_{weight_type.lower()}"
        return f"ggml_vec_dot_{weight_type.lower()}_{self.ACTIVATION[weight_type].lower()}".replace(
            "_k", "_K")

    def activations(self, weight_type: str, x: np.ndarray) -> np.ndarray:
        activation_type = self.ACTIVATION[weight_type]
        x = np.ascontiguousarray(x, dtype=np.float32)
        if activation_type == "F32":
            return x.view(np.uint8).copy()
        out = np.zeros(int(x.size * self.ACTIVATION_BYTES[activation_type]), dtype=np.uint8)
        getattr(self.lib, self.FROM_FLOAT[activation_type])(
            x.ctypes.data_as(ctypes.c_void_p), out.ctypes.data_as(ctypes.c_void_p),
            ctypes.c_int64(x.size))
        return out

    def dot(self, name: str, count: int, weights: np.ndarray, activations: np.ndarray) -> float:
        result = ctypes.c_float(0)
        weights = np.ascontiguousarray(weights)
        getattr(self.lib, name)(
            ctypes.c_int(count), ctypes.byref(result), ctypes.c_size_t(0),
            weights.ctypes.data_as(ctypes.c_void_p), ctypes.c_size_t(0),
            activations.ctypes.data_as(ctypes.c_void_p), ctypes.c_size_t(0), ctypes.c_int(1))
        return float(result.value)

    def annotate(self, case: dict) -> None:
        """Adds llama.cpp's activation blocks and dot products to a dot case."""
        weights = np.frombuffer(base64.b64decode(case["weights"]), dtype=np.uint8)
        x = np.frombuffer(base64.b64decode(case["activations"]), dtype=np.float32)
        activations = self.activations(case["type"], x)
        name = self.kernel(case["type"])
        record = {"activations": b64(activations),
                  "dot": self.dot(name, case["count"], weights, activations)}
        if case["type"] not in ("F32", "F16", "BF16"):
            record["dot_generic"] = self.dot(name + "_generic", case["count"], weights, activations)
        case["ggml"] = record


def model_rows(path: Path) -> tuple[list[dict], list[dict]]:
    """A few rows of the model's Q4_1 and Q8_0 tensors: real blocks, real scale distributions."""
    from gguf import GGUFReader

    reader = GGUFReader(path)
    picks = {"blk.0.attn_q.weight": [0, 101], "blk.7.ffn_down.weight": [3],
             "token_embd.weight": [0, 2001]}
    dequantize, dot = [], []
    for tensor in reader.tensors:
        if tensor.name not in picks:
            continue
        qtype = T(tensor.tensor_type)
        for row in picks[tensor.name]:
            raw = np.asarray(tensor.data[row], dtype=np.uint8)
            count = int(tensor.shape[0])
            label = f"{path.name} {tensor.name} row {row}"
            dequantize.append(dequantize_case(label, qtype, raw))
            dot.append(dot_case(label, qtype, raw, count))
    return dequantize, dot


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, help="a GGUF file with Q4_1 and Q8_0 tensors")
    parser.add_argument("--ggml-cpu", type=Path, help="libggml-cpu.so of a llama.cpp build")
    args = parser.parse_args()
    generator = (f"scripts/reference/make_quant_fixtures.py, gguf {version('gguf')}, "
                 f"numpy {np.__version__}")

    dequantize = []
    for qtype in (T.Q8_0, T.Q4_0, T.Q4_1, T.Q5_0, T.Q5_1, T.Q4_K, T.Q5_K, T.Q6_K):
        n_blocks = 3 if block_size(qtype) == QK_K else 8
        dequantize.append(dequantize_case("random blocks", qtype, random_blocks(qtype, n_blocks)))
    # Scales at the edges of binary16: zero, negative zero, subnormal, largest finite.
    edge = random_blocks(T.Q8_0, 4)
    edge[:, :2] = halves([0.0, -0.0, 6e-8, 65504.0])
    dequantize.append(dequantize_case("edge scales", T.Q8_0, edge))
    edge = random_blocks(T.Q4_1, 4)
    d = halves([6e-8, 0.0, 1e-3, 65504.0])
    edge[:, :4] = np.hstack([d, halves([-65504.0, 6e-8, -0.0, 1.0])])
    dequantize.append(dequantize_case("edge scales", T.Q4_1, edge))
    for qtype, bits in ((T.F16, random_halves(500)), (T.BF16, random_bfloats(500))):
        dequantize.append(dequantize_case("special and random", qtype, bits.view(np.uint8)))

    dot = dot_cases()
    if args.model:
        real_dequantize, real_dot = model_rows(args.model)
        dequantize += real_dequantize
        dot += real_dot
    if args.ggml_cpu:
        ggml = GGML(args.ggml_cpu)
        for case in dot:
            ggml.annotate(case)
        generator += f", {args.ggml_cpu.resolve().name} ({' '.join(ggml.features)})"

    OUT.mkdir(parents=True, exist_ok=True)
    for name, cases in (("dequantize", dequantize), ("quantize", quantize_cases()), ("dot", dot)):
        path = OUT / f"quant_{name}.json"
        path.write_text(json.dumps({"generator": generator, "cases": cases}, indent=1) + "\n")
        size = path.stat().st_size // 1024
        print(f"{path.relative_to(OUT.parents[2])}: {len(cases)} cases, {size} KiB")


if __name__ == "__main__":
    main()
