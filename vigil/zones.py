"""A zone of a camera image: a named polygon with what it is for, an optional travel direction and per-zone rule
settings. The one zone shape of the platform: the camera file, the anomaly rules and the scenarios all use it.

Geometry works on whole arrays (all of a frame's anchor points at once), like supervision's `PolygonZone`.
"""

from __future__ import annotations

from functools import cached_property
from typing import Literal

import numpy as np
import yaml
from pydantic import BaseModel, ConfigDict, Field

# Anomaly rule settings: rule kind -> {setting: value}, e.g. {"loitering": {"seconds": 20}}
RuleSettings = dict[str, dict[str, float | int | bool]]


class Zone(BaseModel):
    """A polygon in pixel coordinates of the camera image.

    `rules` overrides the anomaly rules' settings inside this zone (over the camera's `rules:`, over the rules'
    defaults); which rules and settings exist is checked when the anomaly job starts."""

    # frozen: the cached arrays below must not go stale; strict: a misspelt key or a NaN coordinate is an error
    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)

    name: str
    kind: Literal["traffic", "pedestrian", "restricted"] = "traffic"
    polygon: list[tuple[float, float]] = Field(min_length=3)
    direction: tuple[float, float] | None = Field(None, description="Expected travel direction (dx, dy), if fixed.")
    rules: RuleSettings = Field(default_factory=dict, description="Rule settings for this zone, e.g. "
                                "{stopped_vehicle: {seconds: 3}}.")

    @cached_property
    def vertices(self) -> np.ndarray:
        """The polygon as a (k, 2) float64 array."""
        vertices = np.asarray(self.polygon, dtype=float)
        vertices.flags.writeable = False
        return vertices

    @cached_property
    def _edges(self) -> list[tuple[float, float, float, float]]:
        """(x1, y1, x2, y2) of every edge that is not horizontal (a horizontal edge never spans a ray's y)."""
        ends = np.roll(self.vertices, -1, axis=0)
        return [(x1, y1, x2, y2) for (x1, y1), (x2, y2) in zip(self.vertices.tolist(), ends.tolist()) if y1 != y2]

    @cached_property
    def direction_vector(self) -> np.ndarray | None:
        """The travel direction as a unit vector, or None when the zone has none."""
        if self.direction is None:
            return None
        direction = np.asarray(self.direction, dtype=float)
        direction = direction / max(np.linalg.norm(direction), 1e-9)
        direction.flags.writeable = False
        return direction

    def contains(self, points: np.ndarray) -> np.ndarray:
        """Which of the (n, 2) points lie inside the polygon → (n,) bool.

        Even-odd ray casting (a ray towards +x crosses the boundary an odd number of times from inside), looping over
        the polygon's edges and vectorised over the points. Boundary points follow the half-open convention (for an
        axis-aligned rectangle: x1 <= x < x2 and y1 <= y < y2), so zones sharing an edge never both hold a point."""
        points = np.asarray(points, dtype=float).reshape(-1, 2)
        x, y = points[:, 0], points[:, 1]
        inside = np.zeros(len(points), dtype=bool)
        for x1, y1, x2, y2 in self._edges:
            spans = (y1 > y) != (y2 > y)  # the edge crosses the horizontal line through the point
            inside ^= spans & (x < (x2 - x1) * (y - y1) / (y2 - y1) + x1)  # ... to the right of the point
        return inside

    def __eq__(self, other: object) -> bool:
        # the cached arrays live in the instance dict, where pydantic's own comparison would trip over them
        if not isinstance(other, Zone):
            return NotImplemented
        return self.model_dump() == other.model_dump()

    __hash__ = None  # equal zones need not be identical objects; nothing needs zones as dict keys


def _zone_to_yaml(dumper: yaml.SafeDumper, zone: Zone) -> yaml.Node:
    """Zones are written into camera files (demo, evaluation, tests) in the form `load_cameras` reads back."""
    return dumper.represent_dict(zone.model_dump(mode="json", exclude_none=True,
                                                 exclude={"rules"} if not zone.rules else None))


yaml.SafeDumper.add_representer(Zone, _zone_to_yaml)
