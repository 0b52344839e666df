"""Build the trained re-ID embedders during set-up: `vigil reid-train --scenario [--embedder reid_pretrained]` (what
`make` runs, once per embedder).

It trains on the person tracks of the re-ID scenario cut from the sample footage, detected in process by the same
default detector, sampling and tracker as the pipeline, so set-up needs no running stack.
"""

from __future__ import annotations

import sys
from collections import defaultdict
from pathlib import Path

import av
import numpy as np

from app import reid_scenario
from app.inprocess import motion_detector
from services.reid import train
from vigil.reid_embedding import crop_boxes
from vigil.sampling import Sampler
from vigil.tracker import ByteTracker, detect_and_track


def load_video_track_crops(videos: dict[str, Path], fps: float = 5.0, class_id: int | None = None,
                           max_crops: int = 40, min_crops: int = 4) -> dict[tuple[str, int], np.ndarray]:
    """{(camera, track): crops} from video files, through the same default detector (in process), sampling and
    tracker as the pipeline: how set-up builds the shipped model without a running stack."""
    detector = motion_detector()
    by_track: dict[tuple[str, int], list] = defaultdict(list)
    for camera_id, path in videos.items():
        tracker, sampler = ByteTracker(), Sampler(fps)
        with av.open(str(path)) as container:
            for frame in container.decode(video=0):
                if not sampler.take(frame.time):
                    continue
                rgb = frame.to_ndarray(format="rgb24")
                tracked = detect_and_track(detector, tracker, camera_id, rgb)
                keep = [i for i, (t, c) in enumerate(zip(tracked.tracker_id, tracked.class_id))
                        if t >= 0 and (class_id is None or c == class_id)]
                for i, image in zip(keep, crop_boxes(rgb, tracked.xyxy[keep])):
                    by_track[(camera_id, int(tracked.tracker_id[i]))].append(image)
    return train.sample_crops(by_track, lambda image: image, max_crops, min_crops)


def scenario_tracks(settings, class_id: int | None) -> dict[tuple[str, int], np.ndarray]:
    videos = reid_scenario.build(settings.data_dir / "reid-clips")
    return load_video_track_crops(videos, class_id=class_id, max_crops=settings.reid_train_max_crops,
                                  min_crops=settings.reid_train_min_crops)


def main(argv: list[str] | None = None) -> int:
    return train.main(argv, scenario_tracks=scenario_tracks)


if __name__ == "__main__":
    sys.exit(main())
