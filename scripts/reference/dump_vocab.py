#!/usr/bin/env python3
"""Dump a GGUF file's tokenizer metadata to JSON, for developing against a real vocabulary.

    /work/main/.venv-ref/bin/python scripts/reference/dump_vocab.py MODEL.gguf OUT.json

Writes every `tokenizer.*` key except the chat template (tokens, token types, merges, scores,
special token ids, add_* flags), keyed exactly as in the GGUF. The Swift tests that use real
vocabularies read it when SWIFTLM_VOCAB_JSON points at OUT.json:

    SWIFTLM_VOCAB_JSON=/tmp/smollm2_vocab.json swift test --filter SwiftLMTokenizersTests
"""

import json
import sys

from gguf import GGUFReader


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    reader = GGUFReader(sys.argv[1])
    metadata = {key: field.contents() for key, field in reader.fields.items()
                if key.startswith("tokenizer.") and key != "tokenizer.chat_template"}
    with open(sys.argv[2], "w", encoding="utf-8") as f:
        json.dump(metadata, f, ensure_ascii=False)
    print(f"{sys.argv[2]}: {len(metadata.get('tokenizer.ggml.tokens', []))} tokens",
          file=sys.stderr)


if __name__ == "__main__":
    main()
