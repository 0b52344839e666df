"""Vigil's incidents as a DATEX II v3.7 SituationPublication: one `situation` per incident, holding one
`situationRecord` of the DATEX II type its kind maps to (`MAPPING`). Pure functions over plain dicts plus a
`SituationBook`, the current state of the incidents (latest revision and operator verdicts per incident); the
output plug-in (`vigil/outputs/datex2.py`) keeps the book on disk and writes the file, the tests validate it against
the official XSDs (`vigil.datex2.schema_errors`).

Mapping (Vigil kind → record type, the type's value):

| Vigil kind | DATEX II v3.7 record | value |
| --- | --- | --- |
| stopped_vehicle | VehicleObstruction | brokenDownVehicle, mobility stationary |
| wrong_way | VehicleObstruction | vehicleOnWrongCarriageway, mobility mobile |
| slow_vehicle | VehicleObstruction | slowVehicle, mobility mobile |
| pedestrian | GeneralObstruction | peopleOnRoadway |
| object_left, debris | GeneralObstruction | objectOnTheRoad, mobility stationary |
| queue | AbnormalTraffic | queuingTraffic (+ queueLength when the record has `queue_length_m`) |
| frozen | EquipmentOrSystemFault | notWorking, cctvCameras |
| blur, low_contrast, camera_moved | EquipmentOrSystemFault | workingIncorrectly, cctvCameras |
| loitering, crowding, autoencoder | not published | not a road event (see `OMITTED`) |

- stopped_vehicle: Vigil sees that a vehicle stopped on a traffic lane, not why, so `brokenDownVehicle` and
  `vehicleStuck` both say a little more than it knows. `brokenDownVehicle` is the value the safety-related traffic
  information (SRTI) profiles use for a vehicle standing on the carriageway (e.g. NDW's SRTI breakdown message), so a
  receiver's SRTI handling picks it up; the rule only fires in traffic zones.
- wrong_way: `vehicleOnWrongCarriageway` is a value of VehicleObstructionTypeEnum in v3.7 (as in NDW's SRTI ghost
  driver message), not a separate record type.
- pedestrian (a person on the carriageway): `peopleOnRoadway` of GeneralObstruction's ObstructionTypeEnum; DATEX II's
  AnimalPresenceObstruction is for animals only.
- object_left and debris: `objectOnTheRoad` ("objects laying on the roadway"). DATEX II's own `debris` means
  scattered fragments of wreckage, more than a detector knows. object_left fires in any zone kind: a camera whose
  zones are not on the road should drop it with VIGIL_DATEX2_SITUATION_OMIT.
- queue: `queuingTraffic`; `stationaryTraffic` needs a speed the Incident does not carry. Incident v1 has no queue
  length, so `queueLength` is written only from an optional `queue_length_m` field (none today).
- bad video (frozen, blur, low_contrast, camera_moved): the camera is part of the road equipment, and v3.7 has a
  record for that: EquipmentOrSystemFault with `faultyEquipmentOrSystemType` cctvCameras. Its severity is `none`
  (a camera fault does not hinder traffic).
- loitering fires in pedestrian and restricted zones only (off the carriageway), crowding counts people (not
  vehicles) and autoencoder is "unusual scene" with no road meaning: none is published.
- A kind that is neither mapped nor in `OMITTED` (a new rule) is not published either, and `record_type` raises a
  ValueError naming it; the book keeps its revisions, so a mapping added later publishes it from the next write.

Lifecycle (DATEX II v3 has no cancel/end flag in a SituationRecord; ending is the exchange's information
management, and in a snapshot such as this file a situation that is no longer there has ended):

- version: the record's `version` is the incident's revision, plus one for each operator decision (confirmed or
  rejected) since, so it grows with every change of content; creation time = the first revision's emission time,
  version time = the latest revision's (or decision's) time, observation time = the latest evidence (updated_ms).
- probabilityOfOccurrence: `certain` once an operator confirmed it, `probable` while only the video says so (open,
  updated, acknowledged). `riskOf` (expected to possibly occur) is not used: Vigil reports what it saw.
- validity: `active` from overallStartTime = opened_ms; when cleared, `definedByValidityTimeSpec` with
  overallEndTime = cleared_ms ("end with notification"): the cleared situation stays in the publication for
  `linger_ms`, then leaves it.
- rejected (a false alarm): the situation leaves the publication at once (withdrawn, DATEX II "cancelled"); a later
  revision of the same incident does not bring it back, a later `confirmed` verdict does.
- severity (record and situation's overallSeverity): low → low, medium → medium, high → high, critical → highest.
- source: Vigil, `videoProcessingMonitoringStation`, sourceIdentification = the camera id, reliable once confirmed.
- safetyRelatedMessage: true for the obstructions (EU 886/2013 safety-related categories: people, obstacles and
  debris on the road, wrong-way driver).
- location: a `loc:PointLocation` for the camera's field of view (its id and the incident's zones in words, as the
  measurement sites of vigil/datex2.py), with `pointByCoordinates` when the camera's position is configured
  (`positions`, VIGIL_DATEX2_CAMERA_POSITIONS); the camera file has no coordinates.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from lxml import etree

from vigil.datex2 import CAMERA_ID, SITUATION_NAMESPACES, _add, _multilingual, _payload, _serialise, iso_time

NAMESPACES = SITUATION_NAMESPACES

INCIDENT, VERDICT = "Incident", "IncidentVerdict"
STATES = ("open", "updated", "cleared")
VERDICTS = ("acknowledged", "confirmed", "rejected")
DECISIONS = ("confirmed", "rejected")  # the verdicts that change what is published
REQUIRED_INCIDENT_FIELDS = ("incident_id", "revision", "camera_id", "kind", "state", "severity", "opened_ms",
                            "updated_ms", "emitted_ts_ms")
REQUIRED_VERDICT_FIELDS = ("verdict_id", "incident_id", "camera_id", "verdict", "decided_ms")

# Vigil severity → sit:SeverityEnum.
SEVERITY = {"low": "low", "medium": "medium", "high": "high", "critical": "highest"}


@dataclass(frozen=True)
class RecordType:
    """The DATEX II situation record a kind becomes."""

    xsi_type: str  # sit:VehicleObstruction, ...
    value: str  # the value of its type element (vehicleObstructionType, obstructionType, ...)
    mobility: str | None = None  # sit:MobilityTypeEnum, obstructions only
    safety_related: bool = False
    fault_type: str | None = None  # sit:EquipmentOrSystemFaultTypeEnum, EquipmentOrSystemFault only


def _vehicle(value: str, mobility: str) -> RecordType:
    return RecordType("sit:VehicleObstruction", value, mobility, safety_related=True)


def _obstruction(value: str, mobility: str | None = None) -> RecordType:
    return RecordType("sit:GeneralObstruction", value, mobility, safety_related=True)


def _camera_fault(fault_type: str) -> RecordType:
    return RecordType("sit:EquipmentOrSystemFault", "cctvCameras", fault_type=fault_type)


MAPPING: dict[str, RecordType] = {
    "stopped_vehicle": _vehicle("brokenDownVehicle", "stationary"),
    "wrong_way": _vehicle("vehicleOnWrongCarriageway", "mobile"),
    "slow_vehicle": _vehicle("slowVehicle", "mobile"),
    "pedestrian": _obstruction("peopleOnRoadway"),
    "object_left": _obstruction("objectOnTheRoad", "stationary"),
    "debris": _obstruction("objectOnTheRoad", "stationary"),
    "queue": RecordType("sit:AbnormalTraffic", "queuingTraffic"),
    "frozen": _camera_fault("notWorking"),
    "blur": _camera_fault("workingIncorrectly"),
    "low_contrast": _camera_fault("workingIncorrectly"),
    "camera_moved": _camera_fault("workingIncorrectly"),
}
OMITTED: dict[str, str] = {
    "loitering": "a person lingering in a pedestrian or restricted zone is not on the carriageway",
    "crowding": "many people in view is not a road event (crowding counts people, not vehicles)",
    "autoencoder": "an unusual scene has no DATEX II meaning until an operator says what it is",
}


def record_type(kind: str) -> RecordType | None:
    """The record a kind is published as; None for a kind deliberately not published (`OMITTED`); ValueError for a
    kind the mapping does not know."""
    if kind in MAPPING:
        return MAPPING[kind]
    if kind in OMITTED:
        return None
    raise ValueError(f"incident kind {kind!r} has no DATEX II mapping; mapped: {sorted(MAPPING)}, deliberately not "
                     f"published: {sorted(OMITTED)}")


def validate_incident(record: dict) -> None:
    """Raise ValueError naming what is wrong with an Incident that cannot be kept."""
    missing = [name for name in REQUIRED_INCIDENT_FIELDS if record.get(name) is None]
    if missing:
        raise ValueError(f"Incident {record.get('incident_id')!r} lacks {missing}")
    if not CAMERA_ID.fullmatch(str(record["camera_id"])):
        raise ValueError(f"Incident {record['incident_id']!r}: camera_id {record['camera_id']!r} is not a valid "
                         f"camera id")
    if record["state"] not in STATES:
        raise ValueError(f"Incident {record['incident_id']!r}: state {record['state']!r} is not one of {STATES}")
    if record["state"] == "cleared" and record.get("cleared_ms") is None:
        raise ValueError(f"Incident {record['incident_id']!r}: state 'cleared' without cleared_ms")
    if int(record["revision"]) < 1:
        raise ValueError(f"Incident {record['incident_id']!r}: revision {record['revision']} is below 1")


def validate_verdict(record: dict) -> None:
    """Raise ValueError naming what is wrong with an IncidentVerdict that cannot be kept."""
    missing = [name for name in REQUIRED_VERDICT_FIELDS if record.get(name) is None]
    if missing:
        raise ValueError(f"IncidentVerdict {record.get('verdict_id')!r} lacks {missing}")
    if not CAMERA_ID.fullmatch(str(record["camera_id"])):
        raise ValueError(f"IncidentVerdict {record['verdict_id']!r}: camera_id {record['camera_id']!r} is not a "
                         f"valid camera id")
    if record["verdict"] not in VERDICTS:
        raise ValueError(f"IncidentVerdict {record['verdict_id']!r}: verdict {record['verdict']!r} is not one of "
                         f"{VERDICTS}")


@dataclass
class Entry:
    """One incident as the feed knows it: the latest revision, the operators' decisions, and when it ended."""

    camera_id: str = ""
    incident: dict | None = None  # the latest revision (None: a verdict came first)
    decisions: dict[str, dict] = field(default_factory=dict)  # verdict_id → {verdict, decided_ms}
    created_ms: int | None = None  # emission time of the earliest revision seen
    ended_ms: int | None = None  # wall time it was cleared or rejected (linger and forget count from it)

    def decision(self) -> str | None:
        """The latest operator decision ('confirmed' / 'rejected'), if any."""
        if not self.decisions:
            return None
        return max(self.decisions.items(), key=lambda item: (item[1]["decided_ms"], item[0]))[1]["verdict"]

    @property
    def rejected(self) -> bool:
        return self.decision() == "rejected"

    @property
    def cleared(self) -> bool:
        return self.incident is not None and self.incident["state"] == "cleared"

    @property
    def version(self) -> int:
        return int(self.incident["revision"]) + len(self.decisions)

    def version_time_ms(self) -> int:
        times = [int(self.incident["emitted_ts_ms"]), *(int(d["decided_ms"]) for d in self.decisions.values())]
        return max(times)

    def to_json(self) -> dict:
        return {"camera_id": self.camera_id, "incident": self.incident, "decisions": self.decisions,
                "created_ms": self.created_ms, "ended_ms": self.ended_ms}

    @classmethod
    def from_json(cls, data: dict) -> Entry:
        return cls(data["camera_id"], data.get("incident"), dict(data.get("decisions") or {}), data.get("created_ms"),
                   data.get("ended_ms"))


