"""Picture-quality figures of each sampled frame, measured where the pixels are decoded and carried on the FrameRef
(`quality`, a VideoQuality record) so the anomaly job's bad-video rules see them on every frame.

All figures come from a small grey copy (`WIDTH` px wide, area-averaged); about 3.5 ms a frame on one core.

- `sharpness`: variance of the Laplacian (a focus measure; defocus and blur drive it towards 0).
- `contrast`: standard deviation of the grey levels (fog, glare or a covered lens squash it).
- `still_ms`: how long the picture has been frozen. A static scene is not frozen: even the sample room's quietest
  consecutive frames (empty, H.264 with its noise mostly coded away) differ by 0.013 grey levels on average, while a
  repeated picture differs by less than 0.006 (`STILL_MEAN_DIFF` sits between). A still run starts at such a repeat
  and goes on through repeats and codec refreshes of the same picture (an intra frame re-quantises it: within
  `REFRESH_MEAN_DIFF` of the picture the run started with, at most `MAX_REFRESHES` such frames in a row); a larger
  change, or motion that drifts away from that picture (a slow car shown at a low frame rate), ends it. `still_ms` is
  the time since the picture froze, 0 while it is live. (A camera sampled faster than it delivers frames repeats
  them too: sample at most at its frame rate.)
- Against the camera's reference view, learnt here: `shift_px` (`shift_x_px`, `shift_y_px`), the scene's shift in
  frame pixels by phase correlation (`cv2.phaseCorrelate`, Hanning window), counted only where undoing it makes the
  reference's structure agree clearly better in tiles holding most of that structure (as a moved camera does; a car
  passing over an empty car park, or a person pasted elsewhere, does not), and only up to `MAX_SHIFT` of the frame;
  else 0. `similarity`: how well the frame's gradients match the reference's where the reference has structure, at
  zero shift, in a grid of tiles: the 75th percentile of the tiles' correlations (1: the same view; a moved or turned
  camera leaves no tile matching, while traffic, or someone who stood in the reference and walked off, changes only
  some). `detail`: the frame's mean gradient over the reference's (fog, blur or darkness bring it well below 1; a
  different view of as much structure does not).
- The reference is the per-pixel median of the last `REFERENCE_SAMPLES` live frames, one every `REFERENCE_EVERY_MS`
  (one a second until it is ready, after `REFERENCE_READY`; the figures against it are null until then), so traffic
  leaves it and lasting changes of the scene enter it. Once a frame showed the view shifted (`MOVED_SHIFT_PX`), no
  frame is sampled until one matches the reference again at zero shift (`BACK_MIN_SIMILARITY`): a moved camera stays
  moved until it is pointed back. A restarted ingest learns the view it sees then.
- `static_regions` (`StaticObjects`): something new that stays, the dual-background cue of stationary objects in
  AID. A long-term background (the per-pixel median of `LONG_SAMPLES` frames, one every `LONG_EVERY_MS`: about two
  minutes) against the short-term picture: a pixel that has differed from the long-term background (by more than
  `FOREGROUND_DIFF` grey levels, once the whole frame's offset is taken out: the car park's auto-exposure swings the
  picture by up to 60 grey levels when a white car enters) for at least `STATIC_MS` has joined the short-term
  background. Connected regions of such pixels (at least `MIN_REGION_PIXELS`) are reported with how long they have
  been there. Traffic passing differs for about a second; a stopped or crawling vehicle, someone standing still or
  an object on the road make a region (the anomaly job's debris rule tells which, from the tracks). The long-term
  background takes in what stands still only after `ABSORB_MS` (selective update), so an object stays reported for
  minutes rather than fading into the background within its median's half-life; a region where the frame shows less
  edge than the background (`MIN_EDGE_GAIN`: a ghost, where something that stood in the background has left) is not
  reported. None while the view is moved, or when more than `MAX_STATIC_SHARE` of the picture is static (the scene
  changed as a whole: a turned camera, a lighting change; the background learns it).
"""

