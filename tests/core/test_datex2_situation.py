"""Incidents as a DATEX II v3.7 SituationPublication: every mapped kind validates against the official XSDs
(../shared/datex2/v3.7/), the record's version and end time follow the incident's revisions, operators' verdicts
withdraw or confirm it, kinds without a road meaning are not published, and the DATEX II output keeps the state on
disk (a restart continues it) and serves the feed over HTTP with ETag / If-Modified-Since, to API tokens (the
refusals, scopes and HTTPS are in tests/security/test_http_auth.py)."""

from __future__ import annotations

import email.utils
import http.client
import json

import pytest
from lxml import etree

from vigil import datex2
from vigil import datex2_situation as sit
from vigil.auth import TokenStore
from vigil.outputs.datex2 import SITUATIONS_FILE, STATE_FILE, Datex2Output, Datex2Settings, serve
from vigil.topics import INCIDENTS, TRAFFIC

NS = sit.NAMESPACES
T0 = 1_795_000_000_000  # 2026-11-18T11:06:40Z
XSI_TYPE = f"{{{NS['xsi']}}}type"


@pytest.fixture(scope="module")
def schema() -> etree.XMLSchema:
    try:
        return datex2.xml_schema()
    except FileNotFoundError as exc:
        pytest.skip(str(exc))


def assert_valid(schema: etree.XMLSchema, document: bytes) -> etree._Element:
    errors = datex2.schema_errors(document, schema)
    assert not errors, "\n".join(errors)
    return etree.fromstring(document)


def incident(kind: str = "stopped_vehicle", revision: int = 1, state: str = "open", camera_id: str = "gate",
             opened_ms: int = T0, **fields) -> dict:
    record = {
        "incident_id": f"{camera_id}:{kind}:{opened_ms}", "revision": revision, "camera_id": camera_id, "kind": kind,
        "state": state, "severity": "medium", "zones": ["lane-1"], "track_ids": [7], "event_ids": ["e1"],
        "opened_ms": opened_ms, "updated_ms": opened_ms + 10_000 * revision,
        "cleared_ms": opened_ms + 10_000 * revision if state == "cleared" else None, "score": 42.0,
        "threshold": 30.0, "snapshot_uri": "file:///snap.jpg", "clip_uri": "file:///clip.mp4",
        "detection_suspended": False, "emitted_ts_ms": opened_ms + 10_000 * revision + 500,
    }
    record.update(fields)
    return record


def verdict(record: dict, decision: str, decided_ms: int, actor: str = "ana", reason: str | None = None) -> dict:
    return {"verdict_id": f"{record['incident_id']}:{decision}:{actor}:{decided_ms}",
            "incident_id": record["incident_id"], "camera_id": record["camera_id"], "kind": record["kind"],
            "zones": record["zones"], "verdict": decision, "reason": reason, "actor": actor, "decided_ms": decided_ms}


def publish(book: sit.SituationBook, now_ms: int = T0 + 60_000, **options) -> bytes:
    return book.publication(now_ms, **options)


def record_of(document: bytes, incident_id: str) -> etree._Element | None:
    return sit.situations_of(document).get(incident_id)


def text(record: etree._Element, path: str) -> str | None:
    return record.findtext(path, namespaces=NS)


# The documented mapping (module docstring and README): a change here is a change of the published feed.
EXPECTED = {
    "stopped_vehicle": ("sit:VehicleObstruction", "sit:vehicleObstructionType", "brokenDownVehicle"),
    "wrong_way": ("sit:VehicleObstruction", "sit:vehicleObstructionType", "vehicleOnWrongCarriageway"),
    "slow_vehicle": ("sit:VehicleObstruction", "sit:vehicleObstructionType", "slowVehicle"),
    "pedestrian": ("sit:GeneralObstruction", "sit:obstructionType", "peopleOnRoadway"),
    "object_left": ("sit:GeneralObstruction", "sit:obstructionType", "objectOnTheRoad"),
    "debris": ("sit:GeneralObstruction", "sit:obstructionType", "objectOnTheRoad"),
    "queue": ("sit:AbnormalTraffic", "sit:abnormalTrafficType", "queuingTraffic"),
    "frozen": ("sit:EquipmentOrSystemFault", "sit:equipmentOrSystemFaultType", "notWorking"),
    "blur": ("sit:EquipmentOrSystemFault", "sit:equipmentOrSystemFaultType", "workingIncorrectly"),
    "low_contrast": ("sit:EquipmentOrSystemFault", "sit:equipmentOrSystemFaultType", "workingIncorrectly"),
    "camera_moved": ("sit:EquipmentOrSystemFault", "sit:equipmentOrSystemFaultType", "workingIncorrectly"),
}


