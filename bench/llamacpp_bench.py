"""The llama.cpp side of bench/compare-llamacpp: `swiftlm bench --json` for llama-cpp-python.

Runs in the private environment .venv-ref (scripts/reference/setup-venv), one process per
measurement so that its peak RSS is its own. It measures what `swiftlm bench` measures, the same
way, and prints the same JSON keys as the last line of stdout:

- the prompt is the same synthetic ids, token i = (i * 7919) mod vocabSize;
- one untimed warm-up of 32 prompt tokens and one decode step pages in the weights;
- each repetition empties the KV cache, evaluates the whole prompt in one `eval` (one batch:
  n_batch = prompt length; llama.cpp splits it into micro-batches of n_ubatch = 512, as
  SwiftLM splits its prefill into chunks of 512), then `gen_tokens` single-token evals, each fed
  the argmax of the previous logits (numpy's argmax, first index on ties, like SwiftLM's).

Usage: .venv-ref/bin/python bench/llamacpp_bench.py --model PATH --threads N --prompt-tokens N
       --gen-tokens N --repetitions N
"""

import argparse
import json
import statistics
import sys
import time

WARMUP_TOKENS = 32
PRIME_STRIDE = 7919


def peak_rss_mb():
    """VmHWM of this process in MiB, as `swiftlm bench` reads it."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def synthetic_prompt(count, vocab_size):
    return [i * PRIME_STRIDE % vocab_size for i in range(count)]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True)
    parser.add_argument("--threads", type=int, required=True)
    parser.add_argument("--prompt-tokens", type=int, default=128)
    parser.add_argument("--gen-tokens", type=int, default=64)
    parser.add_argument("--repetitions", type=int, default=5)
    args = parser.parse_args()

    # The interpreter, numpy and the llama.cpp library before any model: the part of this
    # process's RSS that SwiftLM has no counterpart for.
    import numpy as np
    import llama_cpp

    baseline_rss_mb = peak_rss_mb()

    n_ctx = args.prompt_tokens + args.gen_tokens
    llm = llama_cpp.Llama(
        model_path=args.model,
        n_ctx=n_ctx,
        n_batch=args.prompt_tokens,
        n_ubatch=512,
        n_threads=args.threads,
        n_threads_batch=args.threads,
        flash_attn=False,
        logits_all=False,
        verbose=False,
    )
    vocab_size = llm.n_vocab()
    prompt = synthetic_prompt(args.prompt_tokens, vocab_size)

    def next_token():
        # Reading the logits also waits for the computation, as SwiftLM's evaluate returns them.
        row = llama_cpp.llama_get_logits_ith(llm.ctx, -1)
        return int(np.ctypeslib.as_array(row, shape=(vocab_size,)).argmax())

    def measure(tokens, gen_tokens):
        llm.reset()  # the next eval removes every cached position from n_tokens = 0 on
        start = time.perf_counter()
        llm.eval(tokens)
        token = next_token()
        prefill = time.perf_counter() - start

        start = time.perf_counter()
        for _ in range(gen_tokens):
            llm.eval([token])
            token = next_token()
        return prefill, time.perf_counter() - start

    measure(prompt[:WARMUP_TOKENS], 1)
    prefill_tps, decode_tps = [], []
    for repetition in range(args.repetitions):
        prefill, decode = measure(prompt, args.gen_tokens)
        prefill_tps.append(args.prompt_tokens / prefill)
        decode_tps.append(args.gen_tokens / decode)
        print(
            f"repetition {repetition + 1}/{args.repetitions}: prefill {prefill_tps[-1]:.1f} "
            f"tokens/s, decode {decode_tps[-1]:.1f} tokens/s",
            file=sys.stderr,
        )

    def r(value):
        return round(value, 2)

    print(
        json.dumps(
            {
                "engine": f"llama.cpp via llama-cpp-python {llama_cpp.__version__}",
                "model": args.model,
                "threads": args.threads,
                "prompt_tokens": args.prompt_tokens,
                "gen_tokens": args.gen_tokens,
                "repetitions": args.repetitions,
                "prefill_tps": r(statistics.median(prefill_tps)),
                "prefill_tps_min": r(min(prefill_tps)),
                "prefill_tps_max": r(max(prefill_tps)),
                "decode_tps": r(statistics.median(decode_tps)),
                "decode_tps_min": r(min(decode_tps)),
                "decode_tps_max": r(max(decode_tps)),
                "peak_rss_mb": r(peak_rss_mb()),
                "baseline_rss_mb": r(baseline_rss_mb),
            },
            sort_keys=True,
        )
    )


if __name__ == "__main__":
    main()