from __future__ import annotations

from collections import deque

import cv2
import numpy as np

WIDTH = 160  # px: the grey copy every figure is measured on
STILL_MEAN_DIFF = 0.01  # grey levels: a repeated picture differs from the previous one by less on average
REFRESH_MEAN_DIFF = 3.0  # grey levels: a codec refresh of a frozen picture stays below this on average
MAX_REFRESHES = 3  # non-identical frames in a row that a still run survives
REFERENCE_SAMPLES = 15  # frames in the reference's median
REFERENCE_READY = 5  # samples before the reference is used
REFERENCE_EVERY_MS = 2000  # one reference sample per this (per second until the reference is ready)
MOVED_SHIFT_PX = 10.0  # frame px: a frame shifted more than this against the reference shows the view moved
BACK_MIN_SIMILARITY = 0.5  # a frame this similar at zero shift shows it is back
STRUCTURE_SHARE = 0.08  # the reference's strongest gradient pixels that similarity is measured on
CONFIRM_MIN_SIMILARITY = 0.4  # a shift counts where undoing it makes the structure of a tile agree this well
CONFIRM_MARGIN = 0.2  # and this much better than at zero shift
CONFIRM_SHARE = 0.5  # in tiles holding this share of the reference's structure
MAX_SHIFT = 0.2  # of the width (height): larger shifts are not measured (too little overlap; a change of view)
TILES = (3, 4)  # rows, columns of the grid similarity is measured in
SIMILARITY_PERCENTILE = 75  # similarity: this percentile of the tiles' correlations
MIN_TILE_PIXELS = 12  # structure pixels a tile needs to count
LONG_SAMPLES = 30  # frames in the long-term background's median, one every LONG_EVERY_MS: about 2 minutes
LONG_EVERY_MS = 4000
FOREGROUND_DIFF = 20  # grey levels from the long-term background (empty car park, offset removed: p95 4, p99 11)
STATIC_MS = 2000  # a pixel that differed this long has joined the short-term background (passing cars: about 1 s)
ABSORB_MS = 120_000  # static this long: the long-term background takes it in
MIN_REGION_PIXELS = 16  # copy pixels a static region needs (about 19 x 19 px of a 768 px frame)
MAX_STATIC_SHARE = 0.3  # more of the picture static than this: the scene changed as a whole, not an object in it
MIN_EDGE_GAIN = 1.2  # the frame's mean gradient over the background's around a region: below, it is a ghost
MAX_REGIONS = 8  # the largest this many are reported


def grey_copy(bgr: np.ndarray, width: int = WIDTH) -> np.ndarray:
    """The small grey copy the figures are measured on (uint8, `width` px wide, the frame's aspect ratio)."""
    height = max(1, round(bgr.shape[0] * width / bgr.shape[1]))
    grey = cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY) if bgr.ndim == 3 else bgr
    return cv2.resize(grey, (width, height), interpolation=cv2.INTER_AREA)


def gradient(grey: np.ndarray) -> np.ndarray:
    """Gradient magnitude (Sobel) of a grey image, float32."""
    grey = grey.astype(np.float32)
    return cv2.magnitude(cv2.Sobel(grey, cv2.CV_32F, 1, 0, ksize=3), cv2.Sobel(grey, cv2.CV_32F, 0, 1, ksize=3))


def structure_mask(edges: np.ndarray) -> np.ndarray:
    """Where the reference has structure: its strongest `STRUCTURE_SHARE` of gradient pixels (away from the border),
    widened by a pixel."""
    inner = np.zeros(edges.shape, dtype=bool)
    inner[2:-2, 2:-2] = True
    threshold = np.quantile(edges[inner], 1 - STRUCTURE_SHARE)
    strong = ((edges >= threshold) & inner).astype(np.uint8)
    return cv2.dilate(strong, np.ones((3, 3), np.uint8)) > 0