class SituationBook:
    """The current state of the incidents: per incident its latest revision and the operators' decisions. Replays
    change nothing (older or equal revisions and known verdict ids are ignored), so it can be fed at least once.

    A cleared incident stays published for `linger_ms` after it was cleared (wall time), a rejected one leaves at
    once; either is forgotten `forget_ms` after that (until then a replayed revision cannot bring it back)."""

    def __init__(self, linger_ms: int = 300_000, forget_ms: int = 86_400_000):
        self.linger_ms, self.forget_ms = linger_ms, max(forget_ms, linger_ms)
        self.entries: dict[str, Entry] = {}

    def apply_incident(self, record: dict, now_ms: int) -> bool:
        """Keep `record` if it is newer than what the book has; True when something changed."""
        validate_incident(record)
        entry = self.entries.setdefault(record["incident_id"], Entry(record["camera_id"]))
        emitted = int(record["emitted_ts_ms"])
        created = emitted if entry.created_ms is None else min(entry.created_ms, emitted)
        if entry.incident is not None and int(record["revision"]) <= int(entry.incident["revision"]):
            changed = created != entry.created_ms
            entry.created_ms = created
            return changed
        was_ended = entry.cleared or entry.rejected
        entry.incident, entry.created_ms = dict(record), created
        self._ended(entry, was_ended, now_ms)
        return True

    def apply_verdict(self, record: dict, now_ms: int) -> bool:
        """Keep an operator's verdict; True when it changes what is published (a new confirmed/rejected)."""
        validate_verdict(record)
        if record["verdict"] not in DECISIONS:
            return False  # acknowledged: seen by an operator, still only as probable as before
        entry = self.entries.setdefault(record["incident_id"], Entry(record["camera_id"]))
        if record["verdict_id"] in entry.decisions:
            return False
        was_ended = entry.cleared or entry.rejected
        entry.decisions[record["verdict_id"]] = {"verdict": record["verdict"], "decided_ms": int(record["decided_ms"])}
        self._ended(entry, was_ended, now_ms)
        return True

    @staticmethod
    def _ended(entry: Entry, was_ended: bool, now_ms: int) -> None:
        ended = entry.cleared or entry.rejected
        if ended and not was_ended:
            entry.ended_ms = now_ms
        elif not ended:
            entry.ended_ms = None

    def published(self, now_ms: int) -> list[Entry]:
        """The incidents the publication shows now: known, not rejected, not cleared longer than `linger_ms` ago."""
        return [entry for _, entry in sorted(self.entries.items())
                if entry.incident is not None and not entry.rejected
                and not (entry.cleared and now_ms - (entry.ended_ms or now_ms) >= self.linger_ms)]

    def next_change_ms(self, after_ms: int) -> int | None:
        """The first moment after `after_ms` at which the publication changes without a new record (a cleared
        incident's linger time ends), if any."""
        times = [entry.ended_ms + self.linger_ms for entry in self.entries.values()
                 if entry.cleared and not entry.rejected and entry.ended_ms is not None
                 and entry.ended_ms + self.linger_ms > after_ms]
        return min(times) if times else None

    def forget(self, now_ms: int) -> set[str]:
        """Drop the incidents ended more than `forget_ms` ago (and verdicts that long without their incident); the
        ids of the cameras whose state changed."""
        gone = [incident_id for incident_id, entry in self.entries.items()
                if (entry.ended_ms is not None and now_ms - entry.ended_ms >= self.forget_ms)
                or (entry.incident is None and now_ms - max(d["decided_ms"] for d in entry.decisions.values())
                    >= self.forget_ms)]  # a verdict on an incident that never came
        return {self.entries.pop(incident_id).camera_id for incident_id in gone}

    def by_camera(self) -> dict[str, dict[str, dict]]:
        """camera → {incident id → entry as JSON}: what the output persists per camera."""
        cameras: dict[str, dict[str, dict]] = {}
        for incident_id, entry in self.entries.items():
            cameras.setdefault(entry.camera_id, {})[incident_id] = entry.to_json()
        return cameras

    def load(self, entries: Mapping[str, dict]) -> None:
        for incident_id, data in entries.items():
            self.entries[incident_id] = Entry.from_json(data)

    def publication(self, now_ms: int, **options) -> bytes:
        return situation_publication(self.published(now_ms), now_ms, **options)


