"""A camera's traffic geometry: its lanes, the count lines vehicles are counted on, the detection zones that act as
virtual induction loops, and the calibration that maps image pixels to metres on the road surface.

It lives in the camera file under a camera's `traffic:` and is validated when the file is read, with errors that say
what to fix: a line naming an unknown lane, a positive direction that runs along its line, calibration points that
cannot determine a homography. The traffic job (`jobs/traffic`) does the counting; this module holds only the shapes
and their vectorised geometry.
"""

from __future__ import annotations

from functools import cached_property
from itertools import combinations

import cv2
import numpy as np
import yaml
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from vigil.zones import Zone

Point = tuple[float, float]

MAX_REPROJECTION_ERROR_M = 0.5  # a calibration point further off than this after the fit is a typo or a bad click
MIN_SINE_TO_LINE = 0.1  # a positive direction within ~6 degrees of its line does not say which way is "across"
COLLINEAR_RATIO = 0.01  # three points are "on one line" when the third is within 1 % of their span of it
DUPLICATE_PX, DUPLICATE_M = 1.0, 0.05


def _unit(vector: Point, what: str) -> np.ndarray:
    vector = np.asarray(vector, dtype=float)
    norm = float(np.hypot(*vector))
    if norm < 1e-9:
        raise ValueError(f"{what} {tuple(vector.tolist())} has no length; give a direction (dx, dy), e.g. (0, 1)")
    return vector / norm


class _Shape(BaseModel):
    """Frozen, so the cached arrays below cannot go stale; compared on its fields (the caches hold numpy arrays)."""

    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, type(self)):
            return NotImplemented
        return self.model_dump() == other.model_dump()

    __hash__ = None


class Lane(_Shape):
    """One traffic lane in the image: `number` as the road authority numbers it (1 = the first lane, DATEX II
    style), its polygon, the image direction vehicles travel in, and optionally its known free-flow speed."""

    name: str
    number: int = Field(ge=1)
    polygon: list[Point] = Field(min_length=3)
    direction: Point = Field(description="Travel direction (dx, dy) in the image.")
    free_flow_kmh: float | None = Field(None, gt=0, description="Free-flow speed; learned from traffic when unset.")

    @field_validator("direction")
    @classmethod
    def _has_length(cls, direction: Point) -> Point:
        _unit(direction, "direction")
        return direction

    @cached_property
    def area(self) -> Zone:
        return Zone(name=self.name, kind="traffic", polygon=self.polygon, direction=self.direction)

    def contains(self, points: np.ndarray) -> np.ndarray:
        """Which of the (n, 2) points lie in the lane → (n,) bool."""
        return self.area.contains(points)


