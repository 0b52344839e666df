"""The held-out re-ID protocol of load/eval_reid.py (`--protocol heldout`): train an embedder on one construction,
score it on constructions training never saw.

Constructions are cut from the person footage like the in-sample scenario (app/reid_scenario.py), but from other
source segments and with other crops, mirroring, colour casts, blur, scales and sampling rates. Two folds split the
six visitors by time: fold A trains on the first three people (source 0-72 s) and scores on constructions of the
last three (72-138 s); fold B the other way round. So no held-out identity, view or segment is ever seen in training.

Each construction runs through the pipeline's own pieces in process: H.264-encoded clips, the sampler at the
camera's rate, JPEG round trip as the frame store does, the default detector (yolox_nano, as Triton configures it),
the ByteTrack tracker, the embed service's track summaries (same sample selection: every 2nd detection, at most 32
kept, robust mean), and the re-ID job's matching code (topology gate, ≥ 4-crop gate, Hungarian assignment). Kafka,
Triton and Flink are left out: they move these records but do not change them (the in-sample run of eval_reid.py
covers them). The detector and tracker run once per construction; every embedder then embeds the same crops.

Reported per embedder and held-out construction: match precision and recall against the identity links the
construction implies, IDF1 of the global ids over every box of a real person, and the similarity margin (for each
true link, the same-person similarity minus the best similarity to another person on the from-camera).
"""

from __future__ import annotations

import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from app.reid_scenario import MIN_PERSON_HEIGHT, VISITS, View
from app.scenarios import PERSON_FPS, PERSON_VIDEO, _frames, _write
from jobs.reid.matching import IdentityState, MatchConfig, Summary, match
from services.reid.summaries import TrackSummaries
from vigil.reid_embedding import robust_mean
from vigil.sampling import Sampler
from vigil.topology import Topology
from vigil.tracker import ByteTracker, detect_and_track

T0_MS = 1_700_000_000_000
LEAD_S, TRAILER_S = 8.0, 12.0  # empty room before the segment (detector warm-up) and after it
LINK = {"min_transit_s": -10.0, "max_transit_s": 40.0}
SEGMENTS = {"first": (0.0, 72.0), "last": (72.0, 138.0)}
SWEEP = (0.5, 0.6, 0.7, 0.8, 0.9)
# Constant quantiser 4 (about 150-600 kbit/s for these views at 10 fps, CCTV-like): at the encoder's default rate
# (20-50 kbit/s) the small soft views lose a person standing still altogether, a codec test rather than a re-ID one.
CLIP_QSCALE = 4


@dataclass(frozen=True)
class Construction:
    name: str
    segment: str  # a SEGMENTS key
    views: tuple[View, ...]  # in walking order; neighbours are linked
    fps: tuple[float, ...]  # sampling rate per view
    absent: dict = field(default_factory=dict)  # camera id → persons replaced by the empty room there

    @property
    def links(self) -> list[dict]:
        return [{"from_camera": a.camera_id, "to_camera": b.camera_id, **LINK} for a, b in zip(self.views, self.views[1:])]

    @property
    def persons(self) -> list[str]:
        start, end = SEGMENTS[self.segment]
        return [p for p, (a, b) in VISITS.items() if start <= a and b <= end]

    def identity(self, camera_id: str, first_s: float, last_s: float, median_height: float) -> str | None:
        """A track's true identity from its clip times and box height (None: not a whole person in a visit)."""
        view = next(v for v in self.views if v.camera_id == camera_id)
        if view.to_source_height(median_height) < MIN_PERSON_HEIGHT:
            return None
        source_s = (first_s + last_s) / 2 - view.offset_s + SEGMENTS[self.segment][0]
        for person in self.persons:
            start, end = VISITS[person]
            if start - 1.0 <= source_s <= end + 1.0 and person not in self.absent.get(camera_id, ()):
                return person
        return None


def _views(prefix: str, specs) -> tuple[View, ...]:
    return tuple(View(f"{prefix}-{i}", LEAD_S + 30.0 * i, *spec) for i, spec in enumerate(specs))