def _comment(record: etree._Element, text: str, time_ms: int, lang: str) -> None:
    comment = _add(record, "sit:nonGeneralPublicComment")
    _multilingual(comment, "sit:comment", text, lang)
    _add(comment, "sit:commentDateTime", iso_time(time_ms))
    _add(comment, "sit:commentType", "description")


def _location(record: etree._Element, incident: dict, position: tuple[float, float] | None, lang: str) -> None:
    location = _add(record, "sit:locationReference", xsi_type="loc:PointLocation")
    description = _add(location, "loc:supplementaryPositionalDescription")
    where = f"field of view of camera {incident['camera_id']}"
    if incident.get("zones"):
        where += f", zone {', '.join(incident['zones'])}"
    _multilingual(description, "loc:locationDescription", where, lang)
    if position is not None:
        latitude, longitude = position
        if not (-90 <= latitude <= 90 and -180 <= longitude <= 180):
            raise ValueError(f"camera {incident['camera_id']}: position {position} is not a latitude, longitude")
        coordinates = _add(_add(location, "loc:pointByCoordinates"), "loc:pointCoordinates")
        _add(coordinates, "loc:latitude", f"{latitude:.6f}")
        _add(coordinates, "loc:longitude", f"{longitude:.6f}")


def _description(entry: Entry) -> str:
    incident = entry.incident
    text = (f"Vigil incident {incident['incident_id']} ({incident['kind']}, {incident['state']}, revision "
            f"{incident['revision']}): score {float(incident.get('score') or 0):.1f} against threshold "
            f"{float(incident.get('threshold') or 0):.1f}")
    if incident.get("detection_suspended"):
        text += "; the camera's lane rules are suspended (camera moved or bad video)"
    decision = entry.decision()
    if decision == "confirmed":
        text += "; confirmed by an operator"
    return text


