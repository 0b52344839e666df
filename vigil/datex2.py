"""Vigil's traffic data as DATEX II v3.7 XML: a MeasurementSiteTablePublication (one measurement site per camera lane)
and MeasuredDataPublications (one `siteMeasurements` per TrafficBin). Pure functions over plain dicts; the output
plug-in (`vigil/outputs/datex2.py`) writes the files, the tests validate them against the official XSDs.

Every measurement site carries the same numbered quantities (`MEASUREMENTS`): the `index` of a `physicalQuantity` in
a publication points at the site's `measurementSpecificCharacteristics` of that index, as DATEX II intends. 1-6 are
flow, speed (mean and 85th percentile), occupancy, headway, gap and traffic status; 7-11 the flows of the vehicle
classes a bin counted (`VEHICLE_TYPES`; people are not vehicles and are not published).

A bin's `status` decides what is published (like NTCIP 1209's sampleZoneStatus, which Vigil's status follows):

- `ok`: the values that exist (speed, occupancy, headway and gap only where measured: a missing speed is left out,
  never published as 0).
- `no_activity`: the camera watched the lane and nothing passed. A flow of 0 vehicles/hour is then a true
  measurement, so it is published; speeds and headways do not exist and are left out.
- `camera_degraded`: the values, each with a `physicalQuantityFault` of type `intermittentDataValues` (frames were
  lost, so counts may be low).
- `camera_offline`, `no_data`: no values at all (never a zero flow) but, for every base quantity, a
  `physicalQuantityFault` of type `noDataValuesAvailable` whose identifier and description name Vigil's status.
  (`dataError` of a DATEX II `DataValue` cannot be used here: a DataValue must carry its value.)

Vigil's `traffic_state` values are the DATEX II `TrafficStatusEnum` values by design, so the mapping is one to one
(`TRAFFIC_STATUS`): freeFlow → freeFlow, heavy → heavy, slow → slow, queuing → queuing,
stationary → stationary, unknown → unknown. The schema's `unspecifiedAbnormal`, `other` and `_extended` are not produced.
"""

from __future__ import annotations

import datetime
import functools
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from lxml import etree

NAMESPACES = {
    "d2": "http://datex2.eu/schema/3/d2Payload",
    "com": "http://datex2.eu/schema/3/common",
    "roa": "http://datex2.eu/schema/3/roadTrafficData",
    "loc": "http://datex2.eu/schema/3/locationReferencing",
    "xsi": "http://www.w3.org/2001/XMLSchema-instance",
}
# A SituationPublication's (vigil/datex2_situation.py): the situation namespace instead of roadTrafficData.
SITUATION_NAMESPACES = {
    "d2": NAMESPACES["d2"],
    "com": NAMESPACES["com"],
    "sit": "http://datex2.eu/schema/3/situation",
    "loc": NAMESPACES["loc"],
    "xsi": NAMESPACES["xsi"],
}
_PREFIXES = {**NAMESPACES, **SITUATION_NAMESPACES}
MODEL_BASE_VERSION = "3"
# The official v3.7 XSDs, outside the repository (../shared/datex2/v3.7/, see its SOURCES.md): they are not ours to
# redistribute, so they are read from there, by the tests and by whoever wants to check a file.
SCHEMA_DIR = Path(__file__).resolve().parents[2] / "shared" / "datex2" / "v3.7"

BIN_STATUSES = ("ok", "no_activity", "no_data", "camera_offline", "camera_degraded")
WITHOUT_VALUES = {"no_data": "no frame of the camera was observed in the interval",
                  "camera_offline": "the camera was offline during the interval"}
DEGRADED = {"camera_degraded": "the camera was degraded (frames lost): values may be incomplete"}

# Vigil traffic_state → DATEX II roa:TrafficStatusEnum (identical by design; see the module docstring).
TRAFFIC_STATUS = {state: state for state in ("freeFlow", "heavy", "slow", "queuing", "stationary", "unknown")}

# Vigil class name → DATEX II com:VehicleTypeEnum. People are not vehicles: they have no DATEX II flow.
VEHICLE_TYPES = {"car": "car", "bus": "bus", "truck": "lorry", "motorcycle": "motorcycle", "bicycle": "bicycle"}

REQUIRED_BIN_FIELDS = ("bin_id", "camera_id", "lane", "lane_number", "bin_start_ms", "bin_end_ms", "volume",
                       "status", "traffic_state")
CAMERA_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")  # as the camera file allows (vigil/cameras.py)