def test_the_mapping_is_the_documented_one():
    assert set(sit.MAPPING) == set(EXPECTED)
    assert set(sit.OMITTED) == {"loitering", "crowding", "autoencoder"}
    assert not set(sit.MAPPING) & set(sit.OMITTED)


@pytest.mark.parametrize("kind", sorted(EXPECTED))
def test_every_mapped_kind_validates_as_its_record_type(schema, kind):
    book = sit.SituationBook()
    record = incident(kind)
    book.apply_incident(record, T0)
    root = assert_valid(schema, publish(book))
    assert root.get(XSI_TYPE) == "sit:SituationPublication"
    situation_record = record_of(etree.tostring(root), record["incident_id"])
    xsi_type, element, value = EXPECTED[kind]
    assert situation_record.get(XSI_TYPE) == xsi_type
    assert text(situation_record, element) == value
    if xsi_type == "sit:EquipmentOrSystemFault":
        assert text(situation_record, "sit:faultyEquipmentOrSystemType") == "cctvCameras"
        assert text(situation_record, "sit:severity") == "none"


def test_a_record_carries_times_probability_severity_source_and_location(schema):
    book = sit.SituationBook()
    record = incident("wrong_way", severity="critical", zones=["north", "ramp"])
    book.apply_incident(record, T0)
    document = publish(book, creator=("NL", "centre"), positions={"gate": (52.0907, 5.1214)})
    root = assert_valid(schema, document)
    situation = root.find("sit:situation", NS)
    assert situation.get("id") == record["incident_id"]
    assert text(situation, "sit:overallSeverity") == "highest"
    assert text(situation, "sit:headerInformation/com:informationStatus") == "real"
    situation_record = situation.find("sit:situationRecord", NS)
    assert (situation_record.get("id"), situation_record.get("version")) == (record["incident_id"], "1")
    assert text(situation_record, "sit:situationRecordCreationTime") == datex2.iso_time(record["emitted_ts_ms"])
    assert text(situation_record, "sit:situationRecordVersionTime") == datex2.iso_time(record["emitted_ts_ms"])
    assert text(situation_record, "sit:situationRecordObservationTime") == datex2.iso_time(record["updated_ms"])
    assert text(situation_record, "sit:probabilityOfOccurrence") == "probable"
    assert text(situation_record, "sit:severity") == "highest"
    assert text(situation_record, "sit:safetyRelatedMessage") == "true"
    assert text(situation_record, "sit:source/com:sourceIdentification") == "gate"
    assert text(situation_record, "sit:source/com:sourceType") == "videoProcessingMonitoringStation"
    assert text(situation_record, "sit:source/com:sourceCountry") == "NL"
    assert text(situation_record, "sit:validity/com:validityStatus") == "active"
    period = situation_record.find("sit:validity/com:validityTimeSpecification", NS)
    assert text(period, "com:overallStartTime") == "2026-11-18T11:06:40.000Z"
    assert period.find("com:overallEndTime", NS) is None
    location = situation_record.find("sit:locationReference", NS)
    assert location.get(XSI_TYPE) == "loc:PointLocation"
    assert "camera gate, zone north, ramp" in "".join(location.xpath(".//loc:locationDescription//text()",
                                                                      namespaces=NS))
    assert float(text(location, "loc:pointByCoordinates/loc:pointCoordinates/loc:latitude")) == pytest.approx(52.0907)
    assert text(situation_record, "sit:mobilityOfObstruction/sit:mobilityType") == "mobile"


