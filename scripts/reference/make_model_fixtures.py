#!/usr/bin/env python3
"""Reference outputs of llama.cpp on the default model, for SwiftLM's end-to-end tests.

Run with the private environment that has llama-cpp-python (see scripts/reference/setup-venv):

    .venv-ref/bin/python scripts/reference/make_model_fixtures.py [MODEL.gguf]

Writes Tests/EndToEndTests/Fixtures/model_smollm2.json with:
  - greedy: 32-token greedy continuations of plain and chat prompts (chat prompts rendered from
    the file's own template with jinja2 configured as Hugging Face does);
  - logits: for a teacher-forced prompt, the top-1 token at every position, the top-20 logits,
    and a strided sample of the vocabulary, so the test can report the largest difference;
  - perplexity: llama.cpp's perplexity-tool arithmetic (windows of n_ctx tokens, a fresh cache
    per window, only the second half of each window scored) on perplexity_gpl3.txt.
Everything numeric comes from llama.cpp; this script only arranges it.
"""
import json
import math
import os
import sys

import jinja2
import numpy as np
from llama_cpp import Llama

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
FIXTURES = os.path.join(ROOT, "Tests", "EndToEndTests", "Fixtures")
DEFAULT_MODEL = os.path.expanduser("~/.cache/swiftlm/SmolLM2-135M-Instruct.Q4_1.gguf")

PLAIN_PROMPTS = [
    "The capital of France is",
    "def fibonacci(n):\n",
    "Once upon a time, in a small village by the sea,",
    "1, 2, 3, 4, 5,",
]
CHAT_CONVERSATIONS = [
    [{"role": "user", "content": "What is the capital of France?"}],
    [{"role": "system", "content": "You are a terse assistant."},
     {"role": "user", "content": "Name three primary colors."}],
    [{"role": "user", "content": "Write a haiku about the ocean."}],
]
LOGIT_PROMPT = (
    "The quick brown fox jumps over the lazy dog. In 1969, Apollo 11 landed on the Moon, "
    "and Neil Armstrong said: \"That's one small step for man.\" def add(a, b): return a + b"
)
GREEDY_TOKENS = 32
PERPLEXITY_CONTEXT = 512


def render_chat(template_source, messages, bos, eos):
    """Renders a chat the way transformers' apply_chat_template does."""
    env = jinja2.Environment(trim_blocks=True, lstrip_blocks=True)

    def raise_exception(message):
        raise jinja2.exceptions.TemplateError(message)

    env.globals["raise_exception"] = raise_exception
    return env.from_string(template_source).render(
        messages=messages, add_generation_prompt=True, bos_token=bos, eos_token=eos)


def greedy(llm, tokens, count):
    """Greedy decoding by argmax over llama.cpp's logits, stopping at end-of-generation."""
    llm.reset()
    llm.eval(tokens)
    out = []
    for _ in range(count):
        logits = np.asarray(llm.scores[llm.n_tokens - 1])
        token = int(np.argmax(logits))
        out.append(token)
        if llm._model.token_is_eog(token) if hasattr(llm._model, "token_is_eog") else \
                token == llm.token_eos():
            break
        llm.eval([token])
    return out


def main():
    model_path = sys.argv[1] if len(sys.argv) > 1 else DEFAULT_MODEL
    common = dict(model_path=model_path, n_threads=2, n_threads_batch=2, seed=0,
                  flash_attn=False, verbose=False)
    llm = Llama(n_ctx=1024, n_batch=512, logits_all=True, **common)
    metadata = llm.metadata
    template = metadata["tokenizer.chat_template"]
    bos = llm.detokenize([llm.token_bos()]).decode()
    eos = llm.detokenize([llm.token_eos()]).decode()

    def tokenize(text):
        return llm.tokenize(text.encode(), add_bos=False, special=True)

    cases = []
    for prompt in PLAIN_PROMPTS:
        ids = tokenize(prompt)
        cases.append({"kind": "plain", "prompt": prompt, "prompt_ids": ids,
                      "continuation": greedy(llm, ids, GREEDY_TOKENS)})
    for messages in CHAT_CONVERSATIONS:
        rendered = render_chat(template, messages, bos, eos)
        ids = tokenize(rendered)
        cases.append({"kind": "chat", "messages": messages, "prompt": rendered,
                      "prompt_ids": ids, "continuation": greedy(llm, ids, GREEDY_TOKENS)})

    # Teacher-forced logits: every position's top-1, top-20 and a strided vocabulary sample.
    ids = tokenize(LOGIT_PROMPT)
    llm.reset()
    llm.eval(ids)
    scores = np.asarray(llm.scores[: len(ids)], dtype=np.float32)
    stride_ids = list(range(0, scores.shape[1], 97))
    positions = []
    for row in scores:
        top = np.argsort(-row)[:20]
        positions.append({
            "top1": int(top[0]),
            "top_ids": [int(i) for i in top],
            "top_logits": [round(float(row[i]), 5) for i in top],
            "sample_logits": [round(float(row[i]), 5) for i in stride_ids],
        })
    logits = {"prompt": LOGIT_PROMPT, "ids": ids, "sample_stride": 97, "positions": positions}

    # Perplexity as llama.cpp's perplexity tool computes it.
    text = open(os.path.join(FIXTURES, "perplexity_gpl3.txt"), encoding="utf-8").read()
    ppl_llm = Llama(n_ctx=PERPLEXITY_CONTEXT, n_batch=PERPLEXITY_CONTEXT, logits_all=True, **common)
    add_bos = ppl_llm._model.add_bos_token() if hasattr(ppl_llm._model, "add_bos_token") else False
    tokens = ppl_llm.tokenize(text.encode(), add_bos=add_bos, special=True)
    n_ctx = PERPLEXITY_CONTEXT
    chunks = len(tokens) // n_ctx
    first = n_ctx // 2
    nll = 0.0
    count = 0
    for chunk in range(chunks):
        window = tokens[chunk * n_ctx:(chunk + 1) * n_ctx]
        if add_bos:
            window[0] = ppl_llm.token_bos()
        ppl_llm.reset()
        ppl_llm.eval(window)
        rows = np.asarray(ppl_llm.scores[:n_ctx], dtype=np.float64)
        for j in range(first, n_ctx - 1):
            row = rows[j]
            log_z = np.log(np.sum(np.exp(row - row.max()))) + row.max()
            nll -= row[window[j + 1]] - log_z
            count += 1
    perplexity = {"file": "perplexity_gpl3.txt", "context": n_ctx, "tokens": len(tokens),
                  "chunks": chunks, "scored": count, "perplexity": math.exp(nll / count)}

    out = {
        "generator": "scripts/reference/make_model_fixtures.py",
        "llama_cpp_python": __import__("llama_cpp").__version__,
        "model": os.path.basename(model_path),
        "greedy": cases,
        "logits": logits,
        "perplexity": perplexity,
    }
    with open(os.path.join(FIXTURES, "model_smollm2.json"), "w", encoding="utf-8") as f:
        json.dump(out, f, ensure_ascii=False, indent=1)
    print(json.dumps(perplexity))
    for case in cases:
        print(case["kind"], repr(llm.detokenize(case["continuation"]).decode(errors="replace")))


if __name__ == "__main__":
    main()