@dataclass(frozen=True)
class Measurement:
    """One numbered quantity of every measurement site (a `measurementSpecificCharacteristics`)."""

    index: int
    value_type: str  # roa:MeasuredOrDerivedDataTypeEnum
    vehicle_type: str | None = None  # com:VehicleTypeEnum, for a per-class flow
    computation: str | None = None  # com:ComputationMethodEnum


FLOW, SPEED, CONCENTRATION, HEADWAY, GAP, STATUS = (
    Measurement(1, "trafficFlow"),
    Measurement(2, "trafficSpeed", computation="arithmeticAverageOfSamplesInATimePeriod"),
    Measurement(3, "trafficConcentration"),
    Measurement(4, "trafficHeadway", computation="arithmeticAverageOfSamplesInATimePeriod"),
    Measurement(5, "trafficGap", computation="arithmeticAverageOfSamplesInATimePeriod"),
    Measurement(6, "trafficStatusInformation"),
)
BASE_MEASUREMENTS = (FLOW, SPEED, CONCENTRATION, HEADWAY, GAP, STATUS)
CLASS_FLOWS = {name: Measurement(7 + i, "trafficFlow", vehicle_type=vehicle_type)
               for i, (name, vehicle_type) in enumerate(VEHICLE_TYPES.items())}
MEASUREMENTS = (*BASE_MEASUREMENTS, *CLASS_FLOWS.values())


def site_table_id(camera_id: str) -> str:
    return camera_id


def site_id(camera_id: str, lane: str) -> str:
    return f"{camera_id}:{lane}"


def validate_bin(record: dict) -> None:
    """Raise ValueError naming what is wrong with a TrafficBin that cannot be published."""
    missing = [name for name in REQUIRED_BIN_FIELDS if record.get(name) is None]
    if missing:
        raise ValueError(f"TrafficBin {record.get('bin_id')!r} lacks {missing}")
    if not CAMERA_ID.fullmatch(str(record["camera_id"])):
        raise ValueError(f"TrafficBin {record['bin_id']!r}: camera_id {record['camera_id']!r} is not a valid camera id")
    if record["status"] not in BIN_STATUSES:
        raise ValueError(f"TrafficBin {record['bin_id']!r}: status {record['status']!r} is not one of {BIN_STATUSES}")
    if record["traffic_state"] not in TRAFFIC_STATUS:
        raise ValueError(f"TrafficBin {record['bin_id']!r}: traffic_state {record['traffic_state']!r} is not one of "
                         f"{sorted(TRAFFIC_STATUS)}")
    if record["bin_end_ms"] <= record["bin_start_ms"]:
        raise ValueError(f"TrafficBin {record['bin_id']!r}: bin_end_ms {record['bin_end_ms']} is not after "
                         f"bin_start_ms {record['bin_start_ms']}")
    if record["volume"] < 0:
        raise ValueError(f"TrafficBin {record['bin_id']!r}: negative volume {record['volume']}")


def flow_per_hour(volume: int, bin_start_ms: int, bin_end_ms: int) -> int:
    """Vehicles per hour from a count over an interval (60 x the count for a 1-minute bin)."""
    return round(volume * 3_600_000 / (bin_end_ms - bin_start_ms))


def iso_time(epoch_ms: int) -> str:
    """xs:dateTime in UTC with milliseconds, e.g. 2026-11-22T06:00:00.000Z."""
    moment = datetime.datetime(1970, 1, 1, tzinfo=datetime.UTC) + datetime.timedelta(milliseconds=int(epoch_ms))
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _number(value: float, decimals: int = 1) -> str:
    return f"{float(value):.{decimals}f}"


def _qname(name: str) -> str:
    prefix, _, local = name.partition(":")
    return f"{{{_PREFIXES[prefix]}}}{local}"


def _add(parent: etree._Element, name: str, text: str | None = None, xsi_type: str | None = None,
         **attributes: str) -> etree._Element:
    element = etree.SubElement(parent, _qname(name))
    if xsi_type:
        element.set(_qname("xsi:type"), xsi_type)
    for key, value in attributes.items():
        element.set(key, str(value))
    if text is not None:
        element.text = text
    return element


def _multilingual(parent: etree._Element, name: str, text: str, lang: str) -> None:
    values = _add(_add(parent, name), "com:values")
    _add(values, "com:value", text[:1024], lang=lang)


