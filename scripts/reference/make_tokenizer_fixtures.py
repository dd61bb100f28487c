#!/usr/bin/env python3
"""Write the tokenizer fixtures that SwiftLM's tokenizer tests compare against.

Every expected token id in these fixtures comes from llama.cpp itself (through
llama-cpp-python), never from SwiftLM, so the Swift tests hold our tokenizer to the
reference implementation rather than to itself.

Run it with the reference virtual environment, from the repository root:

    /work/main/.venv-ref/bin/python scripts/reference/make_tokenizer_fixtures.py

Needs: llama-cpp-python (it compiles llama.cpp) and the `gguf` package in that
environment, and the SmolLM2 model at /root/.cache/swiftlm/ (override with
--model). It writes three files:

  Tests/EndToEndTests/Fixtures/tokenizer_smollm2.json
      [{"text", "special", "add_special", "ids", "pieces_hex", "decoded"}] for the
      real SmolLM2-135M-Instruct vocabulary (byte-level BPE, pre-tokenizer "smollm").
      "pieces_hex" is llama_token_to_piece(special=true) per id, as hex, and
      "decoded" is llama_detokenize(remove_special=false, unparse_special=true).
  Tests/SwiftLMTokenizersTests/Fixtures/tokenizer_spm_tiny.json
      A tiny SentencePiece ("llama") vocabulary built here, written to a vocab-only
      GGUF, loaded by llama.cpp, and the ids llama.cpp gives for about 20 strings.
  Tests/SwiftLMTokenizersTests/Fixtures/tokenizer_bpe_tiny.json
      A tiny byte-level BPE vocabulary (merges trained here on a small corpus) and,
      for each pre-tokenizer name we support ("default", "gpt-2", "smollm",
      "llama3", "qwen2"), the ids llama.cpp gives for the shared test strings.

Both tiny fixtures carry the whole vocabulary, so the Swift tests rebuild it without
a GGUF reader.
"""

import argparse
import collections
import ctypes
import json
import os
import sys
import tempfile

import gguf
import llama_cpp
from llama_cpp import Llama

REPO_ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
DEFAULT_MODEL = "/root/.cache/swiftlm/SmolLM2-135M-Instruct.Q4_1.gguf"

# Strings for the real vocabulary: prose, code, whitespace runs, digits, scripts,
# emoji, combining marks, contractions and the chat-template control tokens.
SMOLLM2_TEXTS = [
    "",
    " ",
    "Hello, world!",
    "The quick brown fox jumps over the lazy dog.",
    "  two leading spaces",
    "trailing spaces   ",
    "line one\nline two\n\nline four",
    "\n\n\n",
    "\t\ttabs\tand\tmore",
    "mixed \t \n whitespace  \n  ",
    "def add(a, b):\n    return a + b\n\nprint(add(2, 3))\n",
    "if (x >= 10 && y != 0) {\n\treturn x / y;\n}",
    "class Point:\n    def __init__(self, x, y):\n        self.x = x\n        self.y = y\n",
    "I'm sure it's fine, they're here and we've been told you'll see what I'd do.",
    "DON'T SHOUT, IT'S LOUD",
    "'s 't 're alone and 'quoted'",
    "3.14159 and 2718281828459045",
    "Phone: +1 (555) 123-4567, year 2024, 1,000,000",
    "１２３ full-width digits and ٣٤٥ Arabic-Indic",
    "abc123def 4x4 v2.0.1",
    "你好，世界！这是一个测试。",
    "日本語のテキストとカタカナ、ひらがな。",
    "안녕하세요 세계",
    "I love 🍕 and 🎉!",
    "Family: 👨‍👩‍👧‍👦 and flags 🇫🇷🇯🇵",
    "👍🏽 thumbs up",
    "Café crème brûlée, naïve façade",
    "e\u0301 a\u0300 n\u0303 (combining marks)",
    "مرحبا بالعالم",
    "Привет мир, Γειά σου Κόσμε",
    "สวัสดี नमस्ते",
    "https://example.com/path?query=1&x=y#frag",
    '{"key": "value", "n": [1, 2, 3]}',
    "# Title\n\n- item 1\n- item 2\n\n**bold** _italic_ `code`",
    "Wait... what?!?! ---- ==== >>>",
    "Supercalifragilisticexpialidocious antidisestablishmentarianism",
    "∑ x² + √y ≤ ∞ ≠ π",
    "a\u00a0b\u2003c\u3000d",
    "\r\nWindows\r\nline endings\r\n",
    "Mixed 中文 English 123 😀 done.",
    "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
    " " * 20 + "x",
    "zero\u200bwidth\u200djoiner\u0007bell",
    "Garay \U00010d4a\U00010d4b letters are newer than llama.cpp's Unicode 15.1 tables",
    "<|im_start|>user\nHello!<|im_end|>\n<|im_start|>assistant\n",
    "<|im_start|>system\nYou are a helpful assistant.<|im_end|>",
    "<|endoftext|>",
    "text<|endoftext|>more text",
    "<|im_start|><|im_end|>",
    "<|im_start partial special",
    " <|im_end|> spaces around <|im_end|> ",
    "<reponame>x<file_sep>y",
]

