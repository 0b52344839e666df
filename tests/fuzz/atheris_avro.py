"""Coverage-guided fuzzing of the Avro codec with atheris (libFuzzer): every input must decode or raise
UndecodableMessage. Run by tests/fuzz/test_avro_atheris.py for a bounded number of runs; by hand for longer:

    .venv/bin/python -m tests.fuzz.atheris_avro -runs=1000000
"""

from __future__ import annotations

import sys

import atheris

with atheris.instrument_imports():
    from vigil.avro_codec import AvroCodec, UndecodableMessage

from tests.fuzz.avro_strategies import example  # noqa: E402 - after the instrumented import
from tests.fuzz.test_avro_properties import registry_codec  # noqa: E402
from vigil.schemas import contracts  # noqa: E402

CODEC = AvroCodec()
REGISTRY_CODEC = registry_codec()  # the Confluent wire format against an in-memory registry (ids 1, 2, 3)
# Seeds: a valid message of every record type; libFuzzer mutates them (and anything else) from there.
SEEDS = [CODEC.encode(name, example(name, "cam-1", 1_700_000_000_000))
         for name in sorted(contracts()) if "." not in name]


def one_input(data: bytes) -> None:
    fuzzed = atheris.FuzzedDataProvider(data)
    seed = SEEDS[fuzzed.ConsumeIntInRange(0, len(SEEDS) - 1)]
    tail = fuzzed.ConsumeBytes(fuzzed.remaining_bytes())
    # the raw input, and a real message's framing with the fuzzed bytes spliced into its body
    for codec in (CODEC, REGISTRY_CODEC):
        for message in (data, seed[:10] + tail, seed[: len(tail) % max(len(seed), 1)] + tail, b"\x00" + tail):
            try:
                codec.decode(message)
                codec.record_type(message)
            except UndecodableMessage:
                pass


def main(argv: list[str]) -> None:
    atheris.Setup(argv, one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main(sys.argv)