# The training constructions: the in-sample scenario's three views (app/reid_scenario.VIEWS), on one segment.
TRAIN_SPECS = [(0, 480, 1.0, False, 1.0, (1.0, 1.0, 1.0), 0), (288, 768, 1.0, False, 0.8, (1.12, 1.0, 0.85), 3),
               (0, 768, 0.75, True, 1.25, (0.9, 1.0, 1.15), 0)]
# Held-out views: other crops, scales, colour casts, blur, mirroring and sampling rates than any training view.
PAIR_SPECS = [(0, 768, 1.0, False, 1.0, (1.0, 1.0, 1.0), 0),  # the full room as recorded
              (96, 672, 1.0, True, 1.1, (0.85, 1.05, 1.1), 0)]  # a mirrored middle crop, green-blue cast
SCALE_SPECS = [(0, 560, 0.6, False, 0.85, (1.15, 1.0, 0.8), 5),  # left part, small, warm and soft
               (248, 768, 0.85, False, 1.35, (0.95, 0.95, 1.1), 0)]  # right part, darker and cooler
CHAIN_SPECS = [(144, 624, 1.0, False, 0.9, (1.05, 0.95, 0.9), 3),  # a middle crop, slightly warm and soft
               (0, 768, 0.5, True, 1.0, (1.0, 1.0, 1.0), 0),  # the whole room, small and mirrored
               (0, 640, 1.0, False, 1.2, (1.0, 1.1, 0.9), 0)]  # left part, greenish, sampled at 2.5 fps


def constructions(segment: str) -> dict[str, Construction]:
    """The held-out constructions of a segment; its second person is absent from the second view of `pair`."""
    second = [p for p, (a, b) in VISITS.items() if SEGMENTS[segment][0] <= a and b <= SEGMENTS[segment][1]][1]
    pair = Construction(f"pair-{segment}", segment, _views(f"pair{segment[0]}", PAIR_SPECS), (5.0, 3.0),
                        {f"pair{segment[0]}-1": (second,)})
    scaled = Construction(f"scaled-{segment}", segment, _views(f"scale{segment[0]}", SCALE_SPECS), (4.0, 6.0))
    chain = Construction(f"chain-{segment}", segment, _views(f"chain{segment[0]}", CHAIN_SPECS), (5.0, 5.0, 2.5))
    return {c.name: c for c in (pair, scaled, chain)}


def training_construction(segment: str) -> Construction:
    return Construction(f"train-{segment}", segment, _views(f"train{segment[0]}", TRAIN_SPECS), (5.0, 5.0, 5.0))


