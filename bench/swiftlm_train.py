"""What the training benchmarks share: the release build, model configs, random token files, one
`swiftlm train --json` run, and the machine's description. Standard library only, so that a
benchmark of SwiftLM alone (bench/checkpointing) needs no virtual environment.
"""

import json
import os
import random
import shutil
import struct
import subprocess
import sys
import tempfile
from array import array

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SWIFTLM = os.path.join(ROOT, ".build", "release", "swiftlm")

# The sizes of `swiftlm train --config tiny|small` (ModelPreset in TrainingOptions.swift) with
# the byte-level vocabulary, in the keys of a `--config` JSON file.
PRESETS = {
    "tiny": dict(
        vocab_size=257, hidden=128, intermediate=352, layers=4, heads=4, kv_heads=2,
        context_length=256,
    ),
    "small": dict(
        vocab_size=257, hidden=384, intermediate=1024, layers=6, heads=6, kv_heads=2,
        context_length=512,
    ),
}
# What ModelConfigFile takes when a key is omitted, written out so that PyTorch gets the same.
CONFIG_DEFAULTS = dict(rope_base=10000.0, norm_epsilon=1e-5, tied_embeddings=True)


def log(text):
    print(text, file=sys.stderr, flush=True)


def thread_list(text):
    """"1 2", "1,2" or "1, 2" -> [1, 2]."""
    values = [int(part) for part in text.replace(",", " ").split()]
    if not values or min(values) < 1:
        raise ValueError(f"thread counts must be positive integers, got '{text}'")
    return values


def model_config(sizes):
    """A complete `--config` dictionary: `sizes` with the defaults made explicit."""
    config = dict(CONFIG_DEFAULTS)
    config.update(sizes)
    config.setdefault("kv_heads", config["heads"])
    config.setdefault("head_dim", config["hidden"] // config["heads"])
    return config


def parameter_count(config):
    """Weights of the Llama model `config` describes (tied embeddings count once)."""
    hidden, head_dim = config["hidden"], config["head_dim"]
    query = config["heads"] * head_dim
    kv = config["kv_heads"] * head_dim
    block = hidden * (2 * query + 2 * kv) + 3 * hidden * config["intermediate"] + 2 * hidden
    embedding = config["vocab_size"] * hidden
    output = 0 if config["tied_embeddings"] else embedding
    return embedding + config["layers"] * block + hidden + output


def ensure_swiftlm():
    """Builds swiftlm in release mode when the binary is missing or older than a source file,
    so that a benchmark never measures a stale build; an up-to-date binary costs nothing."""
    if os.path.exists(SWIFTLM):
        built = os.path.getmtime(SWIFTLM)
        newest = max(
            os.path.getmtime(os.path.join(folder, name))
            for folder, _, names in os.walk(os.path.join(ROOT, "Sources"))
            for name in names
        )
        if newest <= built:
            return
    log("building swiftlm (release)...")
    subprocess.run(
        ["swift", "build", "-c", "release", "--product", "swiftlm"],
        cwd=ROOT, check=True, stdout=sys.stderr,
    )


def write_token_file(path, vocab_size, token_count, seed=1):
    """Uniformly random ids in the layout of Sources/SwiftLMTraining/Data/TokenFile.swift:
    "SLMTOKS1", UInt32 version 1, UInt32 vocabSize, UInt64 tokenCount, then UInt32 ids, all
    little-endian."""
    generator = random.Random(seed)
    ids = array("I", generator.choices(range(vocab_size), k=token_count))
    if sys.byteorder != "little":
        ids.byteswap()
    with open(path, "wb") as file:
        file.write(b"SLMTOKS1" + struct.pack("<IIQ", 1, vocab_size, token_count))
        ids.tofile(file)


class Workspace:
    """A temporary folder with the config JSON and a random token file for one benchmark."""

    def __init__(self, config, batch_size, seq_len):
        self.folder = tempfile.mkdtemp(prefix="swiftlm-bench-")
        self.config_path = os.path.join(self.folder, "config.json")
        with open(self.config_path, "w") as file:
            json.dump(config, file)
        # Training windows are drawn at random, so a few windows' worth is plenty; the 10%
        # validation split only has to hold one window, since --eval-every 0 never reads it.
        self.tokens_path = os.path.join(self.folder, "data.tokens")
        token_count = max(100_000, 20 * (seq_len + 1) * batch_size)
        write_token_file(self.tokens_path, config["vocab_size"], token_count)

    def close(self):
        shutil.rmtree(self.folder, ignore_errors=True)

    def __enter__(self):
        return self

    def __exit__(self, *_):
        self.close()


def run_swiftlm(workspace, batch_size, seq_len, steps, threads, checkpointing=False):
    """One `swiftlm train --json` process; its summary (the last stdout line) as a dict.

    Its `step_seconds` is the median step time without the first step, `tokens_per_second`
    batch * seqLen over that, and `peak_rss_mb` the process's high-water mark (VmHWM). The
    output folder is fresh each run, so no checkpoint is resumed; a checkpoint is still
    written after the last step, outside the measured steps' median.
    """
    out = tempfile.mkdtemp(prefix="run-", dir=workspace.folder)
    command = [
        SWIFTLM, "train", "--config", workspace.config_path, "--data", workspace.tokens_path,
        "--out", out, "--steps", str(steps), "--batch-size", str(batch_size),
        "--seq-len", str(seq_len), "--threads", str(threads), "--eval-every", "0",
        "--checkpoint-every", "100000", "--log-every", "1000", "--json",
    ]
    if checkpointing:
        command.append("--checkpointing")
    try:
        result = subprocess.run(
            command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
    finally:
        shutil.rmtree(out, ignore_errors=True)
    if result.returncode != 0:
        sys.exit(f"swiftlm train failed ({' '.join(command)}):\n{result.stderr.strip()}")
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    missing = {"tokens_per_second", "step_seconds", "peak_rss_mb"} - summary.keys()
    if missing:
        sys.exit(f"swiftlm train --json lacks {sorted(missing)}: rebuild from a newer main")
    return summary


def machine():
    """"CPU model, N cores" from lscpu, or what can be had without it."""
    model = "unknown CPU"
    try:
        lscpu = subprocess.run(["lscpu"], stdout=subprocess.PIPE, text=True).stdout
        for line in lscpu.splitlines():
            if line.startswith("Model name:"):
                model = line.split(":", 1)[1].strip()
    except OSError:
        pass
    return f"{model}, {os.cpu_count()} cores"


def load_average():
    return " ".join(f"{value:.2f}" for value in os.getloadavg())
