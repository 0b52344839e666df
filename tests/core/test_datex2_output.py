"""The DATEX II output writes, per camera, the site table, one publication per interval and latest.xml; it takes only
TrafficBins, merges an interval's lanes arriving in separate flushes, and keeps the newest `datex2_keep` files."""

from __future__ import annotations

from pathlib import Path

import pytest
from lxml import etree

from vigil import datex2
from vigil.config import Settings
from vigil.outputs.datex2 import Datex2Output, Datex2Settings
from vigil.topics import TRAFFIC

NS = datex2.NAMESPACES
T0 = 1_795_000_000_000
MINUTE_MS = 60_000


def traffic_bin(camera_id: str = "gate", lane: str = "north", lane_number: int = 1, minute: int = 0,
                volume: int = 10) -> dict:
    start = T0 + minute * MINUTE_MS
    return {"bin_id": f"{camera_id}:{lane}:{start}", "camera_id": camera_id, "lane": lane, "lane_number": lane_number,
            "bin_start_ms": start, "bin_end_ms": start + MINUTE_MS, "volume_by_class": {"car": volume},
            "volume": volume, "volume_positive": volume, "volume_negative": 0, "mean_speed_kmh": 40.0,
            "p85_speed_kmh": 48.0, "occupancy_pct": 10.0, "mean_headway_s": 6.0, "mean_gap_s": 4.0, "status": "ok",
            "traffic_state": "freeFlow", "free_flow_kmh": 50.0, "speed_available": True, "frames": 300}


def output(tmp_path: Path, **overrides) -> Datex2Output:
    return Datex2Output(Datex2Settings(data_dir=tmp_path, **overrides))


def write_all(out: Datex2Output, bins: list[dict]) -> None:
    for record in bins:
        out.write(TRAFFIC, "TrafficBin", record)


def flows(path: Path) -> dict[str, list[str]]:
    root = etree.parse(str(path)).getroot()
    return {site.find("roa:measurementSiteReference", NS).get("id"):
            site.xpath("roa:physicalQuantity[@index='1']//com:vehicleFlowRate/text()", namespaces=NS)
            for site in root.findall("roa:siteMeasurements", NS)}


def test_writes_per_camera_publications_latest_and_sites(tmp_path):
    out = output(tmp_path)
    write_all(out, [traffic_bin("gate", "north", 1), traffic_bin("gate", "south", 2, volume=2),
                    traffic_bin("bridge", "east", 1, volume=5)])
    assert out.pending() == 3
    assert out.flush() is True
    assert out.pending() == 0
    gate = tmp_path / "datex2" / "gate"
    end_ms = T0 + MINUTE_MS
    assert sorted(p.name for p in gate.iterdir()) == ["latest.xml", f"measured-{end_ms}.xml", "sites.xml"]
    assert flows(gate / f"measured-{end_ms}.xml") == {"gate:north": ["600"], "gate:south": ["120"]}
    assert (gate / "latest.xml").read_bytes() == (gate / f"measured-{end_ms}.xml").read_bytes()
    assert datex2.site_table_lanes((gate / "sites.xml").read_bytes()) == (1, {"north": 1, "south": 2})
    assert flows(tmp_path / "datex2" / "bridge" / "latest.xml") == {"bridge:east": ["300"]}
    assert not list((tmp_path / "datex2").rglob("*.tmp"))


def test_takes_only_traffic_bins(tmp_path):
    out = output(tmp_path)
    assert out.accepts(TRAFFIC, "TrafficBin")
    for record_type in ("VehiclePassage", "CameraStatus", "DetectionBatch", "AnomalyEvent"):
        assert not out.accepts(TRAFFIC, record_type)


def test_refuses_a_bad_bin_with_the_reason(tmp_path):
    out = output(tmp_path)
    with pytest.raises(ValueError, match="status"):
        out.write(TRAFFIC, "TrafficBin", {**traffic_bin(), "status": "sort of"})
    with pytest.raises(ValueError, match="TrafficBin"):
        out.write(TRAFFIC, "VehiclePassage", traffic_bin())
    assert out.pending() == 0


def test_lanes_of_one_interval_in_separate_flushes_end_up_in_one_file(tmp_path):
    out = output(tmp_path)
    write_all(out, [traffic_bin(lane="north", volume=1)])
    out.flush()
    write_all(out, [traffic_bin(lane="south", lane_number=2, volume=2), traffic_bin(lane="north", volume=3)])
    out.flush()  # north replayed with a new value: replaced, not doubled
    gate = tmp_path / "datex2" / "gate"
    assert flows(gate / "latest.xml") == {"gate:north": ["180"], "gate:south": ["120"]}
    assert datex2.site_table_lanes((gate / "sites.xml").read_bytes()) == (2, {"north": 1, "south": 2})
    # a new output (a restarted sink) continues the site table's version instead of starting again
    restarted = output(tmp_path)
    write_all(restarted, [traffic_bin(lane="west", lane_number=3, minute=1)])
    restarted.flush()
    assert datex2.site_table_lanes((gate / "sites.xml").read_bytes()) == (3, {"north": 1, "south": 2, "west": 3})
    latest = etree.parse(str(gate / "latest.xml")).getroot()
    assert latest.find("roa:measurementSiteTableReference", NS).get("version") == "3"


def test_keeps_the_newest_files_and_latest_follows_the_newest_interval(tmp_path):
    out = output(tmp_path, datex2_keep=3)
    write_all(out, [traffic_bin(minute=minute, volume=minute) for minute in range(5)])
    out.flush()
    gate = tmp_path / "datex2" / "gate"
    kept = sorted(p.name for p in gate.glob("measured-*.xml"))
    assert kept == [f"measured-{T0 + (minute + 1) * MINUTE_MS}.xml" for minute in (2, 3, 4)]
    assert flows(gate / "latest.xml") == {"gate:north": [str(4 * 60)]}
    write_all(out, [traffic_bin(minute=3, volume=7)])  # a late bin of an older interval leaves latest.xml alone
    out.flush()
    assert flows(gate / "latest.xml") == {"gate:north": [str(4 * 60)]}
    assert flows(gate / f"measured-{T0 + 4 * MINUTE_MS}.xml") == {"gate:north": [str(7 * 60)]}


def test_a_failed_write_keeps_the_bins_for_the_next_flush(tmp_path):
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("a file where the folder should be")
    out = output(tmp_path, datex2_dir=blocker)
    write_all(out, [traffic_bin()])
    assert out.flush() is False
    assert out.pending() == 1
    blocker.unlink()
    assert out.flush() is True
    assert (blocker / "gate" / "latest.xml").exists()


def test_directory_defaults_under_data_dir_and_takes_the_sinks_settings(tmp_path):
    assert Datex2Settings(data_dir=tmp_path).datex2_root == tmp_path / "datex2"
    assert Datex2Settings(data_dir=tmp_path, datex2_dir=tmp_path / "out").datex2_root == tmp_path / "out"
    assert Datex2Output(Settings(data_dir=tmp_path)).root == tmp_path / "datex2"
