#!/usr/bin/env python3
"""A Spool command model, standard library only.

Spool runs this program once per request (once per batch with `split = "line"`), with the
payload on stdin; whatever it writes to stdout is the result. Exit 0 means success; any other
status fails the request, and the last 4 KiB of stderr go into the error marker.

Modes (first argument, or `mode=NAME` in the request's CustomAttributes):

  upper      every line with its ASCII letters upper-cased (the default)
  wordcount  one JSON object per input line: {"words": W, "chars": C}

Both read stdin in 1 MiB chunks and keep only the current line's counters, so memory stays
constant whatever the payload's size (a 1 GiB line included).

Environment set by Spool: SPOOL_INFERENCE_ID, SPOOL_CONTENT_TYPE, SPOOL_ACCEPT,
SPOOL_CUSTOM_ATTRIBUTES, SPOOL_INPUT_PATH (read-only path of the payload, or of the batch),
SPOOL_PAYLOAD_BYTES.

Bad input exits 2 with a message on stderr: a binary content type, or (wordcount) a line that
is not UTF-8. An unknown mode exits 64.
"""

import codecs
import json
import os
import sys

CHUNK = 1 << 20
TEXT_TYPES = ("", "text/", "application/json", "application/jsonlines", "application/x-ndjson")


def fail(status, message):
    inference_id = os.environ.get("SPOOL_INFERENCE_ID", "?")
    sys.stderr.write(f"model.py: {inference_id}: {message}\n")
    sys.exit(status)


def chosen_mode():
    """argv[1], overridden by `mode=NAME` among the custom attributes (`a=1; mode=wordcount`)."""
    mode = sys.argv[1] if len(sys.argv) > 1 else "upper"
    for item in os.environ.get("SPOOL_CUSTOM_ATTRIBUTES", "").replace(",", ";").split(";"):
        key, _, value = item.strip().partition("=")
        if key == "mode" and value:
            mode = value.strip('"')
    return mode


def chunks(stream):
    while True:
        chunk = stream.read(CHUNK)
        if not chunk:
            return
        yield chunk


def upper(stdin, stdout):
    for chunk in chunks(stdin):
        stdout.write(chunk.upper())  # bytes.upper() changes ASCII letters only


def wordcount(stdin, stdout):
    decoder = codecs.getincrementaldecoder("utf-8")()
    line, words, chars, in_word, pending = 1, 0, 0, False, False
    try:
        for chunk in chunks(stdin):
            parts = chunk.split(b"\n")
            for index, part in enumerate(parts):
                text = decoder.decode(part)
                found = len(text.split())
                if found and in_word and not text[0].isspace():
                    found -= 1  # the word goes on from the previous chunk
                words += found
                chars += len(text)
                if text:
                    in_word, pending = not text[-1].isspace(), True
                if index < len(parts) - 1:  # a newline ends the line
                    decoder.decode(b"", final=True)
                    stdout.write(json.dumps({"words": words, "chars": chars}).encode() + b"\n")
                    line, words, chars, in_word, pending = line + 1, 0, 0, False, False
        decoder.decode(b"", final=True)
    except UnicodeDecodeError as error:
        fail(2, f"line {line} is not UTF-8 ({error.reason})")
    if pending:  # a last line without a newline
        stdout.write(json.dumps({"words": words, "chars": chars}).encode() + b"\n")


def main():
    content_type = os.environ.get("SPOOL_CONTENT_TYPE", "").split(";")[0].strip().lower()
    if not any(content_type == t or (t.endswith("/") and content_type.startswith(t)) for t in TEXT_TYPES):
        fail(2, f"cannot read content type {content_type!r}; send text or JSON lines")
    models = {"upper": upper, "wordcount": wordcount}
    mode = chosen_mode()
    if mode not in models:
        fail(64, f"unknown mode {mode!r} (known: {', '.join(models)})")
    try:
        models[mode](sys.stdin.buffer, sys.stdout.buffer)
        sys.stdout.buffer.flush()
    except BrokenPipeError:
        fail(1, "stdout was closed")
    expected = os.environ.get("SPOOL_PAYLOAD_BYTES")
    if expected:  # only seen on failure, as the stderr tail; harmless otherwise
        sys.stderr.write(f"model.py: done, {mode} over {expected} bytes\n")


if __name__ == "__main__":
    main()
