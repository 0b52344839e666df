"""The camera topology from the camera file: which cameras objects can go between, how long the transit takes, and
which site each camera belongs to. The re-ID job gates its candidates with it; the camera file builds it."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Link:
    from_camera: str
    to_camera: str
    min_transit_s: float
    max_transit_s: float


class Topology:
    """Which cameras connect, with transit bounds, and which site each camera belongs to."""

    def __init__(self, links: list[Link], sites: dict[str, str] | None = None):
        self.links = {(link.from_camera, link.to_camera): link for link in links}
        self.sites = sites or {}

    @classmethod
    def from_config(cls, raw_links: list[dict], sites: dict[str, str]) -> "Topology":
        links = []
        for raw in raw_links:
            link = Link(raw["from_camera"], raw["to_camera"], float(raw["min_transit_s"]), float(raw["max_transit_s"]))
            links.append(link)
            if raw.get("bidirectional"):
                links.append(Link(link.to_camera, link.from_camera, link.min_transit_s, link.max_transit_s))
        return cls(links, sites)

    def site(self, camera_id: str) -> str:
        return self.sites.get(camera_id, "default")

    def link(self, from_camera: str, to_camera: str) -> Link | None:
        return self.links.get((from_camera, to_camera))