# Strings also tokenized with parse_special=false: the control tokens become text.
SMOLLM2_PLAIN_TEXTS = [
    "<|im_start|>user\nHello!<|im_end|>\n",
    "<|endoftext|>",
    "text<|endoftext|>more text",
    "Hello, world!",
]

# Shared strings for the tiny vocabularies: every pre-tokenizer rule gets exercised.
TINY_TEXTS = [
    "",
    " ",
    "Hello world",
    "hello",
    " leading space",
    "the theater then",
    "  double  spaces  ",
    "newline\nhere\n\nand\r\nthere",
    "tabs\tin\t\ttext",
    "I'm sure it's theirs, they're here; we'll see. I'D SAY IT'S OK",
    "numbers 1 12 123 1234 12345678",
    "x=1+2; y<=3 | z^4 ~ $5",
    "def f(a):\n    return a\n",
    "日本語 テキスト",
    "élan vital, naïve",
    "e\u0301t\u00e9",
    "unknown ☃ snowman",
    "emoji 🎉 party",
    "a\u00a0b\u3000c",
    "<s>hello</s>",
    "a<|user|>b",
    "<|user|> after",
    "<|ctl|>x<|ctl|>",
    "<|endoftext|>end",
    "<|im_start|>user\nhi<|im_end|>",
    "(hello) [world] {x}",
    "end:\nnext;\r\n  \n",
    "a  \n  b\t\n",
    "1234567 9876543210",
    "x+=y**2//3",
    "CAN'T WON'T I'LL",
    "a.b,c!d?e",
    "price: $1,234.56!",
]

SPM_CASES = [(text, special, add) for text in TINY_TEXTS for special, add in
             [(True, True), (True, False)]]
SPM_CASES += [(text, False, True) for text in ["<s>hello</s>", "a<|user|>b", "<|ctl|>x<|ctl|>"]]

BPE_PRE_NAMES = ["default", "gpt-2", "smollm", "llama3", "qwen2"]

# Corpus the tiny BPE merges are trained on: enough shared words that the merges
# fire on the test strings, including indentation and multi-byte characters.
BPE_CORPUS = """
the theater then there their they they're it's I'm we'll hello Hello world worlds
The world is here and there. Hello world, hello there. the the the then then
def f(a):
    return a
    return self
numbers 123 1234 12 1 2 3 45 678 999 000
日本語 日本 テキスト テキスト
élan naïve café vital tabs text spaces double leading newline
""" * 3


def log(message):
    print(message, file=sys.stderr)


def tokenize(llm, text, add_special, special):
    return llm.tokenize(text.encode("utf-8"), add_bos=add_special, special=special)


def piece(llm, token):
    """llama_token_to_piece with special=true, as bytes."""
    size = 64
    while True:
        buf = ctypes.create_string_buffer(size)
        n = llama_cpp.llama_token_to_piece(llm._model.vocab, token, buf, size, 0, True)
        if n >= 0:
            return buf.raw[:n]
        size = -n