def situation_record(parent: etree._Element, entry: Entry, kind_type: RecordType, *,
                     position: tuple[float, float] | None = None, country: str | None = None,
                     lang: str = "en") -> etree._Element:
    """Append the `situationRecord` of `entry` (an incident with its decisions) to `parent` (a situation)."""
    incident = entry.incident
    confirmed = entry.decision() == "confirmed"
    fault = kind_type.xsi_type == "sit:EquipmentOrSystemFault"
    record = _add(parent, "sit:situationRecord", xsi_type=kind_type.xsi_type, id=incident["incident_id"],
                  version=entry.version)
    created_ms = entry.created_ms if entry.created_ms is not None else int(incident["emitted_ts_ms"])
    _add(record, "sit:situationRecordCreationTime", iso_time(created_ms))
    _add(record, "sit:situationRecordObservationTime", iso_time(incident["updated_ms"]))
    _add(record, "sit:situationRecordVersionTime", iso_time(entry.version_time_ms()))
    _add(record, "sit:probabilityOfOccurrence", "certain" if confirmed else "probable")
    _add(record, "sit:severity", "none" if fault else SEVERITY.get(incident["severity"], "unknown"))
    _add(record, "sit:safetyRelatedMessage", "true" if kind_type.safety_related else "false")
    source = _add(record, "sit:source")
    if country:
        _add(source, "com:sourceCountry", country)
    _add(source, "com:sourceIdentification", incident["camera_id"])
    _multilingual(source, "com:sourceName", f"Vigil video analytics, camera {incident['camera_id']}", lang)
    _add(source, "com:sourceType", "videoProcessingMonitoringStation")
    _add(source, "com:reliable", "true" if confirmed else "false")
    validity = _add(record, "sit:validity")
    _add(validity, "com:validityStatus", "definedByValidityTimeSpec" if entry.cleared else "active")
    period = _add(validity, "com:validityTimeSpecification")
    _add(period, "com:overallStartTime", iso_time(incident["opened_ms"]))
    if entry.cleared:
        _add(period, "com:overallEndTime", iso_time(incident["cleared_ms"]))
    _comment(record, _description(entry), entry.version_time_ms(), lang)
    _location(record, incident, position, lang)
    if kind_type.xsi_type in ("sit:VehicleObstruction", "sit:GeneralObstruction"):
        if kind_type.mobility:
            _add(_add(record, "sit:mobilityOfObstruction"), "sit:mobilityType", kind_type.mobility)
        vehicle = kind_type.xsi_type == "sit:VehicleObstruction"
        _add(record, "sit:vehicleObstructionType" if vehicle else "sit:obstructionType", kind_type.value)
    elif kind_type.xsi_type == "sit:AbnormalTraffic":
        _add(record, "sit:abnormalTrafficType", kind_type.value)
        if incident.get("queue_length_m") is not None:
            _add(record, "sit:queueLength", str(max(0, round(float(incident["queue_length_m"])))))
    elif fault:
        _add(record, "sit:equipmentOrSystemFaultType", kind_type.fault_type)
        _add(record, "sit:faultyEquipmentOrSystemType", kind_type.value)
    return record