def _payload(kind: str, publication_time_ms: int, creator: tuple[str, str], lang: str,
             nsmap: dict[str, str] = NAMESPACES) -> etree._Element:
    root = etree.Element(_qname("d2:payload"), nsmap=nsmap)
    root.set(_qname("xsi:type"), kind)
    root.set("lang", lang)
    root.set("modelBaseVersion", MODEL_BASE_VERSION)
    _add(root, "com:publicationTime", iso_time(publication_time_ms))
    country, national_identifier = creator
    publication_creator = _add(root, "com:publicationCreator")
    _add(publication_creator, "com:country", country)
    _add(publication_creator, "com:nationalIdentifier", national_identifier)
    return root


def _header(root: etree._Element) -> None:
    _add(_add(root, "roa:headerInformation"), "com:informationStatus", "real")


def _serialise(root: etree._Element) -> bytes:
    etree.indent(root, space="  ")
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8", pretty_print=True)


def _now_ms() -> int:
    return int(datetime.datetime.now(datetime.UTC).timestamp() * 1000)


@functools.lru_cache(maxsize=4)
def xml_schema(directory: Path = SCHEMA_DIR) -> etree.XMLSchema:
    """The official DATEX II v3.7 schema (`DATEXII_3_D2Payload.xsd`, which imports every module by relative file
    name, so no network is needed), compiled once per folder. FileNotFoundError when the XSDs are not there."""
    path = Path(directory) / "DATEXII_3_D2Payload.xsd"
    if not path.exists():
        raise FileNotFoundError(f"DATEX II v3.7 XSDs not found: {path} does not exist")
    return etree.XMLSchema(etree.parse(str(path)))


def schema_errors(document: bytes | etree._Element, schema: etree.XMLSchema | None = None) -> list[str]:
    """Why `document` (a d2:payload, as bytes or parsed) is not valid DATEX II v3.7; [] when it is. `schema` defaults
    to `xml_schema()`."""
    schema = schema if schema is not None else xml_schema()
    root = etree.fromstring(document) if isinstance(document, bytes) else document
    if schema.validate(root):
        return []
    return [str(error) for error in schema.error_log]


def _lane_of(lane) -> tuple[str, int]:
    """(name, number) of a lane given as a geometry `Lane` (name, number), a dict with name/number, or a dict with a
    TrafficBin's lane/lane_number."""
    if isinstance(lane, dict):
        name = lane.get("name", lane.get("lane"))
        number = lane.get("number", lane.get("lane_number"))
    else:
        name, number = getattr(lane, "name", None), getattr(lane, "number", None)
    if name is None or number is None:
        raise ValueError(f"lane {lane!r} has no name and number")
    return str(name), int(number)


def measurement_site_table(camera_id: str, lanes: Iterable, version: int = 1, *, bin_seconds: float = 60.0,
                           publication_time_ms: int | None = None, creator: tuple[str, str] = ("XX", "vigil"),
                           lang: str = "en") -> bytes:
    """A MeasurementSiteTablePublication: table `camera_id`, one `measurementSite` per lane (id '<camera>:<lane>',
    its lane number, a name, the quantities of `MEASUREMENTS` over `bin_seconds`). The cameras have no geographic
    position in Vigil, so each site's location is the simplest the schema allows that still says something: a
    `loc:PointLocation` with a supplementary positional description (the camera and lane, in words) and the lane
    number on an unspecified carriageway."""
    lanes = sorted({_lane_of(lane) for lane in lanes}, key=lambda lane: (lane[1], lane[0]))
    if not lanes:
        raise ValueError(f"camera {camera_id}: a measurement site table needs at least one lane")
    root = _payload("roa:MeasurementSiteTablePublication", publication_time_ms or _now_ms(), creator, lang)
    _header(root)
    table = _add(root, "roa:measurementSiteTable", id=site_table_id(camera_id), version=version)
    _add(table, "roa:measurementSiteTableIdentification", f"Vigil camera {camera_id}")
    for name, number in lanes:
        site = _add(table, "roa:measurementSite", id=site_id(camera_id, name), version=version)
        _multilingual(site, "roa:measurementEquipmentTypeUsed", "video camera (Vigil)", lang)
        _multilingual(site, "roa:measurementSiteName", f"camera {camera_id}, lane {name}", lang)
        _add(site, "roa:measurementSiteNumberOfLanes", "1")
        _add(site, "roa:measurementSiteIdentification", site_id(camera_id, name))
        for measurement in MEASUREMENTS:
            holder = _add(site, "roa:measurementSpecificCharacteristics", index=measurement.index)
            characteristics = _add(holder, "roa:measurementSpecificCharacteristics")
            if measurement.computation:
                _add(characteristics, "roa:computationMethod", measurement.computation)
            _add(characteristics, "roa:period", _number(bin_seconds))
            _add(characteristics, "roa:specificMeasurementValueType", measurement.value_type)
            if measurement.vehicle_type:
                _add(_add(characteristics, "roa:specificVehicleCharacteristics"), "com:vehicleType",
                     measurement.vehicle_type)
            _add(_add(characteristics, "roa:specificLane"), "loc:laneNumber", str(number))
        location = _add(site, "roa:measurementSiteLocation", xsi_type="loc:PointLocation")
        description = _add(location, "loc:supplementaryPositionalDescription")
        _multilingual(description, "loc:locationDescription", f"field of view of camera {camera_id}, lane {name}",
                      lang)
        carriageway = _add(description, "loc:carriageway")
        _add(carriageway, "loc:carriageway", "unspecifiedCarriageway")
        _add(_add(carriageway, "loc:lane"), "loc:laneNumber", str(number))
    return _serialise(root)