def detokenize(llm, ids, remove_special, unparse_special):
    """llama_detokenize over the whole sequence, as bytes."""
    size = max(64, 16 * len(ids))
    while True:
        arr = (llama_cpp.llama_token * max(1, len(ids)))(*ids)
        buf = ctypes.create_string_buffer(size)
        n = llama_cpp.llama_detokenize(llm._model.vocab, arr, len(ids), buf, size,
                                       remove_special, unparse_special)
        if n >= 0:
            return buf.raw[:n]
        size = -n


def text_or_hex(data):
    try:
        return {"text": data.decode("utf-8")}
    except UnicodeDecodeError:
        return {"hex": data.hex()}


def case_record(llm, text, add_special, special):
    ids = tokenize(llm, text, add_special, special)
    return {
        "text": text,
        "special": special,
        "add_special": add_special,
        "ids": ids,
        "pieces_hex": [piece(llm, t).hex() for t in ids],
        "decoded": text_or_hex(detokenize(llm, ids, False, True)),
        "decoded_skip_special": text_or_hex(detokenize(llm, ids, True, False)),
    }


def vocab_facts(llm, n_tokens):
    vocab = llm._model.vocab
    return {
        "eog_ids": [t for t in range(n_tokens) if llama_cpp.llama_vocab_is_eog(vocab, t)],
        "control_ids": [t for t in range(n_tokens)
                        if llama_cpp.llama_vocab_is_control(vocab, t)],
        "add_bos": bool(llama_cpp.llama_vocab_get_add_bos(vocab)),
        "add_eos": bool(llama_cpp.llama_vocab_get_add_eos(vocab)),
        "bos": llama_cpp.llama_vocab_bos(vocab),
        "eos": llama_cpp.llama_vocab_eos(vocab),
        "eot": llama_cpp.llama_vocab_eot(vocab),
    }


def write_json(path, payload):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        json.dump(payload, f, ensure_ascii=False, indent=1)
        f.write("\n")
    log(f"wrote {os.path.relpath(path, REPO_ROOT)}")


def load_vocab(path):
    return Llama(model_path=path, vocab_only=True, verbose=False)


# ---------------------------------------------------------------------------
# SmolLM2: the real vocabulary


def make_smollm2_fixture(model_path):
    llm = load_vocab(model_path)
    cases = [case_record(llm, t, False, True) for t in SMOLLM2_TEXTS]
    cases += [case_record(llm, t, False, False) for t in SMOLLM2_PLAIN_TEXTS]
    cases += [case_record(llm, t, True, True) for t in ["Hello, world!", "<|im_start|>"]]
    write_json(os.path.join(REPO_ROOT, "Tests/EndToEndTests/Fixtures/tokenizer_smollm2.json"),
               cases)
    facts = vocab_facts(llm, llama_cpp.llama_vocab_n_tokens(llm._model.vocab))
    log(f"smollm2: {len(cases)} cases, eog={facts['eog_ids']}")


# ---------------------------------------------------------------------------
# Tiny vocabularies


def write_vocab_gguf(path, vocab):
    """Write a vocab-only GGUF with just the hyperparameters llama.cpp reads for 'llama'."""
    writer = gguf.GGUFWriter(path, "llama")
    writer.add_context_length(64)
    writer.add_embedding_length(8)
    writer.add_block_count(1)
    writer.add_feed_forward_length(16)
    writer.add_head_count(2)
    writer.add_head_count_kv(2)
    writer.add_layer_norm_rms_eps(1e-5)
    writer.add_tokenizer_model(vocab["model"])
    if vocab.get("pre") is not None:
        writer.add_tokenizer_pre(vocab["pre"])
    writer.add_token_list(vocab["tokens"])
    if vocab.get("scores") is not None:
        writer.add_token_scores(vocab["scores"])
    writer.add_token_types(vocab["token_types"])
    if vocab.get("merges") is not None:
        writer.add_token_merges(vocab["merges"])
    for key, add in [("bos_token_id", writer.add_bos_token_id),
                     ("eos_token_id", writer.add_eos_token_id),
                     ("unknown_token_id", writer.add_unk_token_id)]:
        if vocab.get(key) is not None:
            add(vocab[key])
    for key, add in [("add_bos", writer.add_add_bos_token),
                     ("add_eos", writer.add_add_eos_token),
                     ("add_space_prefix", writer.add_add_space_prefix)]:
        if vocab.get(key) is not None:
            add(vocab[key])
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()


