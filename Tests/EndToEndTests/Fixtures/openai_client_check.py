"""Talks to a running `swiftlm serve` with the official openai client, unchanged, and prints
what it saw as one JSON object. Run by ServingTests with the server's URL and API key."""
import json
import sys

import openai

base_url, api_key = sys.argv[1], sys.argv[2]
client = openai.OpenAI(base_url=base_url, api_key=api_key, max_retries=0)
results = {}

results["models"] = [model.id for model in client.models.list()]
model = results["models"][0]
messages = [{"role": "user", "content": "What is the capital of France?"}]

chat = client.chat.completions.create(
    model=model, messages=messages, max_tokens=16, temperature=0)
results["chat_text"] = chat.choices[0].message.content
results["chat_finish"] = chat.choices[0].finish_reason
results["chat_completion_tokens"] = chat.usage.completion_tokens

completion = client.completions.create(
    model=model, prompt="The three primary colors are", max_tokens=8, temperature=0)
results["completion_text"] = completion.choices[0].text

pieces, chunks, usage = [], 0, None
stream = client.chat.completions.create(
    model=model, messages=messages, max_tokens=16, temperature=0, stream=True,
    stream_options={"include_usage": True})
for chunk in stream:
    chunks += 1
    if chunk.usage is not None:
        usage = chunk.usage
    for choice in chunk.choices:
        if choice.delta.content:
            pieces.append(choice.delta.content)
results["stream_text"] = "".join(pieces)
results["stream_chunks"] = chunks
results["stream_usage_completion_tokens"] = usage.completion_tokens if usage else None

try:
    client.chat.completions.create(model="no-such-model", messages=messages, max_tokens=4)
except openai.NotFoundError as error:
    results["not_found_status"] = error.status_code
try:
    client.chat.completions.create(model=model, messages=messages, max_tokens=-3)
except openai.BadRequestError as error:
    results["bad_request_status"] = error.status_code
try:
    openai.OpenAI(base_url=base_url, api_key="wrong", max_retries=0).models.list()
except openai.AuthenticationError as error:
    results["auth_status"] = error.status_code

print(json.dumps(results))