class CountLine(_Shape):
    """A count line across `lane` from `start` to `end`. A vehicle is counted when its ground anchor crosses the
    segment; `positive` is the travel direction across the line that counts as direction +1."""

    name: str
    lane: str = Field(description="Name of the lane this line counts.")
    start: Point
    end: Point
    positive: Point = Field(description="Travel direction (dx, dy) across the line counted as positive.")

    @model_validator(mode="after")
    def _crosses(self):
        along = _unit(np.subtract(self.end, self.start), f"count line {self.name!r}: end - start")
        positive = _unit(self.positive, f"count line {self.name!r}: positive")
        if abs(float(np.cross(along, positive))) < MIN_SINE_TO_LINE:
            normal = (round(float(-along[1]), 3) + 0.0, round(float(along[0]), 3) + 0.0)  # no -0.0
            raise ValueError(f"count line {self.name!r}: positive {tuple(self.positive)} runs along the line from "
                             f"{tuple(self.start)} to {tuple(self.end)}, so it does not say which way across is "
                             f"positive; give the travel direction across it, e.g. {normal} or its opposite")
        return self

    @cached_property
    def length_px(self) -> float:
        return float(np.hypot(*np.subtract(self.end, self.start)))

    @cached_property
    def _frame(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(origin, unit vector along the line, unit normal towards the positive side)."""
        origin = np.asarray(self.start, dtype=float)
        along = np.subtract(self.end, self.start) / self.length_px
        normal = np.array([-along[1], along[0]])
        if normal @ np.asarray(self.positive, dtype=float) < 0:
            normal = -normal
        for array in (origin, along, normal):
            array.flags.writeable = False
        return origin, along, normal

    def signed_distance(self, points: np.ndarray) -> np.ndarray:
        """Pixels from the (infinite) line of the (n, 2) points, > 0 on the positive side → (n,)."""
        origin, _, normal = self._frame
        return (np.asarray(points, dtype=float).reshape(-1, 2) - origin) @ normal

    def position_along(self, points: np.ndarray) -> np.ndarray:
        """Pixels from `start` towards `end` of the points' projections on the line (0..length on the segment)."""
        origin, along, _ = self._frame
        return (np.asarray(points, dtype=float).reshape(-1, 2) - origin) @ along


class DetectionZone(_Shape):
    """A virtual induction loop on `lane`: its occupancy, the headways and gaps of the vehicles entering it."""

    name: str
    lane: str = Field(description="Name of the lane this zone measures.")
    polygon: list[Point] = Field(min_length=3)

    @cached_property
    def area(self) -> Zone:
        return Zone(name=self.name, kind="traffic", polygon=self.polygon)

    def contains(self, points: np.ndarray) -> np.ndarray:
        """Which of the (n, 2) points lie in the zone → (n,) bool."""
        return self.area.contains(points)


def _first_collinear_triple(points: np.ndarray) -> tuple[int, int, int] | None:
    for triple in combinations(range(len(points)), 3):
        a, b, c = points[list(triple)]
        span = max(np.hypot(*(b - a)), np.hypot(*(c - a)), np.hypot(*(c - b)))
        if abs(float(np.cross(b - a, c - a))) / span**2 < COLLINEAR_RATIO:  # height over span
            return triple
    return None


def _check_point_set(points: np.ndarray, field: str, duplicate_within: float, unit: str) -> None:
    for i, j in combinations(range(len(points)), 2):
        if np.hypot(*(points[i] - points[j])) < duplicate_within:
            raise ValueError(f"calibration: {field}[{i}] and {field}[{j}] are the same point "
                             f"(within {duplicate_within} {unit}); each point must be a different spot on the road")
    if len(points) == 4:
        triple = _first_collinear_triple(points)
        if triple is not None:
            raise ValueError(f"calibration: {field} {list(triple)} lie on one line; a homography needs points "
                             "with no three on a line (e.g. the four corners of a lane marking rectangle)")
    elif not any(_first_collinear_triple(points[list(quad)]) is None for quad in combinations(range(len(points)), 4)):
        raise ValueError(f"calibration: no four of the {len(points)} {field} are free of three on one line; "
                         "spread the points over the road surface")


def _least_fitting_point(image: np.ndarray, ground: np.ndarray) -> tuple[int, float] | None:
    """(index, metres) of the point whose removal lets the others fit best, and how far their fit misses it.

    None under 6 points: any 4 points fit exactly, so with 5 every point is equally suspect."""
    if len(image) < 6:
        return None
    candidates = []
    for index in range(len(image)):
        others = np.arange(len(image)) != index
        matrix, _ = cv2.findHomography(image[others], ground[others], 0)
        if matrix is None:
            continue
        mapped = np.c_[image, np.ones(len(image))] @ matrix.T
        errors = np.hypot(*(mapped[:, :2] / mapped[:, 2:] - ground).T)
        candidates.append((float(errors[others].max()), float(errors[index]), index))
    if not candidates:
        return None
    _, error, index = min(candidates)
    return index, error


class Calibration(_Shape):
    """Image pixels ↔ metres on the (flat) road surface: a homography fitted by least squares to >= 4 pairs of an
    image point and the same spot's ground coordinates (any metric frame, e.g. metres along and across the road)."""

    image_points: list[Point] = Field(min_length=4)
    ground_points_m: list[Point] = Field(min_length=4)

    @model_validator(mode="after")
    def _solvable(self):
        if len(self.image_points) != len(self.ground_points_m):
            raise ValueError(f"calibration: {len(self.image_points)} image_points but {len(self.ground_points_m)} "
                             "ground_points_m; give one ground point (metres) per image point, in the same order")
        image, ground = self._arrays
        _check_point_set(image, "image_points", DUPLICATE_PX, "px")
        _check_point_set(ground, "ground_points_m", DUPLICATE_M, "m")
        if self.homography is None:
            raise ValueError("calibration: no homography fits these points; check their order and values")
        w = np.c_[image, np.ones(len(image))] @ self.homography[2]
        if not ((w > 0).all() or (w < 0).all()):
            raise ValueError("calibration: the points do not map onto one ground plane (some fall beyond the "
                             "horizon of the fit); check that each image point matches its ground point")
        errors = np.hypot(*(self.to_ground(image) - ground).T)
        worst = int(np.argmax(errors))
        if errors[worst] > MAX_REPROJECTION_ERROR_M:
            problem = (f"calibration: the points do not fit one road plane within {MAX_REPROJECTION_ERROR_M} m "
                       f"(point {worst} is {errors[worst]:.2f} m off the fit)")
            suspect = _least_fitting_point(image, ground)
            if suspect is not None:  # a least-squares fit spreads one bad point's error over all of them
                index, error = suspect
                problem += f"; the other points put point {index} {error:.2f} m from ground_points_m[{index}]"
                worst = index
            elif len(image) == 5:
                problem += "; with 5 points any one of them may be wrong (add a sixth to find out which)"
            raise ValueError(f"{problem}; check that image_points[{worst}] and ground_points_m[{worst}] are the "
                             "same spot")
        return self

    @cached_property
    def _arrays(self) -> tuple[np.ndarray, np.ndarray]:
        return np.asarray(self.image_points, dtype=float), np.asarray(self.ground_points_m, dtype=float)

    @cached_property
    def homography(self) -> np.ndarray | None:
        """The 3x3 matrix mapping homogeneous image points to ground points (least squares over all points)."""
        image, ground = self._arrays
        matrix, _ = cv2.findHomography(image, ground, 0)
        if matrix is None or not np.isfinite(matrix).all():
            return None
        matrix.flags.writeable = False
        return matrix

    @cached_property
    def _image_side(self) -> float:
        """The sign of the homogeneous scale on the road's side of the horizon."""
        image, _ = self._arrays
        return float(np.sign(np.c_[image, np.ones(len(image))] @ self.homography[2])[0])

    def to_ground(self, points: np.ndarray) -> np.ndarray:
        """(n, 2) image points → (n, 2) ground points in metres; NaN for points at or beyond the horizon."""
        points = np.asarray(points, dtype=float).reshape(-1, 2)
        mapped = np.c_[points, np.ones(len(points))] @ self.homography.T
        w = mapped[:, 2] * self._image_side
        with np.errstate(divide="ignore", invalid="ignore"):
            ground = mapped[:, :2] / mapped[:, 2:]
        ground[w <= 1e-12] = np.nan
        return ground

    def to_image(self, points_m: np.ndarray) -> np.ndarray:
        """(n, 2) ground points in metres → (n, 2) image points (the inverse mapping; synthetic tracks, overlays)."""
        points_m = np.asarray(points_m, dtype=float).reshape(-1, 2)
        mapped = np.c_[points_m, np.ones(len(points_m))] @ np.linalg.inv(self.homography).T
        return mapped[:, :2] / mapped[:, 2:]

    def metres_per_pixel_at(self, point: Point) -> float:
        """Ground metres one pixel covers around `point` (mean of a step in x and in y): the scale of pixel noise."""
        x, y = point
        ground = self.to_ground(np.array([[x, y], [x + 1, y], [x, y + 1]]))
        return float((np.hypot(*(ground[1] - ground[0])) + np.hypot(*(ground[2] - ground[0]))) / 2)


class TrafficGeometry(_Shape):
    """A camera's traffic geometry: at least one lane; count lines and detection zones each belong to a lane."""

    lanes: list[Lane] = Field(default_factory=list)
    count_lines: list[CountLine] = Field(default_factory=list)
    detection_zones: list[DetectionZone] = Field(default_factory=list)
    calibration: Calibration | None = None

    @model_validator(mode="after")
    def _consistent(self):
        if not self.lanes:
            raise ValueError("traffic: give at least one lane (name, number, polygon, direction)")
        for kind, items in (("lane", self.lanes), ("count line", self.count_lines),
                            ("detection zone", self.detection_zones)):
            names = [item.name for item in items]
            repeated = sorted({name for name in names if names.count(name) > 1})
            if repeated:
                raise ValueError(f"traffic: {kind} names must be unique; repeated: {repeated}")
        lanes = [lane.name for lane in self.lanes]
        for kind, items in (("count line", self.count_lines), ("detection zone", self.detection_zones)):
            for item in items:
                if item.lane not in lanes:
                    raise ValueError(f"traffic: {kind} {item.name!r} names lane {item.lane!r}, which does not "
                                     f"exist; the lanes are {lanes}")
        return self

    def lane(self, name: str) -> Lane:
        return next(lane for lane in self.lanes if lane.name == name)

    def lines_of(self, lane: str) -> list[CountLine]:
        return [line for line in self.count_lines if line.lane == lane]

    def zones_of(self, lane: str) -> list[DetectionZone]:
        return [zone for zone in self.detection_zones if zone.lane == lane]


def _geometry_to_yaml(dumper: yaml.SafeDumper, geometry: TrafficGeometry) -> yaml.Node:
    """Traffic geometry is written into camera files (demo, tests) in the form `load_cameras` reads back."""
    return dumper.represent_dict(geometry.model_dump(mode="json", exclude_none=True))


yaml.SafeDumper.add_representer(TrafficGeometry, _geometry_to_yaml)