def spm_tiny_vocab():
    tokens = ["<unk>", "<s>", "</s>"]
    types = [2, 3, 3]
    scores = [0.0, 0.0, 0.0]
    for b in range(256):
        tokens.append(f"<0x{b:02X}>")
        types.append(6)
        scores.append(0.0)
    # Pieces with SentencePiece-style log-probability scores: higher merges first.
    # Two pieces share a score so the tie-break (leftmost first) is exercised.
    pieces = [
        ("▁", -1.0), ("e", -2.0), ("t", -2.1), ("h", -2.2), ("l", -2.3), ("o", -2.4),
        ("a", -2.5), ("n", -2.6), ("r", -2.7), ("s", -2.8), ("i", -2.9), ("d", -3.0),
        ("w", -3.1), ("x", -3.2), ("b", -3.3), ("c", -3.4), ("p", -3.5), ("u", -3.6),
        ("m", -3.7), ("k", -3.8), ("y", -3.9), ("v", -4.0), ("f", -4.1), ("g", -4.2),
        ("é", -4.3), ("日", -4.4), ("本", -4.5),
        ("th", -5.0), ("he", -5.0), ("▁t", -5.5), ("▁th", -6.0), ("▁the", -6.5),
        ("ll", -7.0), ("llo", -7.5), ("hello", -8.0), ("▁hello", -8.5), ("▁H", -8.6),
        ("▁He", -9.0), ("▁Hello", -9.5), ("or", -10.0), ("▁w", -10.5), ("▁wor", -11.0),
        ("▁world", -11.5), ("▁a", -12.0), ("er", -12.5), ("at", -13.0), ("ate", -13.5),
        ("▁▁", -14.0), ("▁s", -14.5), ("pa", -15.0), ("ce", -15.5), ("▁n", -16.0),
        ("ew", -16.5), ("line", -17.0), ("▁日本", -17.5), ("▁日", -18.0),
        ("an", -18.5), ("▁an", -19.0), ("▁and", -19.5), ("▁é", -20.0), ("▁élan", -20.5),
        ("la", -21.0), ("▁v", -21.0),
    ]
    for text, score in pieces:
        tokens.append(text)
        types.append(1)
        scores.append(score)
    tokens += ["<|user|>", "<|ctl|>", "<unused0>"]
    types += [4, 3, 5]
    scores += [0.0, 0.0, 0.0]
    return {
        "model": "llama",
        "pre": None,
        "tokens": tokens,
        "scores": scores,
        "token_types": types,
        "bos_token_id": 1,
        "eos_token_id": 2,
        "unknown_token_id": 0,
        "add_bos": True,
        "add_eos": False,
        "add_space_prefix": True,
    }


def gpt2_bytes_to_unicode():
    """The GPT-2 byte <-> printable-character table (printable bytes map to themselves)."""
    printable = (list(range(ord("!"), ord("~") + 1)) + list(range(0xA1, 0xAC + 1))
                 + list(range(0xAE, 0xFF + 1)))
    chars = printable[:]
    n = 0
    for b in range(256):
        if b not in printable:
            printable.append(b)
            chars.append(256 + n)
            n += 1
    return {b: chr(c) for b, c in zip(printable, chars)}