def site_table_lanes(document: bytes) -> tuple[int, dict[str, int]]:
    """(version, {lane name: lane number}) of a site table written by `measurement_site_table`."""
    root = etree.fromstring(document)
    table = root.find("roa:measurementSiteTable", NAMESPACES)
    if table is None:
        raise ValueError("not a measurement site table publication: no roa:measurementSiteTable")
    prefix = site_id(table.get("id"), "")
    lanes = {}
    for site in table.findall("roa:measurementSite", NAMESPACES):
        number = site.findtext(".//loc:carriageway/loc:lane/loc:laneNumber", namespaces=NAMESPACES)
        lanes[site.get("id").removeprefix(prefix)] = int(number)
    return int(table.get("version")), lanes


def _quantity(site: etree._Element, measurement: Measurement, traffic_bin: dict) -> etree._Element:
    holder = _add(site, "roa:physicalQuantity", index=measurement.index)
    quantity = _add(holder, "roa:physicalQuantity", xsi_type="roa:SinglePhysicalQuantity")
    problem = WITHOUT_VALUES.get(traffic_bin["status"]) or DEGRADED.get(traffic_bin["status"])
    if problem:
        fault = _add(quantity, "roa:physicalQuantityFault")
        _add(fault, "com:faultIdentifier", traffic_bin["status"])
        _multilingual(fault, "com:faultDescription", problem, "en")
        _add(fault, "com:faultLastUpdateTime", iso_time(traffic_bin["bin_end_ms"]))
        _add(fault, "roa:physicalQuantityFaultType",
             "noDataValuesAvailable" if traffic_bin["status"] in WITHOUT_VALUES else "intermittentDataValues")
    return quantity


def _basic_data(quantity: etree._Element, kind: str, vehicle_type: str | None = None) -> etree._Element:
    data = _add(quantity, "roa:basicData", xsi_type=kind)
    if vehicle_type:
        _add(_add(data, "roa:forVehiclesWithCharacteristicsOf"), "com:vehicleType", vehicle_type)
    return data


def _site_measurements(root: etree._Element, traffic_bin: dict, site_table_version: int) -> None:
    site = _add(root, "roa:siteMeasurements")
    _add(site, "roa:measurementSiteReference", id=site_id(traffic_bin["camera_id"], traffic_bin["lane"]),
         version=site_table_version,
         targetClass="roa:MeasurementSite")
    if traffic_bin["status"] in WITHOUT_VALUES:
        for measurement in BASE_MEASUREMENTS:  # a fault for each, and no value: never a zero flow
            _quantity(site, measurement, traffic_bin)
    else:
        _values(site, traffic_bin)
    period = _add(_add(site, "roa:measurementTimeDefault"), "roa:period")
    _add(period, "com:startOfPeriod", iso_time(traffic_bin["bin_start_ms"]))
    _add(period, "com:endOfPeriod", iso_time(traffic_bin["bin_end_ms"]))