def build_clips(construction: Construction, out_dir: Path, source: list | None = None) -> dict[str, Path]:
    """One MPEG-4 clip per view (cached by name)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {v.camera_id: out_dir / f"{construction.name}-{v.camera_id}-q{CLIP_QSCALE}.mp4" for v in construction.views}
    if all(p.exists() for p in paths.values()):
        return paths
    source = source if source is not None else _frames(PERSON_VIDEO)
    empty = source[456:494] + source[456:494][::-1]  # the empty room between two visits, back and forth
    start, end = (int(round(s * PERSON_FPS)) for s in SEGMENTS[construction.segment])
    for view in construction.views:
        hidden = [VISITS[p] for p in construction.absent.get(view.camera_id, ())]
        frames = [view.render(empty[i % len(empty)]) for i in range(int(view.offset_s * PERSON_FPS))]
        for i in range(start, min(end, len(source))):
            t = i / PERSON_FPS
            shown = empty[i % len(empty)] if any(a - 0.5 <= t <= b + 0.5 for a, b in hidden) else source[i]
            frames.append(view.render(shown))
        frames += [view.render(empty[i % len(empty)]) for i in range(int(TRAILER_S * PERSON_FPS))]
        tmp = paths[view.camera_id].with_suffix(".part.mp4")
        _write(tmp, frames, PERSON_FPS, qscale=CLIP_QSCALE)
        tmp.replace(paths[view.camera_id])
    return paths


@dataclass
class Observed:
    """What detector, tracker and summaries produced for a construction, before any embedding: every crop the embed
    service would embed, and per summary the crops its robust mean is taken over."""
    construction: Construction
    crops: list = field(default_factory=list)  # uint8 [128, 64, 3]
    summaries: list = field(default_factory=list)  # (record without embedding, crop indices)
    boxes: list = field(default_factory=list)  # (camera, ts_ms, track_id, x1, y1, x2, y2)
    track_crops: dict = field(default_factory=lambda: defaultdict(list))  # (camera, track) → crop indices
    identities: dict = field(default_factory=dict)  # (camera, track) → person or None


def observe(construction: Construction, clips: dict[str, Path], detector) -> Observed:
    import av

    seen = Observed(construction)
    for view, fps in zip(construction.views, construction.fps):
        camera_id, tracker, sampler = view.camera_id, ByteTracker(), Sampler(fps)
        summaries = TrackSummaries()  # the embed service's defaults: every 2nd detection, 32 samples, 30 s interval
        heights = defaultdict(list)

        def emit(states, final):
            for state in states:
                indices = [int(v[0]) for v in state.embeddings]
                state.embeddings = []  # the record's embedding is computed per embedder from the indices
                record = summaries.record(state, final, "", None, 0)
                state.embeddings = [np.array([i], np.float32) for i in indices]
                seen.summaries.append((record, indices))

        with av.open(str(clips[camera_id])) as container:
            for frame in container.decode(video=0):
                if not sampler.take(frame.time):
                    continue
                ts_ms = T0_MS + int(round(frame.time * 1000))
                bgr = cv2.cvtColor(frame.to_ndarray(format="rgb24"), cv2.COLOR_RGB2BGR)
                _, jpeg = cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, 90])  # the frame store's round trip
                rgb = cv2.cvtColor(cv2.imdecode(jpeg, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
                tracked = detect_and_track(detector, tracker, camera_id, rgb)
                summaries.observe(camera_id, ts_ms, tracked, rgb)
                pending = summaries.pending_crops()
                if pending is not None:  # stand-in embeddings: the index of each crop
                    first = len(seen.crops)
                    seen.crops.extend(pending)
                    for key, index in zip(summaries.pending_keys(), range(first, first + len(pending))):
                        seen.track_crops[key].append(index)
                    summaries.add_embeddings(np.arange(first, first + len(pending), dtype=np.float32)[:, None])
                for box, track_id in zip(tracked.xyxy, tracked.tracker_id):
                    if track_id >= 0:
                        seen.boxes.append((camera_id, ts_ms, int(track_id), *map(float, box)))
                        heights[int(track_id)].append(float(box[3] - box[1]))
                emit(summaries.end(camera_id, tracker.ended), final=True)
                emit(summaries.due(camera_id, ts_ms), final=False)
        emit(summaries.end(camera_id, summaries.open_track_ids(camera_id)), final=True)  # the stream ended
        for record, _ in seen.summaries:
            if record["camera_id"] == camera_id:
                key = (camera_id, record["track_id"])
                seen.identities[key] = construction.identity(
                    camera_id, (record["first_seen_ms"] - T0_MS) / 1000, (record["last_seen_ms"] - T0_MS) / 1000,
                    float(np.median(heights[record["track_id"]])) if heights[record["track_id"]] else 0.0)
    return seen


def training_crops(seen: Observed, max_crops: int = 40, min_crops: int = 4) -> dict:
    """{(camera, track): crops} for the self-supervised trainer (no identity labels), as `vigil reid-train` samples."""
    from services.reid.train import sample_crops

    crops = np.stack(seen.crops) if seen.crops else np.zeros((0, 128, 64, 3), np.uint8)
    return sample_crops(dict(seen.track_crops), lambda index: crops[index], max_crops, min_crops)


def summaries_for(seen: Observed, embeddings: np.ndarray, embedder: str) -> list[Summary]:
    out = []
    for record, indices in seen.summaries:
        vector = robust_mean(embeddings[indices]) if indices else np.zeros(0, np.float32)
        out.append(Summary.from_record({**record, "embedding": vector, "embedding_samples": len(indices),
                                        "embedder": embedder}))
    return sorted(out, key=lambda s: s.last_seen_ms)


def _final(summaries: list[Summary]) -> dict:
    latest = {}
    for s in summaries:
        if s.key not in latest or (s.final, s.sequence) > (latest[s.key].final, latest[s.key].sequence):
            latest[s.key] = s
    return latest


def score(seen: Observed, summaries: list[Summary], min_similarity: float) -> dict:
    """Precision, recall, IDF1 and similarity margins of one embedder's summaries of one construction."""
    import motmetrics as mm

    construction, identities = seen.construction, seen.identities
    topology = Topology.from_config(construction.links, {v.camera_id: "site" for v in construction.views})
    records = match(summaries, topology, IdentityState(), MatchConfig(min_similarity=min_similarity))
    # a true link per person the construction shows in both views, whether or not the detector found them there
    shown = {v.camera_id: set(construction.persons) - set(construction.absent.get(v.camera_id, ()))
             for v in construction.views}
    truth = {(link["from_camera"], link["to_camera"], p) for link in construction.links
             for p in shown[link["from_camera"]] & shown[link["to_camera"]]}
    tracked = defaultdict(set)
    for (camera_id, _), person in identities.items():
        if person:
            tracked[camera_id].add(person)
    tracked_truth = {t for t in truth if t[2] in tracked[t[0]] and t[2] in tracked[t[1]]}
    correct, found = 0, set()
    for r in records:
        a = identities.get((r["from_camera_id"], r["from_track_id"]))
        b = identities.get((r["to_camera_id"], r["to_track_id"]))
        if a is not None and a == b:
            correct += 1
            found.add((r["from_camera_id"], r["to_camera_id"], a))
    result = {"matches": len(records), "correct": correct,
              "precision": round(correct / len(records), 3) if records else None,
              "true_links": len(truth), "true_links_tracked_on_both_views": len(tracked_truth),
              "links_found": len(found & truth),
              "recall": round(len(found & truth) / len(truth), 3) if truth else None}
    # IDF1 of the global ids (chains of the matches) over every box of a track with a true identity
    successor = {(r["from_camera_id"], r["from_track_id"]): (r["to_camera_id"], r["to_track_id"]) for r in records}
    predecessor = {v: k for k, v in successor.items()}

    def global_id(key):
        while key in predecessor:
            key = predecessor[key]
        return f"{key[0]}:{key[1]}"

    accumulator, numbers = mm.MOTAccumulator(auto_id=False), {}
    number = lambda name: numbers.setdefault(name, len(numbers) + 1)  # noqa: E731
    by_frame = defaultdict(list)
    for camera_id, ts_ms, track_id, *box in seen.boxes:
        by_frame[(camera_id, ts_ms)].append((track_id, box))
    for index, ((camera_id, _), rows) in enumerate(sorted(by_frame.items())):
        gt_ids, gt_boxes, hyp_ids, hyp_boxes = [], [], [], []
        for track_id, (x1, y1, x2, y2) in rows:
            key = (camera_id, track_id)
            if key not in identities:
                continue
            hyp_ids.append(number("hyp:" + global_id(key)))
            hyp_boxes.append([x1, y1, x2 - x1, y2 - y1])
            if identities[key]:
                gt_ids.append(number("gt:" + identities[key]))
                gt_boxes.append([x1, y1, x2 - x1, y2 - y1])
        distances = mm.distances.iou_matrix(np.array(gt_boxes).reshape(-1, 4), np.array(hyp_boxes).reshape(-1, 4),
                                            max_iou=0.5)
        accumulator.update(gt_ids, hyp_ids, distances, frameid=index)
    summary = mm.metrics.create().compute(accumulator, metrics=["idf1"], name="all")
    result["idf1"] = round(float(summary["idf1"].iloc[0]), 3)
    # similarity margins: per true link, same person vs the nearest other person on the from-camera
    latest = [s for s in _final(summaries).values() if s.embedding.size and s.samples >= 4]
    margins = []
    for link in construction.links:
        froms = [s for s in latest if s.camera_id == link["from_camera"] and identities.get(s.key)]
        for b in (s for s in latest if s.camera_id == link["to_camera"] and identities.get(s.key)):
            same = [float(a.embedding @ b.embedding) for a in froms if identities[a.key] == identities[b.key]]
            other = [float(a.embedding @ b.embedding) for a in froms if identities[a.key] != identities[b.key]]
            if same and other:
                margins.append(max(same) - max(other))
    result["margin"] = ({"min": round(min(margins), 3), "median": round(float(np.median(margins)), 3),
                         "positive": f"{sum(m > 0 for m in margins)}/{len(margins)}"} if margins else None)
    return result