def bpe_tiny_vocab(n_merges=800):
    byte_map = gpt2_bytes_to_unicode()
    encode = lambda word: "".join(byte_map[b] for b in word.encode("utf-8"))
    # Train on whole lines with no pre-split at all, so merges also cross the boundaries
    # that the pre-tokenizers draw (" 1", "'D", "\n\n", "a " ...): the tokens llama.cpp
    # gives then depend on where each pre-tokenizer splits, which is what we test.
    lines = BPE_CORPUS.splitlines(keepends=True) + TINY_TEXTS
    counts = collections.Counter(tuple(encode(line)) for line in lines if line)
    merges = []
    for _ in range(n_merges):
        pairs = collections.Counter()
        for word, count in counts.items():
            for a, b in zip(word, word[1:]):
                pairs[(a, b)] += count
        if not pairs:
            break
        best = max(sorted(pairs), key=lambda p: pairs[p])
        merges.append(best)
        merged = collections.Counter()
        for word, count in counts.items():
            out, i = [], 0
            while i < len(word):
                if i + 1 < len(word) and (word[i], word[i + 1]) == best:
                    out.append(word[i] + word[i + 1])
                    i += 2
                else:
                    out.append(word[i])
                    i += 1
            merged[tuple(out)] += count
        counts = merged
    specials = [("<|endoftext|>", 3), ("<|im_start|>", 3), ("<|im_end|>", 3),
                ("<|user|>", 4), ("<|ctl|>", 3)]
    tokens = [tok for tok, _ in specials] + [byte_map[b] for b in range(256)]
    types = [t for _, t in specials] + [1] * 256
    for a, b in merges:
        if a + b not in tokens:
            tokens.append(a + b)
            types.append(1)
    return {
        "model": "gpt2",
        "tokens": tokens,
        "token_types": types,
        "merges": [f"{a} {b}" for a, b in merges],
        "bos_token_id": 0,
        "eos_token_id": 0,
        "add_bos": False,
        "add_eos": False,
    }


def make_spm_fixture(tmpdir):
    vocab = spm_tiny_vocab()
    path = os.path.join(tmpdir, "spm_tiny.gguf")
    write_vocab_gguf(path, vocab)
    llm = load_vocab(path)
    cases = [case_record(llm, text, add, special) for text, special, add in SPM_CASES]
    facts = vocab_facts(llm, len(vocab["tokens"]))
    payload = {"vocabulary": vocab, "facts": facts, "cases": cases}
    write_json(os.path.join(REPO_ROOT, "Tests/SwiftLMTokenizersTests/Fixtures/"
                            "tokenizer_spm_tiny.json"), payload)
    log(f"spm tiny: {len(cases)} cases")


def make_bpe_fixture(tmpdir):
    vocab = bpe_tiny_vocab()
    by_pre = {}
    facts = None
    for pre in BPE_PRE_NAMES:
        path = os.path.join(tmpdir, f"bpe_tiny_{pre}.gguf")
        write_vocab_gguf(path, dict(vocab, pre=pre))
        llm = load_vocab(path)
        cases = [case_record(llm, text, False, True) for text in TINY_TEXTS]
        cases += [case_record(llm, text, False, False) for text in
                  ["<|im_start|>user\nhi<|im_end|>", "a<|user|>b"]]
        cases += [case_record(llm, "Hello world", True, True)]
        by_pre[pre] = {"facts": vocab_facts(llm, len(vocab["tokens"])), "cases": cases}
    payload = {"vocabulary": vocab, "pre_tokenizers": by_pre}
    write_json(os.path.join(REPO_ROOT, "Tests/SwiftLMTokenizersTests/Fixtures/"
                            "tokenizer_bpe_tiny.json"), payload)
    log(f"bpe tiny: {len(vocab['tokens'])} tokens, {len(vocab['merges'])} merges, "
        f"{len(BPE_PRE_NAMES)} pre-tokenizers")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=DEFAULT_MODEL, help="SmolLM2 GGUF path")
    args = parser.parse_args()

    log(f"llama-cpp-python {llama_cpp.__version__}")
    make_smollm2_fixture(args.model)
    with tempfile.TemporaryDirectory() as tmpdir:
        make_spm_fixture(tmpdir)
        make_bpe_fixture(tmpdir)


if __name__ == "__main__":
    main()
