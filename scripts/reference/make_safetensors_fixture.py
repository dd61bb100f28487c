#!/usr/bin/env python3
"""Safetensors fixtures of SwiftLMFormatsTests from the `safetensors` library, a reference nobody
here wrote, and the check that the library reads what SwiftLM's writer wrote.

    .venv-ref/bin/pip install safetensors torch numpy
    .venv-ref/bin/python scripts/reference/make_safetensors_fixture.py          # write + check
    .venv-ref/bin/python scripts/reference/make_safetensors_fixture.py --check-only

Outputs, in Tests/SwiftLMFormatsTests/Fixtures/:
  safetensors_reference.safetensors         F32, F16, BF16, F64 and I64 tensors, a scalar, an
                                            empty tensor and two metadata pairs, written by
                                            safetensors.torch.save_file
  safetensors_reference_floats.safetensors  only the F32, F16 and BF16 tensors and one metadata
                                            pair: SwiftLM's writer must reproduce it byte for byte
  safetensors_reference.json                for each file: metadata, tensor names in data order,
                                            and per tensor dtype, shape, the raw bytes (hex), the
                                            float32 bit patterns of its values and, for I64, the
                                            integers
The reference keeps metadata in a hash map, so the order of the two pairs in the first file can
change from run to run; the JSON and every check stay the same.

Then, and alone with --check-only, it opens safetensors_swiftlm.safetensors, the file SwiftLM's
writer produced, with safetensors.safe_open and checks its metadata, names, dtypes, shapes and
values against SWIFTLM_EXPECTED below. The Swift test "the writer's file matches the fixture
the reference library checked" writes the same tensors and compares bytes with that file; to
remake it after a deliberate change to the writer, run

    SWIFTLM_REGENERATE_FIXTURES=1 swift test --filter SafeTensorsInterop

and then this script with --check-only. The committed fixtures were made with the versions in
the JSON's generator field (safetensors 0.8.0, torch 2.13.0+cpu).
"""

import argparse
import json
import math
import struct
from importlib.metadata import version
from pathlib import Path

import numpy as np
import torch
from safetensors import safe_open
from safetensors.torch import save_file

OUT = Path(__file__).resolve().parents[2] / "Tests" / "SwiftLMFormatsTests" / "Fixtures"