def score_sweep(seen: Observed, summaries: list[Summary], thresholds=SWEEP) -> dict:
    """Precision and recall of the job's matching at each threshold (the IDF1 and margins are threshold-free or
    reported at the job's threshold by `score`)."""
    return {str(t): {k: v for k, v in score(seen, summaries, t).items() if k in ("precision", "recall")}
            for t in thresholds}


def colour(crops: np.ndarray):
    from vigil.reid_embedding import colour_embedding

    return colour_embedding(crops)


def torch_embed(model, crops: np.ndarray, batch: int = 256) -> np.ndarray:
    import torch

    parts = []
    with torch.inference_mode():
        for start in range(0, len(crops), batch):
            x = torch.from_numpy(np.ascontiguousarray(crops[start:start + batch])).permute(0, 3, 1, 2).float()
            parts.append(model(x).numpy())
    return np.concatenate(parts) if parts else np.zeros((0, 128), np.float32)


def trainers(steps: int) -> dict:
    """Embedder name → `train(track crops) → embed(crops)`; None = nothing to train."""
    from services.reid.learn import train_embedder

    def trained(embedder):
        def train(tracks):
            model, _ = train_embedder(tracks, steps=steps, log_every=0, embedder=embedder)
            return lambda crops: torch_embed(model, crops)
        return train

    return {"reid_color": None, "reid_learned": trained("reid_learned"), "reid_pretrained": trained("reid_pretrained")}