def masked_zncc(a: np.ndarray, b: np.ndarray, mask: np.ndarray) -> float:
    """Zero-mean normalised cross-correlation of two images over `mask`, in [-1, 1] (0 where one is flat)."""
    a, b = a[mask].astype(np.float32), b[mask].astype(np.float32)
    if a.size < MIN_TILE_PIXELS:
        return 0.0
    a, b = a - a.mean(), b - b.mean()
    norm = float(np.sqrt((a * a).sum() * (b * b).sum()))
    return float((a * b).sum() / norm) if norm > 1e-6 else 0.0


def tile_similarities(edges: np.ndarray, reference_edges: np.ndarray,
                      mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per tile of a `TILES` grid that holds enough of the reference's structure: the correlation (masked_zncc) of the
    frame's gradients with the reference's there, and the tile's weight (the reference's structure in it)."""
    rows, columns = TILES
    height, width = edges.shape
    scores, weights = [], []
    for row in range(rows):
        for column in range(columns):
            tile = (slice(row * height // rows, (row + 1) * height // rows),
                    slice(column * width // columns, (column + 1) * width // columns))
            inside = mask[tile]
            if inside.sum() < MIN_TILE_PIXELS:
                scores.append(np.nan)
                weights.append(0.0)
                continue
            scores.append(masked_zncc(edges[tile], reference_edges[tile], inside))
            weights.append(float(reference_edges[tile][inside].sum()))
    return np.asarray(scores), np.asarray(weights)


class QualityMeter:
    """One camera's picture-quality measurement: call `measure` with every sampled frame, in capture order."""

    def __init__(self, width: int = WIDTH):
        self.width = width
        self.previous: np.ndarray | None = None
        self.previous_ts: int | None = None
        self.still_since: int | None = None  # capture time of the picture the current still run repeats
        self.still_picture: np.ndarray | None = None  # that picture
        self.refreshes = 0  # non-identical frames in a row within the still run
        self.samples: deque = deque(maxlen=REFERENCE_SAMPLES)
        self.last_sample_ms: int | None = None
        self.reference: np.ndarray | None = None
        self.moved = False  # a frame showed the view shifted, and none since showed it back: the reference stays
        self.window: np.ndarray | None = None
        self.reference_edges: np.ndarray | None = None
        self.mask: np.ndarray | None = None
        self.static = StaticObjects()

    def measure(self, bgr: np.ndarray, ts_ms: int) -> dict:
        """The VideoQuality record of this frame (captured at `ts_ms`)."""
        grey = grey_copy(bgr, self.width)
        still_ms = self._still(grey, ts_ms)
        figures = dict(sharpness=float(cv2.Laplacian(grey, cv2.CV_32F).var()), contrast=float(grey.std()),
                       still_ms=int(still_ms), shift_px=None, shift_x_px=None, shift_y_px=None, similarity=None,
                       detail=None)
        if self.reference is not None and self.reference.shape == grey.shape:
            scale = bgr.shape[1] / self.width
            dx, dy, similarity, detail = self._shift(grey)
            dx, dy = dx * scale, dy * scale
            figures.update(shift_px=float(np.hypot(dx, dy)), shift_x_px=float(dx), shift_y_px=float(dy),
                           similarity=similarity, detail=detail)
            if figures["shift_px"] > MOVED_SHIFT_PX:
                self.moved = True
            elif similarity >= BACK_MIN_SIMILARITY:
                self.moved = False
        elif self.reference is not None:  # the stream changed size: learn its view again
            self.samples.clear()
            self.reference, self.moved = None, False
        if self.moved:  # the view is not the one the long-term background holds
            self.static.pause()
            figures["static_regions"] = []
        else:
            figures["static_regions"] = self.static.measure(grey, ts_ms, bgr.shape[1] / self.width,
                                                            learn=still_ms == 0)
        if still_ms == 0 and not self.moved:
            self._sample(grey, ts_ms)
        self.previous, self.previous_ts = grey, ts_ms
        return figures

    def _still(self, grey: np.ndarray, ts_ms: int) -> int:
        previous = self.previous
        if previous is None or previous.shape != grey.shape:
            self.still_since, self.refreshes = None, 0
            return 0
        if float(cv2.absdiff(grey, previous).mean()) < STILL_MEAN_DIFF:  # the same picture, to a few pixels
            if self.still_since is None:
                self.still_since, self.still_picture = self.previous_ts, previous
            self.refreshes = 0
        elif self.still_since is not None and self.refreshes < MAX_REFRESHES and \
                float(cv2.absdiff(grey, self.still_picture).mean()) < REFRESH_MEAN_DIFF:
            self.refreshes += 1  # a codec refresh of the frozen picture: close to it, however long the run
        else:
            self.still_since, self.still_picture, self.refreshes = None, None, 0
        return 0 if self.still_since is None else max(0, ts_ms - self.still_since)

    def _shift(self, grey: np.ndarray) -> tuple[float, float, float, float]:
        """(dx, dy) in copy pixels, the zero-shift similarity and the detail ratio. Phase correlation finds the
        strongest shift, which for a view with little structure of its own (an empty car park) can be a passing
        car's, or a copy of a person pasted elsewhere; it only counts where undoing it makes the reference's structure
        agree clearly better in most of the view (tiles holding most of the structure), as a moved camera does."""
        current = grey.astype(np.float32)
        # phaseCorrelate applies the window to its inputs in place (OpenCV 4.11): hand it copies
        (dx, dy), _response = cv2.phaseCorrelate(self.reference.copy(), current.copy(), self.window)
        edges = gradient(current)
        zero, weights = tile_similarities(edges, self.reference_edges, self.mask)
        # the view still matches where a quarter of the structured tiles match: a person who stood in the reference
        # and walked off, or cars over part of it, leave the rest; a moved or turned camera leaves none
        similarity = float(np.percentile(zero[weights > 0], SIMILARITY_PERCENTILE)) if (weights > 0).any() else 0.0
        detail = float(edges.mean() / max(float(self.reference_edges.mean()), 1e-6))
        if 0.5 <= np.hypot(dx, dy) and abs(dx) <= MAX_SHIFT * grey.shape[1] and abs(dy) <= MAX_SHIFT * grey.shape[0]:
            shift_back = np.float32([[1, 0, -dx], [0, 1, -dy]])
            size = (edges.shape[1], edges.shape[0])
            aligned = cv2.warpAffine(edges, shift_back, size, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)
            valid = cv2.warpAffine(np.ones_like(edges), shift_back, size, flags=cv2.INTER_NEAREST,
                                   borderMode=cv2.BORDER_CONSTANT) > 0
            shifted, _ = tile_similarities(aligned, self.reference_edges, self.mask & valid)
            better = np.nan_to_num(shifted - zero, nan=-1.0) >= CONFIRM_MARGIN
            better &= np.nan_to_num(shifted, nan=-1.0) >= CONFIRM_MIN_SIMILARITY
            if weights[better].sum() >= CONFIRM_SHARE * weights.sum() > 0:
                return float(dx), float(dy), similarity, detail
        return 0.0, 0.0, similarity, detail

    def _sample(self, grey: np.ndarray, ts_ms: int) -> None:
        every_ms = REFERENCE_EVERY_MS if self.reference is not None else REFERENCE_EVERY_MS // 2
        if self.last_sample_ms is not None and ts_ms - self.last_sample_ms < every_ms:
            return
        self.last_sample_ms = ts_ms
        self.samples.append(grey)
        if len(self.samples) >= REFERENCE_READY:
            self.reference = np.median(np.stack(self.samples), axis=0).astype(np.float32)
            if self.window is None or self.window.shape != grey.shape:
                self.window = cv2.createHanningWindow((grey.shape[1], grey.shape[0]), cv2.CV_32F)
            self.reference_edges = gradient(self.reference)
            self.mask = structure_mask(self.reference_edges)