def situation_publication(entries: Iterable[Entry], publication_time_ms: int, *,
                          creator: tuple[str, str] = ("XX", "vigil"), lang: str = "en",
                          positions: Mapping[str, tuple[float, float]] | None = None,
                          omit: Iterable[str] = ()) -> bytes:
    """A SituationPublication of `entries` (a `SituationBook.published()`), one situation per incident whose kind is
    mapped and not in `omit`; an empty publication (no situation) is valid and means "nothing on the road".
    Kinds without a mapping are left out (see `record_type`)."""
    positions, omit = positions or {}, set(omit)
    root = _payload("sit:SituationPublication", publication_time_ms, creator, lang, nsmap=NAMESPACES)
    for entry in sorted(entries, key=lambda e: e.incident["incident_id"]):
        incident = entry.incident
        if incident["kind"] in omit or incident["kind"] not in MAPPING:
            continue
        kind_type = MAPPING[incident["kind"]]
        situation = _add(root, "sit:situation", id=incident["incident_id"])
        severity = "none" if kind_type.fault_type else SEVERITY.get(incident["severity"], "unknown")
        _add(situation, "sit:overallSeverity", severity)
        _add(situation, "sit:situationVersionTime", iso_time(entry.version_time_ms()))
        _add(_add(situation, "sit:headerInformation"), "com:informationStatus", "real")
        situation_record(situation, entry, kind_type, position=positions.get(incident["camera_id"]),
                         country=creator[0], lang=lang)
    return _serialise(root)


def situations_of(document: bytes) -> dict[str, etree._Element]:
    """situation id → its situationRecord, of a publication written by `situation_publication`."""
    root = etree.fromstring(document)
    return {situation.get("id"): situation.find("sit:situationRecord", NAMESPACES)
            for situation in root.findall("sit:situation", NAMESPACES)}