def run(work: Path, steps: int = 300, min_similarity: float = 0.7, embedders: list[str] | None = None,
        log=print) -> dict:
    """Both folds and the in-sample check; returns the results dict (see the module doc)."""
    from app.inprocess import detector as in_process_detector
    from services.infer.service import InferSettings

    detector_name = InferSettings.model_fields["detector_model"].default
    detector = in_process_detector(detector_name)
    available = trainers(steps)
    names = embedders or list(available)
    source = _frames(PERSON_VIDEO)
    observed: dict[str, Observed] = {}

    def seen(construction: Construction) -> Observed:
        if construction.name not in observed:
            started = time.monotonic()
            observed[construction.name] = observe(construction, build_clips(construction, work, source), detector)
            o = observed[construction.name]
            log(f"{construction.name}: {len(o.summaries)} summaries, {len(o.crops)} crops, "
                f"{sum(1 for p in o.identities.values() if p)} tracks of a person ({time.monotonic() - started:.0f} s)")
        return observed[construction.name]

    folds = {}
    for train_segment, test_segment in (("first", "last"), ("last", "first")):
        train_seen = seen(training_construction(train_segment))
        tracks = training_crops(train_seen)
        fold = {"trained_on": train_seen.construction.name, "training_tracks": len(tracks), "embedders": {}}
        for name in names:
            started = time.monotonic()
            embed = colour if available[name] is None else available[name](tracks)
            trained_s = round(time.monotonic() - started, 1)
            scores = {}
            for construction in constructions(test_segment).values():
                test = seen(construction)
                summaries = summaries_for(test, embed(np.stack(test.crops)), name)
                scores[construction.name] = score(test, summaries, min_similarity) | {
                    "sweep": score_sweep(test, summaries)}
            # in-sample, labelled as such: scored on the very tracks it was trained on
            scores["in-sample " + train_seen.construction.name] = score(
                train_seen, summaries_for(train_seen, embed(np.stack(train_seen.crops)), name), min_similarity)
            fold["embedders"][name] = {"train_s": trained_s, "scores": scores}
            log(f"fold {train_segment}→{test_segment} {name}: " + ", ".join(
                f"{c} P {s['precision']} R {s['recall']} IDF1 {s['idf1']}" for c, s in scores.items()))
        folds[f"{train_segment}->{test_segment}"] = fold
    constructions_used = {name: {"segment": o.construction.segment, "views": [v.__dict__ for v in o.construction.views],
                                 "fps": o.construction.fps, "absent": o.construction.absent,
                                 "persons": o.construction.persons} for name, o in observed.items()}
    return {"protocol": "heldout", "detector": detector_name, "min_similarity": min_similarity, "steps": steps,
            "constructions": constructions_used, "folds": folds}