class StaticObjects:
    """One camera's static-object cue (module doc): `measure` every sampled grey copy, in capture order."""

    def __init__(self):
        self.samples: deque = deque(maxlen=LONG_SAMPLES)
        self.last_sample_ms: int | None = None
        self.background: np.ndarray | None = None  # float32: the long-term background
        self.background_edges: np.ndarray | None = None
        self.since: np.ndarray | None = None  # int64 per pixel: capture ms it began to differ; 0 where it does not

    def pause(self) -> None:
        """The view is not the background's for now (moved): what differs now is not something that stays."""
        if self.since is not None:
            self.since[:] = 0

    def measure(self, grey: np.ndarray, ts_ms: int, scale: float, learn: bool) -> list[dict]:
        """The static regions of this frame (StaticRegion records, frame px: copy px x `scale`), largest first;
        `learn`: the frame may be sampled into the long-term background (not while the picture is frozen)."""
        if self.background is not None and self.background.shape != grey.shape:
            self.__init__()  # the stream changed size: learn its view again
        regions, static, age = [], None, None
        if self.background is not None:
            difference = grey.astype(np.float32) - self.background
            difference -= float(np.median(difference))  # exposure: the whole picture brighter or darker
            foreground = cv2.morphologyEx((np.abs(difference) > FOREGROUND_DIFF).astype(np.uint8), cv2.MORPH_CLOSE,
                                          np.ones((3, 3), np.uint8)) > 0
            self.since = np.where(foreground, np.where(self.since > 0, self.since, ts_ms), 0)
            age = np.where(foreground, ts_ms - self.since, 0)
            static = age >= STATIC_MS
            if static.mean() <= MAX_STATIC_SHARE:
                regions = self._regions(grey, static, age, scale)
        if learn:
            self._sample(grey, ts_ms, static, age)
        return regions

    def _regions(self, grey: np.ndarray, static: np.ndarray, age: np.ndarray, scale: float) -> list[dict]:
        opened = cv2.morphologyEx(static.astype(np.uint8), cv2.MORPH_OPEN, np.ones((3, 3), np.uint8))
        count, labels, stats, _ = cv2.connectedComponentsWithStats(opened, connectivity=8)
        edges, found = None, []
        for label in range(1, count):
            x, y, w, h, area = (int(v) for v in stats[label])
            if area < MIN_REGION_PIXELS:
                continue
            if edges is None:
                edges = gradient(grey)
            around = (slice(max(0, y - 1), y + h + 1), slice(max(0, x - 1), x + w + 1))
            if edges[around].mean() < MIN_EDGE_GAIN * max(float(self.background_edges[around].mean()), 1.0):
                continue  # a ghost: the background had more there than the frame shows
            found.append(dict(x1=x * scale, y1=y * scale, x2=(x + w) * scale, y2=(y + h) * scale,
                              area_px=area * scale * scale, static_ms=int(np.median(age[labels == label]))))
        return sorted(found, key=lambda region: -region["area_px"])[:MAX_REGIONS]

    def _sample(self, grey: np.ndarray, ts_ms: int, static: np.ndarray | None, age: np.ndarray | None) -> None:
        every_ms = LONG_EVERY_MS if self.background is not None else REFERENCE_EVERY_MS // 2
        if self.last_sample_ms is not None and ts_ms - self.last_sample_ms < every_ms:
            return
        self.last_sample_ms = ts_ms
        sample = grey.astype(np.float32)
        if static is not None and static.mean() <= MAX_STATIC_SHARE:
            # selective update: what stands there stays out of the background until it stood ABSORB_MS (a scene
            # that changed as a whole goes in at once)
            keep = static & (age < ABSORB_MS)
            sample[keep] = self.background[keep]
        self.samples.append(sample)
        if len(self.samples) >= REFERENCE_READY:
            self.background = np.median(np.stack(self.samples), axis=0).astype(np.float32)
            self.background_edges = gradient(self.background)
            if self.since is None:
                self.since = np.zeros(grey.shape, dtype=np.int64)
