"""Ingest's static-object cue (services/ingest/quality.py, `static_regions`) on real frames of the car footage: the
untouched footage, its passing cars and its auto-exposure swings show nothing that stays; an object laid on the lane
is reported where it lies within STATIC_MS, with how long it has been there, through cars passing it, for minutes
(the background does not take it in before ABSORB_MS); what left the background leaves no ghost."""

from __future__ import annotations

import av
import numpy as np
import pytest

from app.scenarios import CAR_VIDEO, DEBRIS_AT, _lay, _table_top
from services.ingest.quality import ABSORB_MS, LONG_EVERY_MS, LONG_SAMPLES, STATIC_MS, QualityMeter
from vigil.sampling import Sampler

T0 = 1_700_000_000_000


@pytest.fixture(scope="module")
def footage() -> list[np.ndarray]:
    """The car footage sampled at 5 fps, RGB."""
    sampler, frames = Sampler(5.0), []
    with av.open(str(CAR_VIDEO)) as container:
        for frame in container.decode(video=0):
            if sampler.take(float(frame.time)):
                frames.append(frame.to_ndarray(format="rgb24"))
    return frames


@pytest.fixture(scope="module")
def table_top():
    return _table_top()


def measure(frames, start_ms: int = 0, meter: QualityMeter | None = None) -> list[list[dict]]:
    meter = meter or QualityMeter()
    return [meter.measure(np.ascontiguousarray(rgb[:, :, ::-1]), T0 + start_ms + i * 200)["static_regions"]
            for i, rgb in enumerate(frames)]


def object_box(patch) -> tuple[float, float, float, float]:
    (x, y), (h, w) = DEBRIS_AT, patch.shape[:2]
    return x, y, x + w, y + h


def near(region: dict, box, tolerance: float = 12.0) -> bool:
    return all(abs(region[k] - v) <= tolerance for k, v in zip(("x1", "y1", "x2", "y2"), box))


def test_the_untouched_footage_shows_nothing_that_stays(footage):
    regions = measure(footage)
    assert max((r["static_ms"] for frame in regions for r in frame), default=0) < STATIC_MS + 500
    assert sum(1 for frame in regions if frame) <= 3, "a frame or two as the exposure recovers, no more"


def test_an_object_laid_on_the_lane_is_reported_where_it_lies_for_as_long_as_it_is_there(footage, table_top):
    patch, mask = table_top
    background = np.median(np.stack(footage[::5]), axis=0).astype(np.uint8)
    laid_at = 40  # 8 s
    frames = footage[:laid_at] + [_lay(rgb, background, patch, mask, DEBRIS_AT) for rgb in footage[laid_at:]]
    regions = measure(frames)
    box = object_box(patch)
    found = [(i, next((r for r in frame if near(r, box)), None)) for i, frame in enumerate(regions)]
    first = next(i for i, r in found if r is not None)
    assert laid_at * 200 + STATIC_MS <= first * 200 <= laid_at * 200 + STATIC_MS + 600
    assert all(r is not None for _, r in found[first:]), "reported in every frame since, cars passing by included"
    for i, region in found[first:]:
        assert abs(region["static_ms"] - (i - laid_at) * 200) <= 400, "there since it was laid"
    assert [r for frame in regions for r in frame if not near(r, box)] == [r for frame in measure(footage)
                                                                           for r in frame], "nothing else"


def test_the_background_does_not_take_the_object_in_for_minutes_and_no_ghost_is_left(footage, table_top):
    """The lane with the object, live (sensor noise), for 220 s: reported until it stood ABSORB_MS (a plain median
    of the last 2 minutes would have taken it in after about 1), gone once the background has learnt it (half its
    samples later); when it is then taken away, the empty lane the background no longer holds raises no region (a
    ghost)."""
    patch, mask = table_top
    empty = footage[30]
    background = np.median(np.stack(footage[::5]), axis=0).astype(np.uint8)
    noise = np.random.default_rng(3)

    def live(rgb, n):  # a held picture with fresh sensor noise in each frame (8 noisy copies, in turn)
        copies = [np.clip(rgb + noise.normal(0, 2.0, rgb.shape), 0, 255).astype(np.uint8) for _ in range(8)]
        return [copies[i % 8] for i in range(n)]

    meter = QualityMeter()
    measure(live(empty, 50), 0, meter)  # the empty lane learnt
    laid = _lay(empty, background, patch, mask, DEBRIS_AT)
    held = measure(live(laid, 1100), 10_000, meter)  # 220 s with the object
    box = object_box(patch)
    seen_s = [i / 5 for i, frame in enumerate(held) if any(near(r, box) for r in frame)]
    learnt_s = (ABSORB_MS + LONG_SAMPLES * LONG_EVERY_MS / 2) / 1000
    assert seen_s[0] <= STATIC_MS / 1000 + 0.4 and ABSORB_MS / 1000 <= seen_s[-1] <= learnt_s + 10, seen_s[-1]
    assert len(seen_s) == len(held[int(seen_s[0] * 5):int(seen_s[-1] * 5) + 1]), "reported throughout"
    assert not any(held[-1]), "absorbed in the end"
    removed = measure(live(empty, 100), 230_000, meter)
    assert not any(removed), "no ghost where the object was"