def _values(site: etree._Element, traffic_bin: dict) -> None:
    start, end = traffic_bin["bin_start_ms"], traffic_bin["bin_end_ms"]
    flow = _basic_data(_quantity(site, FLOW, traffic_bin), "roa:TrafficFlow")
    _add(_add(flow, "roa:vehicleFlow"), "com:vehicleFlowRate", str(flow_per_hour(traffic_bin["volume"], start, end)))
    mean_speed, p85_speed = traffic_bin.get("mean_speed_kmh"), traffic_bin.get("p85_speed_kmh")
    if traffic_bin.get("speed_available", True) and (mean_speed is not None or p85_speed is not None):
        speed = _basic_data(_quantity(site, SPEED, traffic_bin), "roa:TrafficSpeed")
        if mean_speed is not None:
            _add(_add(speed, "roa:averageVehicleSpeed"), "com:speed", _number(mean_speed))
        if p85_speed is not None:
            percentile = _add(speed, "roa:speedPercentile")
            _add(_add(percentile, "roa:vehiclePercentage"), "com:percentage", "85.0")
            _add(_add(percentile, "roa:speedPercentile"), "com:speed", _number(p85_speed))
    if traffic_bin.get("occupancy_pct") is not None:
        concentration = _basic_data(_quantity(site, CONCENTRATION, traffic_bin), "roa:TrafficConcentration")
        _add(_add(concentration, "roa:occupancy"), "com:percentage", _number(traffic_bin["occupancy_pct"]))
    durations = ((HEADWAY, "mean_headway_s", "roa:TrafficHeadway", "roa:averageTimeHeadway"),
                 (GAP, "mean_gap_s", "roa:TrafficGap", "roa:averageTimeGap"))
    for measurement, field, kind, element in durations:
        if traffic_bin.get(field) is not None:
            data = _basic_data(_quantity(site, measurement, traffic_bin), kind)
            _add(_add(data, element), "roa:duration", _number(traffic_bin[field], 2))
    status = _basic_data(_quantity(site, STATUS, traffic_bin), "roa:TrafficStatus")
    _add(_add(status, "roa:trafficStatus"), "roa:trafficStatusValue", TRAFFIC_STATUS[traffic_bin["traffic_state"]])
    by_class = traffic_bin.get("volume_by_class") or {}
    for name, measurement in CLASS_FLOWS.items():
        if name in by_class:
            flow = _basic_data(_quantity(site, measurement, traffic_bin), "roa:TrafficFlow", measurement.vehicle_type)
            _add(_add(flow, "roa:vehicleFlow"), "com:vehicleFlowRate", str(flow_per_hour(by_class[name], start, end)))


def measured_data_publication(bins: list[dict], publication_time_ms: int, site_table_version: int = 1, *,
                              creator: tuple[str, str] = ("XX", "vigil"), lang: str = "en") -> bytes:
    """A MeasuredDataPublication of TrafficBins (any cameras): one `siteMeasurements` per bin (its lane's site, the
    bin as the measurement period), referencing each camera's site table at `site_table_version`."""
    if not bins:
        raise ValueError("a measured data publication needs at least one TrafficBin")
    for traffic_bin in bins:
        validate_bin(traffic_bin)
    root = _payload("roa:MeasuredDataPublication", publication_time_ms, creator, lang)
    for camera_id in sorted({traffic_bin["camera_id"] for traffic_bin in bins}):
        _add(root, "roa:measurementSiteTableReference", id=site_table_id(camera_id), version=site_table_version,
             targetClass="roa:MeasurementSiteTable")
    _header(root)
    for traffic_bin in sorted(bins, key=lambda b: (b["camera_id"], b["bin_start_ms"], b["lane_number"], b["lane"])):
        _site_measurements(root, traffic_bin, site_table_version)
    return _serialise(root)


def _measurement_key(site: etree._Element) -> tuple[str, str]:
    """(start of period, site id) of a siteMeasurements: what a replayed bin replaces."""
    return (site.findtext("roa:measurementTimeDefault/roa:period/com:startOfPeriod", namespaces=NAMESPACES) or "",
            site.find("roa:measurementSiteReference", NAMESPACES).get("id"))


def merge_measured_data(previous: bytes, current: bytes) -> bytes:
    """`current` plus the siteMeasurements of `previous` it does not replace (same site, same period), ordered by
    period and site: how bins of one interval arriving in separate flushes end up in one publication."""
    parser = etree.XMLParser(remove_blank_text=True)
    old, new = etree.fromstring(previous, parser), etree.fromstring(current, parser)
    sites = new.findall("roa:siteMeasurements", NAMESPACES)
    replaced = {_measurement_key(site) for site in sites}
    sites += [site for site in old.findall("roa:siteMeasurements", NAMESPACES)
              if _measurement_key(site) not in replaced]
    references = {ref.get("id"): ref for ref in old.findall("roa:measurementSiteTableReference", NAMESPACES)}
    references.update({ref.get("id"): ref for ref in new.findall("roa:measurementSiteTableReference", NAMESPACES)})
    for name in ("roa:measurementSiteTableReference", "roa:siteMeasurements"):
        for element in new.findall(name, NAMESPACES):
            new.remove(element)
    header = new.find("roa:headerInformation", NAMESPACES)
    for reference_id in sorted(references):
        header.addprevious(references[reference_id])
    for site in sorted(sites, key=_measurement_key):
        new.append(site)
    return _serialise(new)
