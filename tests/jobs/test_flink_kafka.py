"""A PyFlink job on the local MiniCluster reads Avro from the Tansu broker through the official KafkaSource and
writes through KafkaSink (at-least-once): the stack's Flink readiness check, run for real."""

import pytest

from app.stack.flink_check import run_check

pytestmark = pytest.mark.slow  # starts real servers or Flink


def test_kafka_source_to_kafka_sink_through_pyflink(stack):
    result = run_check(stack, records=40)
    assert result.ok, result.detail
    assert result.sent == result.received == 40
