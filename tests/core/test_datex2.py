"""The DATEX II publications validate against the official v3.7 XSDs (../shared/datex2/v3.7/), carry the bins'
values where XPath finds them, and publish a fault, never a zero flow, for an interval the camera did not see."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest
from lxml import etree

from vigil import datex2

SCHEMA_PATH = Path(__file__).resolve().parents[3] / "shared" / "datex2" / "v3.7" / "DATEXII_3_D2Payload.xsd"
NS = datex2.NAMESPACES
T0 = 1_795_000_000_000  # 2026-11-18T11:06:40Z
MINUTE_MS = 60_000


@pytest.fixture(scope="module")
def schema() -> etree.XMLSchema:
    if not SCHEMA_PATH.exists():
        pytest.skip(f"DATEX II XSDs not found at {SCHEMA_PATH}")
    return etree.XMLSchema(etree.parse(str(SCHEMA_PATH)))


def assert_valid(schema: etree.XMLSchema, document: bytes) -> etree._Element:
    root = etree.fromstring(document)
    assert schema.validate(root), "\n".join(str(error) for error in schema.error_log)
    return root


def traffic_bin(lane: str = "north", lane_number: int = 1, status: str = "ok", start_ms: int = T0, **fields) -> dict:
    record = {
        "bin_id": f"gate:{lane}:{start_ms}", "camera_id": "gate", "lane": lane, "lane_number": lane_number,
        "bin_start_ms": start_ms, "bin_end_ms": start_ms + MINUTE_MS,
        "volume_by_class": {"car": 9, "truck": 2, "bicycle": 1}, "volume": 12, "volume_positive": 10,
        "volume_negative": 2, "mean_speed_kmh": 43.27, "p85_speed_kmh": 52.0, "occupancy_pct": 14.5,
        "mean_headway_s": 4.8, "mean_gap_s": 3.1, "status": status, "traffic_state": "heavy",
        "free_flow_kmh": 50.0, "speed_available": True, "frames": 300,
    }
    record.update(fields)
    return record


def sites_of(root: etree._Element) -> dict[str, etree._Element]:
    return {site.find("roa:measurementSiteReference", NS).get("id"): site
            for site in root.findall("roa:siteMeasurements", NS)}


def quantity(site: etree._Element, index: int) -> etree._Element | None:
    return site.find(f"roa:physicalQuantity[@index='{index}']/roa:physicalQuantity", NS)


def test_site_table_has_one_valid_site_per_lane(schema):
    lanes = [SimpleNamespace(name="north", number=1), {"name": "south", "number": 2}]
    document = datex2.measurement_site_table("gate", lanes, version=3)
    root = assert_valid(schema, document)
    assert root.get(f"{{{NS['xsi']}}}type") == "roa:MeasurementSiteTablePublication"
    table = root.find("roa:measurementSiteTable", NS)
    assert (table.get("id"), table.get("version")) == ("gate", "3")
    sites = table.findall("roa:measurementSite", NS)
    assert [site.get("id") for site in sites] == ["gate:north", "gate:south"]
    assert root.xpath("//roa:measurementSite[@id='gate:south']//loc:lane/loc:laneNumber/text()", namespaces=NS) == ["2"]
    assert datex2.site_table_lanes(document) == (3, {"north": 1, "south": 2})
    value_types = root.xpath("//roa:measurementSite[@id='gate:north']/roa:measurementSpecificCharacteristics"
                             "[@index='1']//roa:specificMeasurementValueType/text()", namespaces=NS)
    assert value_types == ["trafficFlow"]
    assert document.startswith(b"<?xml version='1.0' encoding='UTF-8'?>\n<d2:payload")
    assert b"\n  <com:publicationTime>" in document  # pretty-printed


def test_measured_data_validates_and_carries_the_values(schema):
    bins = [traffic_bin(), traffic_bin("south", 2, volume=3, volume_by_class={"car": 3}, occupancy_pct=None,
                                       traffic_state="freeFlow")]
    document = datex2.measured_data_publication(bins, T0 + MINUTE_MS + 500, site_table_version=3)
    root = assert_valid(schema, document)
    assert root.get(f"{{{NS['xsi']}}}type") == "roa:MeasuredDataPublication"
    assert root.findtext("com:publicationTime", namespaces=NS) == "2026-11-18T11:07:40.500Z"
    reference = root.find("roa:measurementSiteTableReference", NS)
    assert (reference.get("id"), reference.get("version")) == ("gate", "3")
    sites = sites_of(root)
    north = sites["gate:north"]
    assert north.find("roa:measurementSiteReference", NS).get("version") == "3"
    # flow = volume x 60 per hour for a 1-minute bin
    assert north.xpath("roa:physicalQuantity[@index='1']//roa:vehicleFlow/com:vehicleFlowRate/text()",
                       namespaces=NS) == [str(12 * 60)]
    assert float(north.xpath(".//roa:averageVehicleSpeed/com:speed/text()", namespaces=NS)[0]) == pytest.approx(43.3)
    assert float(north.xpath(".//roa:speedPercentile/roa:speedPercentile/com:speed/text()", namespaces=NS)[0]) == 52.0
    assert float(north.xpath(".//roa:occupancy/com:percentage/text()", namespaces=NS)[0]) == 14.5
    assert north.xpath(".//roa:trafficStatusValue/text()", namespaces=NS) == ["heavy"]
    assert north.xpath(".//roa:measurementTimeDefault/roa:period/com:startOfPeriod/text()", namespaces=NS) == [
        "2026-11-18T11:06:40.000Z"]
    lorries = north.xpath(".//roa:basicData[roa:forVehiclesWithCharacteristicsOf/com:vehicleType='lorry']"
                          "/roa:vehicleFlow/com:vehicleFlowRate/text()", namespaces=NS)
    assert lorries == [str(2 * 60)]
    assert not north.xpath(".//roa:physicalQuantityFault", namespaces=NS)
    south = sites["gate:south"]
    assert south.xpath(".//roa:occupancy", namespaces=NS) == []  # not measured: left out, not 0
    assert south.xpath(".//roa:trafficStatusValue/text()", namespaces=NS) == ["freeFlow"]


def test_flow_per_hour_scales_with_the_bin_length():
    assert datex2.flow_per_hour(12, T0, T0 + MINUTE_MS) == 720
    assert datex2.flow_per_hour(30, T0, T0 + 15 * MINUTE_MS) == 120


@pytest.mark.parametrize("status", ["camera_offline", "no_data"])
def test_an_unobserved_bin_has_faults_and_no_values(schema, status):
    bins = [traffic_bin(status=status, volume=0, volume_by_class={}, mean_speed_kmh=None, p85_speed_kmh=None,
                        occupancy_pct=None, mean_headway_s=None, mean_gap_s=None, traffic_state="unknown", frames=0)]
    root = assert_valid(schema, datex2.measured_data_publication(bins, T0 + MINUTE_MS))
    site = sites_of(root)["gate:north"]
    assert site.xpath(".//com:vehicleFlowRate", namespaces=NS) == []  # never a zero flow
    assert site.xpath(".//roa:basicData", namespaces=NS) == []
    faults = site.xpath(".//roa:physicalQuantityFault", namespaces=NS)
    assert len(faults) == len(datex2.BASE_MEASUREMENTS)
    assert {f.findtext("roa:physicalQuantityFaultType", namespaces=NS) for f in faults} == {"noDataValuesAvailable"}
    assert {f.findtext("com:faultIdentifier", namespaces=NS) for f in faults} == {status}


def test_a_degraded_bin_keeps_its_values_marked_intermittent(schema):
    root = assert_valid(schema, datex2.measured_data_publication([traffic_bin(status="camera_degraded")], T0))
    site = sites_of(root)["gate:north"]
    flow = quantity(site, 1)
    assert flow.xpath(".//com:vehicleFlowRate/text()", namespaces=NS) == ["720"]
    assert flow.xpath("roa:physicalQuantityFault/roa:physicalQuantityFaultType/text()", namespaces=NS) == [
        "intermittentDataValues"]


def test_no_activity_is_a_true_zero_flow_and_no_speed(schema):
    record = traffic_bin(status="no_activity", volume=0, volume_by_class={}, mean_speed_kmh=None, p85_speed_kmh=None,
                         occupancy_pct=0.0, mean_headway_s=None, mean_gap_s=None, traffic_state="freeFlow")
    site = sites_of(assert_valid(schema, datex2.measured_data_publication([record], T0)))["gate:north"]
    assert site.xpath(".//roa:vehicleFlow/com:vehicleFlowRate/text()", namespaces=NS) == ["0"]
    assert quantity(site, datex2.SPEED.index) is None
    assert site.xpath(".//roa:physicalQuantityFault", namespaces=NS) == []


def test_speeds_without_calibration_are_left_out(schema):
    record = traffic_bin(speed_available=False, mean_speed_kmh=None, p85_speed_kmh=None)
    site = sites_of(assert_valid(schema, datex2.measured_data_publication([record], T0)))["gate:north"]
    assert quantity(site, datex2.SPEED.index) is None
    assert site.xpath(".//com:vehicleFlowRate/text()", namespaces=NS)[0] == "720"


def test_every_traffic_state_is_a_schema_value(schema):
    bins = [traffic_bin(f"lane{i}", i + 1, traffic_state=state) for i, state in enumerate(datex2.TRAFFIC_STATUS)]
    root = assert_valid(schema, datex2.measured_data_publication(bins, T0))
    assert sorted(root.xpath("//roa:trafficStatusValue/text()", namespaces=NS)) == sorted(datex2.TRAFFIC_STATUS)


def test_a_tampered_document_is_rejected(schema):
    root = assert_valid(schema, datex2.measured_data_publication([traffic_bin()], T0))
    root.xpath("//com:vehicleFlowRate", namespaces=NS)[0].text = "lots"
    assert not schema.validate(root)
    assert "vehicleFlowRate" in str(schema.error_log)


def test_merging_keeps_other_lanes_and_replaces_a_replayed_bin(schema):
    first = datex2.measured_data_publication([traffic_bin("north", 1), traffic_bin("south", 2, volume=1)], T0)
    second = datex2.measured_data_publication([traffic_bin("south", 2, volume=5), traffic_bin("east", 3)], T0)
    root = assert_valid(schema, datex2.merge_measured_data(first, second))
    sites = sites_of(root)
    assert sorted(sites) == ["gate:east", "gate:north", "gate:south"]
    assert sites["gate:south"].xpath("roa:physicalQuantity[@index='1']//com:vehicleFlowRate/text()",
                                     namespaces=NS) == ["300"]


@pytest.mark.parametrize(("field", "value", "message"), [
    ("status", "broken", "status"), ("traffic_state", "congested", "traffic_state"),
    ("bin_end_ms", T0, "not after"), ("camera_id", "../etc", "camera id"), ("volume", None, "lacks"),
])
def test_a_bin_that_cannot_be_published_is_refused(field, value, message):
    with pytest.raises(ValueError, match=message):
        datex2.validate_bin(traffic_bin(**{field: value}))