def test_without_a_configured_position_the_location_is_the_field_of_view_only(schema):
    book = sit.SituationBook()
    book.apply_incident(incident(), T0)
    document = publish(book, positions={"elsewhere": (1.0, 2.0)})
    assert_valid(schema, document)
    situation_record = record_of(document, f"gate:stopped_vehicle:{T0}")
    assert situation_record.find(".//loc:pointByCoordinates", NS) is None
    assert situation_record.find("sit:locationReference/loc:supplementaryPositionalDescription", NS) is not None


def test_opened_updated_cleared_versions_follow_and_the_end_time_appears_then_it_leaves(schema):
    book = sit.SituationBook(linger_ms=120_000)
    opened = incident(revision=1, state="open")
    incident_id = opened["incident_id"]
    assert book.apply_incident(opened, T0) is True
    assert record_of(publish(book), incident_id).get("version") == "1"
    assert book.apply_incident(incident(revision=2, state="updated", severity="high"), T0 + 20_000) is True
    document = publish(book)
    assert_valid(schema, document)
    updated = record_of(document, incident_id)
    assert updated.get("version") == "2"
    assert text(updated, "sit:severity") == "high"
    assert text(updated, "sit:situationRecordCreationTime") == datex2.iso_time(opened["emitted_ts_ms"])
    assert book.apply_incident(incident(revision=1), T0 + 25_000) is False  # a replay of an older revision
    cleared_record = incident(revision=3, state="cleared")
    assert book.apply_incident(cleared_record, T0 + 30_000) is True
    document = publish(book, T0 + 31_000)
    cleared = record_of(document, incident_id)
    assert_valid(schema, document)
    assert cleared.get("version") == "3"
    assert text(cleared, "sit:validity/com:validityStatus") == "definedByValidityTimeSpec"
    assert text(cleared, "sit:validity/com:validityTimeSpecification/com:overallEndTime") == datex2.iso_time(
        cleared_record["cleared_ms"])
    assert book.next_change_ms(after_ms=T0 + 31_000) == T0 + 30_000 + 120_000
    assert record_of(publish(book, T0 + 30_000 + 119_999), incident_id) is not None
    assert record_of(publish(book, T0 + 30_000 + 120_000), incident_id) is None  # lingered long enough
    assert book.next_change_ms(after_ms=T0 + 30_000 + 120_000) is None
    assert book.forget(T0 + 30_000 + 120_000) == set()  # still remembered, so a replay cannot revive it
    assert book.apply_incident(cleared_record, T0 + 200_000) is False
    assert book.forget(T0 + 30_000 + book.forget_ms) == {"gate"}
    assert book.entries == {}


def test_a_rejected_verdict_withdraws_it_and_a_later_revision_does_not_bring_it_back(schema):
    book = sit.SituationBook()
    record = incident("pedestrian")
    book.apply_incident(record, T0)
    assert book.apply_verdict(verdict(record, "rejected", T0 + 15_000, reason="shadow"), T0 + 15_000) is True
    document = publish(book)
    assert_valid(schema, document)
    assert sit.situations_of(document) == {}  # withdrawn: gone from the snapshot
    book.apply_incident(incident("pedestrian", revision=2, state="updated"), T0 + 20_000)
    assert sit.situations_of(publish(book)) == {}
    # the operator changes their mind: confirmed after the rejection publishes it again, as certain
    assert book.apply_verdict(verdict(record, "confirmed", T0 + 40_000, actor="bo"), T0 + 40_000) is True
    again = record_of(publish(book), record["incident_id"])
    assert text(again, "sit:probabilityOfOccurrence") == "certain"
    assert again.get("version") == str(2 + 2)  # revision 2, two decisions


