"""The topic registry is the one place that names topics: the README's table is generated from it, every record type
it lists has a contract, the sink can store (or knowingly skips) everything on the topics it reads, and no other
module spells a topic name."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from services.sink.service import STORED_TOPICS
from vigil.config import Settings
from vigil.kafka_io import ensure_topics
from vigil.outputs.clickhouse import ClickHouseOutput
from vigil.outputs.clickhouse_rows import NOT_STORED, TABLES
from vigil.schemas import contracts
from vigil.topics import TOPICS, Topic, markdown_table, topic

ROOT = Path(__file__).resolve().parents[2]
TOPIC_LITERAL = re.compile(r"""["'](?:[a-z]+-)*[a-z]+\.v\d+["']""")


def test_readme_topic_table_is_the_generated_one():
    readme = (ROOT / "README.md").read_text()
    assert markdown_table() in readme, "README's topic table is stale: paste the output of `python -m vigil.topics`"


def test_every_record_type_has_a_contract():
    known = contracts()
    for registered in TOPICS.values():
        for record_type in registered.records:
            assert record_type in known, f"{registered.name} lists {record_type}, which has no schemas/*.avsc"


def test_the_sink_stores_or_knowingly_skips_every_record_type_it_reads():
    ClickHouseOutput.check_topics(STORED_TOPICS)
    for registered in STORED_TOPICS:
        assert all(r in TABLES or r in NOT_STORED for r in registered.records)


def test_a_record_type_without_a_table_fails_at_start_up():
    new = Topic("lane-closures.v1", ("LaneClosure",), "camera_id", 2, 1000, "test")
    with pytest.raises(ValueError, match="no ClickHouse table for .*LaneClosure on lane-closures.v1"):
        ClickHouseOutput.check_topics([new])


def test_no_module_spells_a_topic_name():
    offenders = []
    for folder in ("vigil", "services", "jobs", "app"):
        for path in (ROOT / folder).rglob("*.py"):
            if path.name == "topics.py":
                continue
            for number, line in enumerate(path.read_text().splitlines(), 1):
                if TOPIC_LITERAL.search(line) and not line.lstrip().startswith("#"):
                    offenders.append(f"{path.relative_to(ROOT)}:{number}: {line.strip()}")
    assert not offenders, "topic names belong in vigil/topics.py:\n" + "\n".join(offenders)


def test_unknown_topic_and_namespace():
    with pytest.raises(ValueError, match="unknown topic 'frame.v1'"):
        topic("frame.v1")
    settings = Settings(topic_namespace="site-a.", kafka_topics={"frames.v1": 8})
    assert TOPICS["frames.v1"].deployed(settings) == "site-a.frames.v1"
    assert TOPICS["frames.v1"].partitions_in(settings) == 8
    assert TOPICS["events.v1"].partitions_in(settings) == TOPICS["events.v1"].partitions


def test_ensure_topics_refuses_an_unregistered_override():
    with pytest.raises(ValueError, match="not in the registry.*'frame.v1'"):
        ensure_topics(Settings(kafka_topics={"frame.v1": 2}))
