#!/usr/bin/env python3
"""Random strings tokenized by llama.cpp, for a broad agreement check of SwiftLM's tokenizer.

The committed fixtures (make_tokenizer_fixtures.py) hold chosen strings; this writes thousands
of random ones, mixing scripts, digits, whitespace runs, emoji, combining marks, code points
newer than llama.cpp's Unicode tables, and special-token texts. Run it with the reference
virtual environment from the repository root:

    /work/main/.venv-ref/bin/python scripts/reference/fuzz_tokenizer.py [--count N] [--out DIR]

It writes, into DIR (default /tmp/swiftlm-tokenizer-fuzz), files shaped like the fixtures:
smollm2.json (cases only), spm_tiny.json and bpe_tiny.json (vocabulary and cases). Then:

    SWIFTLM_VOCAB_JSON=<SmolLM2 vocabulary dump> SWIFTLM_TOKENIZER_FUZZ_DIR=DIR \\
        swift test --filter SwiftLMTokenizersTests

runs the Swift side (see LlamaCppAgreementTests.swift). The outputs are not committed.
"""

import argparse
import os
import random
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import make_tokenizer_fixtures as fixtures  # noqa: E402

POOLS = [
    (30, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"),
    (10, "0123456789"),
    (10, " "),
    (6, "\n\t\r"),
    (8, "!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~"),
    (3, "\u00a0\u2003\u3000\u0085\u200b\u200d\ufeff"),
    (4, "éèêëàâäôöûüçñßøåæœÉÀÇ"),
    (3, "\u0301\u0300\u0303\u0308\u0327"),
    (4, "你好世界中文日本語のテキストカタカナひらがな한국어"),
    (3, "مرحبابالعالم"),
    (3, "ПриветмирΓειάσουΚόσμε"),
    (2, "สวัสดีनमस्ते"),
    (2, "١٢٣٤٥١２３Ⅻ½²"),
    (3, "😀🍕🎉👍🏽👨\u200d👩\u200d👧🇫🇷"),
    (2, "∑√≤∞≠π€£¥©®™"),
    (1, "\U00010d4a\U00010d4b\U0001fae9\u0897\u1acf"),
]
WORDS = [" the", " and", "'s", "'t", "'re", "'ll", "'D", " 123", "    ", "\n\n", "\r\n",
         "<|im_start|>", "<|im_end|>", "<|endoftext|>", "<|user|>", "<|ctl|>", "<s>", "</s>",
         "<unk>", "<|im_start", "def ", "return ", "hello", "world", "élan", "日本"]


def random_text(rng):
    parts = []
    for _ in range(rng.randint(0, 24)):
        if rng.random() < 0.2:
            parts.append(rng.choice(WORDS))
            continue
        weights = [w for w, _ in POOLS]
        pool = rng.choices([p for _, p in POOLS], weights=weights)[0]
        parts.append("".join(rng.choice(pool) for _ in range(rng.randint(1, 6))))
    if rng.random() < 0.05:
        parts.append(chr(rng.choice([rng.randint(0x80, 0xD7FF), rng.randint(0xE000, 0x10FFFF)])))
    return "".join(parts)


def cases(llm, texts, rng):
    out = []
    for text in texts:
        special = rng.random() < 0.8
        add_special = rng.random() < 0.3
        out.append(fixtures.case_record(llm, text, add_special, special))
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=2000, help="strings per vocabulary")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--model", default=fixtures.DEFAULT_MODEL)
    parser.add_argument("--out", default="/tmp/swiftlm-tokenizer-fuzz")
    args = parser.parse_args()

    rng = random.Random(args.seed)
    texts = [random_text(rng) for _ in range(args.count)]
    os.makedirs(args.out, exist_ok=True)

    llm = fixtures.load_vocab(args.model)
    fixtures.write_json(os.path.join(args.out, "smollm2.json"), cases(llm, texts, rng))

    with tempfile.TemporaryDirectory() as tmpdir:
        vocab = fixtures.spm_tiny_vocab()
        path = os.path.join(tmpdir, "spm.gguf")
        fixtures.write_vocab_gguf(path, vocab)
        llm = fixtures.load_vocab(path)
        fixtures.write_json(os.path.join(args.out, "spm_tiny.json"), {
            "vocabulary": vocab, "facts": fixtures.vocab_facts(llm, len(vocab["tokens"])),
            "cases": cases(llm, texts, rng)})

        vocab = fixtures.bpe_tiny_vocab()
        by_pre = {}
        for pre in fixtures.BPE_PRE_NAMES:
            path = os.path.join(tmpdir, f"bpe_{pre}.gguf")
            fixtures.write_vocab_gguf(path, dict(vocab, pre=pre))
            llm = fixtures.load_vocab(path)
            by_pre[pre] = {"facts": fixtures.vocab_facts(llm, len(vocab["tokens"])),
                           "cases": cases(llm, texts, rng)}
        fixtures.write_json(os.path.join(args.out, "bpe_tiny.json"),
                            {"vocabulary": vocab, "pre_tokenizers": by_pre})


if __name__ == "__main__":
    main()