def test_a_confirmed_verdict_raises_probability_and_the_version(schema):
    book = sit.SituationBook()
    record = incident("debris", revision=2, state="updated")
    book.apply_incident(record, T0)
    assert book.apply_verdict(verdict(record, "acknowledged", T0 + 21_000), T0 + 21_000) is False  # nothing changes
    before = record_of(publish(book), record["incident_id"])
    assert (before.get("version"), text(before, "sit:probabilityOfOccurrence")) == ("2", "probable")
    confirmation = verdict(record, "confirmed", T0 + 60_000, actor="operator-jdoe")
    assert book.apply_verdict(confirmation, T0 + 60_000) is True
    assert book.apply_verdict(confirmation, T0 + 61_000) is False  # resent: de-duplicated by verdict id
    document = publish(book, T0 + 61_000)
    after = record_of(document, record["incident_id"])
    assert_valid(schema, document)
    assert (after.get("version"), text(after, "sit:probabilityOfOccurrence")) == ("3", "certain")
    assert text(after, "sit:source/com:reliable") == "true"
    assert text(after, "sit:situationRecordVersionTime") == datex2.iso_time(T0 + 60_000)
    assert "confirmed by an operator" in "".join(after.xpath(".//sit:nonGeneralPublicComment//text()",
                                                             namespaces=NS))
    assert b"jdoe" not in document  # operators' names stay inside


def test_a_verdict_before_its_incident_applies_when_the_incident_comes():
    book = sit.SituationBook(forget_ms=3_600_000)
    record = incident("wrong_way")
    book.apply_verdict(verdict(record, "confirmed", T0 + 1_000), T0 + 1_000)
    assert sit.situations_of(publish(book)) == {}
    book.apply_incident(record, T0 + 2_000)
    assert text(record_of(publish(book), record["incident_id"]), "sit:probabilityOfOccurrence") == "certain"
    orphan = incident("pedestrian", camera_id="bridge")
    book.apply_verdict(verdict(orphan, "rejected", T0 + 1_000), T0 + 1_000)
    assert book.forget(T0 + 1_000 + 3_600_000) == {"bridge"}  # its incident never came
    assert list(book.entries) == [record["incident_id"]]


def test_kinds_without_a_road_meaning_and_unknown_kinds_are_not_published(schema):
    book = sit.SituationBook()
    for kind in ("loitering", "crowding", "autoencoder", "teleportation"):
        book.apply_incident(incident(kind), T0)
    document = publish(book)
    assert_valid(schema, document)  # an empty SituationPublication is valid
    assert sit.situations_of(document) == {}
    assert len(book.published(T0 + 60_000)) == 4  # kept, so a mapping added later publishes them
    for kind in sit.OMITTED:
        assert sit.record_type(kind) is None
    with pytest.raises(ValueError, match="'teleportation' has no DATEX II mapping"):
        sit.record_type("teleportation")


def test_omitted_kinds_and_queue_length(schema):
    book = sit.SituationBook()
    book.apply_incident(incident("object_left"), T0)
    queue = incident("queue", queue_length_m=180.4)
    book.apply_incident(queue, T0)
    document = publish(book, omit=["object_left"])
    assert_valid(schema, document)
    assert list(sit.situations_of(document)) == [queue["incident_id"]]
    assert text(record_of(document, queue["incident_id"]), "sit:queueLength") == "180"


@pytest.mark.parametrize(("change", "message"), [
    ({"state": "gone"}, "state"), ({"state": "cleared", "cleared_ms": None}, "cleared_ms"),
    ({"camera_id": "../etc"}, "camera id"), ({"revision": None}, "lacks"), ({"revision": 0}, "below 1"),
])
def test_an_incident_that_cannot_be_kept_is_refused(change, message):
    with pytest.raises(ValueError, match=message):
        sit.SituationBook().apply_incident({**incident(), **change}, T0)


def test_a_verdict_that_cannot_be_kept_is_refused():
    with pytest.raises(ValueError, match="verdict"):
        sit.SituationBook().apply_verdict({**verdict(incident(), "confirmed", T0), "verdict": "maybe"}, T0)


# --- the output ---------------------------------------------------------------------------------------------------

class Clock:
    def __init__(self, ms: int):
        self.ms = ms

    def __call__(self) -> float:
        return self.ms / 1000


def output(tmp_path, clock: Clock, **overrides) -> Datex2Output:
    return Datex2Output(Datex2Settings(data_dir=tmp_path, **overrides), clock=clock)


def feed(tmp_path) -> bytes:
    return (tmp_path / "datex2" / SITUATIONS_FILE).read_bytes()