# What the Swift test writes into safetensors_swiftlm.safetensors (SafeTensorsInteropTests.swift,
# `swiftlmTensors`); the two lists must agree. Values are exact in their dtype.
SWIFTLM_EXPECTED = {
    "metadata": {
        "format": "pt",
        "step": "42",
        "\u00fcn\u00efcode key": 'line\nbreak "quoted" \\ \u0001 \u00e9',
    },
    "tensors": {
        "b.weight": ("F32", [2, 3], [-1.5, 0.25, 3.0, -0.0, 1024.5, 7.0]),
        "a.bias": ("F16", [3], [0.5, -2.0, 65504.0]),
        "c": ("BF16", [2, 2], [1.0, -3.0, 0.15625, 256.0]),
        "scalar": ("F32", [], [42.0]),
        "empty": ("F16", [0], []),
        'na\u00efve "quoted"\n\u0001': ("F32", [1], [1.0]),
    },
}
TORCH_DTYPES = {"F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16}


def reference_tensors() -> dict:
    """Random values, plus the float cases a converter gets wrong first: signed zero, the
    largest and a subnormal half, infinities and a NaN."""
    gen = torch.Generator().manual_seed(20240611)
    return {
        "embed.weight": torch.randn(3, 4, generator=gen),
        "norm.weight": torch.tensor(
            [1.0, -0.0, 2.0**-24, 65504.0, float("inf"), -float("inf"), float("nan"), -3.5],
            dtype=torch.float16,
        ),
        "proj.weight": torch.randn(2, 3, generator=gen).to(torch.bfloat16),
        "scale": torch.tensor(0.125, dtype=torch.float32),
        "empty": torch.zeros(0, 4, dtype=torch.float32),
        "double": torch.tensor([0.1, -1e300, 3.0], dtype=torch.float64),
        "position_ids": torch.tensor([0, 1, -7, 2**40, -(2**62)], dtype=torch.int64),
    }


def float_bits(tensor: torch.Tensor) -> list:
    """The float32 bit pattern of each value, so NaN and -0 survive JSON exactly. float64 values
    are rounded to the nearest float32 (1e300 becomes infinity), as SwiftLM's reader rounds them."""
    with np.errstate(over="ignore"):
        values = tensor.detach().to(torch.float64).numpy().astype(np.float32).reshape(-1)
    return [int(bits) for bits in values.view(np.uint32)]


def raw_hex(tensor: torch.Tensor) -> str:
    flat = tensor.detach().contiguous().reshape(-1)
    if flat.dtype == torch.bfloat16:
        flat = flat.view(torch.int16)
    return flat.numpy().tobytes().hex()


def data_order(path: Path) -> list:
    """Tensor names sorted by data offset, read straight from the header."""
    with open(path, "rb") as file:
        (length,) = struct.unpack("<Q", file.read(8))
        header = json.loads(file.read(length))
    header.pop("__metadata__", None)
    return sorted(header, key=lambda name: header[name]["data_offsets"])


def describe(path: Path, tensors: dict, metadata: dict) -> dict:
    dtypes = {torch.float32: "F32", torch.float16: "F16", torch.bfloat16: "BF16",
              torch.float64: "F64", torch.int64: "I64"}
    entries = {}
    for name, tensor in tensors.items():
        entry = {"dtype": dtypes[tensor.dtype], "shape": list(tensor.shape), "hex": raw_hex(tensor)}
        if tensor.dtype == torch.int64:
            entry["ints"] = [int(value) for value in tensor.reshape(-1).tolist()]
        else:
            entry["float_bits"] = float_bits(tensor)
        entries[name] = entry
    return {"metadata": metadata, "names": data_order(path), "tensors": entries}


def write_reference() -> None:
    tensors = reference_tensors()
    metadata = {"format": "pt", "note": "made by scripts/reference/make_safetensors_fixture.py"}
    full = OUT / "safetensors_reference.safetensors"
    save_file(tensors, str(full), metadata=metadata)

    floats = {name: t for name, t in tensors.items() if t.dtype in TORCH_DTYPES.values()}
    floats_path = OUT / "safetensors_reference_floats.safetensors"
    save_file(floats, str(floats_path), metadata={"format": "pt"})

    fixture = {
        "generator": f"safetensors {version('safetensors')}, torch {torch.__version__}",
        "files": {
            full.name: describe(full, tensors, metadata),
            floats_path.name: describe(floats_path, floats, {"format": "pt"}),
        },
    }
    (OUT / "safetensors_reference.json").write_text(json.dumps(fixture, indent=1) + "\n")
    print(f"wrote {full.name} ({full.stat().st_size} bytes), {floats_path.name} "
          f"({floats_path.stat().st_size} bytes), safetensors_reference.json")


def check_swiftlm_file(path: Path) -> None:
    """Fails with an AssertionError naming the first difference."""
    with safe_open(str(path), framework="pt") as file:
        assert file.metadata() == SWIFTLM_EXPECTED["metadata"], file.metadata()
        expected_names = set(SWIFTLM_EXPECTED["tensors"])
        assert set(file.keys()) == expected_names, sorted(file.keys())

        for name, (dtype, shape, values) in SWIFTLM_EXPECTED["tensors"].items():
            tensor = file.get_tensor(name)
            assert tensor.dtype == TORCH_DTYPES[dtype], (name, tensor.dtype)
            assert list(tensor.shape) == shape, (name, list(tensor.shape))
            got = tensor.to(torch.float64).reshape(-1).tolist()
            assert len(got) == len(values), (name, got)
            for a, b in zip(got, values):
                assert a == b and math.copysign(1, a) == math.copysign(1, b), (name, got, values)
    print(f"{path.name}: the reference library reads SwiftLM's file as expected")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--check-only", action="store_true", help="only check SwiftLM's file")
    args = parser.parse_args()

    if not args.check_only:
        write_reference()
    swiftlm = OUT / "safetensors_swiftlm.safetensors"
    if swiftlm.exists():
        check_swiftlm_file(swiftlm)
    else:
        print(f"{swiftlm.name} is missing: run the Swift test with SWIFTLM_REGENERATE_FIXTURES=1")


if __name__ == "__main__":
    main()