def test_the_output_takes_incidents_and_verdicts_and_writes_the_feed(schema, tmp_path):
    clock = Clock(T0 + 1_000)
    out = output(tmp_path, clock)
    assert out.accepts(INCIDENTS, "Incident") and out.accepts(INCIDENTS, "IncidentVerdict")
    assert out.accepts(TRAFFIC, "TrafficBin")
    assert out.flush() is True
    assert_valid(schema, feed(tmp_path))
    assert sit.situations_of(feed(tmp_path)) == {}  # an empty feed from the first flush on
    stopped, wrong = incident(), incident("wrong_way", camera_id="bridge")
    out.write(INCIDENTS, "Incident", stopped)
    out.write(INCIDENTS, "Incident", wrong)
    out.write(INCIDENTS, "IncidentVerdict", verdict(wrong, "confirmed", T0 + 5_000))
    assert out.pending() == 3
    with pytest.raises(ValueError, match="state"):
        out.write(INCIDENTS, "Incident", {**stopped, "state": "?"})
    assert out.flush() is True
    assert out.pending() == 0
    document = feed(tmp_path)
    assert_valid(schema, document)
    records = sit.situations_of(document)
    assert sorted(records) == sorted([stopped["incident_id"], wrong["incident_id"]])
    assert text(records[wrong["incident_id"]], "sit:probabilityOfOccurrence") == "certain"
    state = json.loads((tmp_path / "datex2" / "bridge" / STATE_FILE).read_text())
    assert list(state["incidents"]) == [wrong["incident_id"]]
    assert not list((tmp_path / "datex2").rglob("*.tmp"))
    assert out.stats()["incidents_known"] == 2


def test_a_restart_keeps_the_state_and_a_cleared_incident_leaves_after_its_linger(schema, tmp_path):
    clock = Clock(T0 + 1_000)
    out = output(tmp_path, clock, datex2_situation_linger_s=60)
    opened = incident()
    out.write(INCIDENTS, "Incident", opened)
    out.write(INCIDENTS, "Incident", incident("pedestrian"))
    out.flush()
    out.close()

    restarted = output(tmp_path, clock, datex2_situation_linger_s=60)
    assert restarted.pending() == 1  # the loaded state is published again at the first flush
    restarted.write(INCIDENTS, "Incident", opened)  # the uncommitted tail replayed: changes nothing
    restarted.write(INCIDENTS, "IncidentVerdict", verdict(incident("pedestrian"), "rejected", T0 + 2_000))
    restarted.write(INCIDENTS, "Incident", incident(revision=2, state="cleared"))
    clock.ms = T0 + 30_000
    assert restarted.flush() is True
    records = sit.situations_of(feed(tmp_path))
    assert list(records) == [opened["incident_id"]]  # the pedestrian was rejected
    assert records[opened["incident_id"]].get("version") == "2"
    assert text(records[opened["incident_id"]], ".//com:overallEndTime") is not None
    assert restarted.pending() == 0
    clock.ms = T0 + 30_000 + 60_000
    assert restarted.pending() == 1  # the linger is over: due for a rewrite without a new record
    assert restarted.flush() is True
    assert restarted.pending() == 0
    assert_valid(schema, feed(tmp_path))
    assert sit.situations_of(feed(tmp_path)) == {}

    again = output(tmp_path, clock, datex2_situation_linger_s=60)  # a second restart: still withdrawn and ended
    again.write(INCIDENTS, "Incident", incident(revision=2, state="cleared"))
    again.flush()
    assert sit.situations_of(feed(tmp_path)) == {}
    assert set(again.book.entries) == {opened["incident_id"], incident("pedestrian")["incident_id"]}


def test_camera_positions_are_checked_at_start(tmp_path):
    with pytest.raises(ValueError, match="latitude"):
        Datex2Settings(data_dir=tmp_path, datex2_camera_positions={"gate": (91.0, 5.0)})
    settings = Datex2Settings(data_dir=tmp_path, datex2_camera_positions={"gate": (52.1, 5.1)})
    assert settings.datex2_camera_positions == {"gate": (52.1, 5.1)}


def test_a_failed_write_keeps_the_incidents_for_the_next_flush(tmp_path):
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("a file where the folder should be")
    clock = Clock(T0)
    out = output(tmp_path, clock, datex2_dir=blocker)
    out.write(INCIDENTS, "Incident", incident())
    assert out.flush() is False
    assert out.pending() >= 1
    blocker.unlink()
    assert out.flush() is True
    assert list(sit.situations_of((blocker / SITUATIONS_FILE).read_bytes())) == [incident()["incident_id"]]
    assert (blocker / "gate" / STATE_FILE).exists()


# --- HTTP ---------------------------------------------------------------------------------------------------------

FEED = {}  # the token of the current test's feed


def feed_tokens(tmp_path) -> TokenStore:
    """The API tokens of Datex2Settings(data_dir=tmp_path), with a viewer token for the feed's reader."""
    tokens = TokenStore(tmp_path / "auth" / "tokens.json")
    FEED["token"] = tokens.add("feed-reader", "viewer", replace=True)
    return tokens


def get(port: int, path: str, method: str = "GET", **headers) -> tuple[int, dict, bytes]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    headers = {"Authorization": f"Bearer {FEED['token']}", **{k.replace("_", "-"): v for k, v in headers.items()}}
    try:
        connection.request(method, path, headers=headers)
        response = connection.getresponse()
        return response.status, dict(response.getheaders()), response.read()
    finally:
        connection.close()


def test_the_http_feed_serves_the_valid_publication_with_etag_and_if_modified_since(schema, tmp_path):
    clock = Clock(T0)
    out = output(tmp_path, clock)
    out.write(INCIDENTS, "Incident", incident("queue"))
    out.flush()
    (tmp_path / "datex2" / "gate" / "latest.xml").write_bytes(b"<x/>")
    server = serve(tmp_path / "datex2", "127.0.0.1", 0, tokens=feed_tokens(tmp_path))
    port = server.server_address[1]
    try:
        status, headers, body = get(port, "/datex2/situations.xml")
        assert status == 200
        assert headers["Content-Type"].startswith("application/xml")
        assert body == feed(tmp_path)
        assert_valid(schema, body)
        assert list(sit.situations_of(body)) == [incident("queue")["incident_id"]]
        etag, last_modified = headers["ETag"], headers["Last-Modified"]
        assert get(port, "/datex2/situations.xml", If_None_Match=etag)[0] == 304
        assert get(port, "/datex2/situations.xml", If_None_Match='"other"')[0] == 200
        assert get(port, "/datex2/situations.xml", If_Modified_Since=last_modified)[0] == 304
        long_ago = email.utils.formatdate(0, usegmt=True)
        assert get(port, "/datex2/situations.xml", If_Modified_Since=long_ago)[0] == 200
        status, headers, body = get(port, "/datex2/situations.xml", method="HEAD")
        assert (status, body, headers["ETag"]) == (200, b"", etag)
        assert get(port, "/datex2/gate/latest.xml")[2] == b"<x/>"  # the measured data, beside it
        # a new revision is a new file: the old ETag no longer matches
        out.write(INCIDENTS, "Incident", incident("queue", revision=2, state="updated"))
        out.flush()
        status, headers, body = get(port, "/datex2/situations.xml", If_None_Match=etag)
        assert status == 200 and headers["ETag"] != etag
        assert sit.situations_of(body)[incident("queue")["incident_id"]].get("version") == "2"
        for path in ("/datex2/gate/incidents.json", "/datex2/../datex2/situations.xml", "/datex2/",
                     "/datex2/gate/measured-x.xml", "/etc/passwd", "/datex2/_situations.xml"):
            assert get(port, path)[0] == 404, path
    finally:
        server.shutdown()
        server.server_close()


def test_the_sink_output_serves_when_a_port_is_configured(tmp_path):
    probe = serve(tmp_path, "127.0.0.1", 0, background=False)  # a free port, released for the output
    port = probe.server_address[1]
    probe.server_close()
    feed_tokens(tmp_path)
    out = output(tmp_path, Clock(T0), datex2_http_port=port)
    try:
        out.flush()
        status, _, body = get(port, "/datex2/situations.xml")
        assert status == 200 and sit.situations_of(body) == {}
        assert get(port, "/datex2/situations.xml", Authorization="")[0] == 401
    finally:
        out.close()
