"""The detector-adaptation commands: `vigil detector-adapt`, `vigil detector-rollback`, `vigil detector-versions`."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from app.adapt import repository as repo
from vigil.detector_models import adapted_name


def _lanes(camera_id: str, cameras_file: str | None) -> list:
    if not cameras_file:
        return []
    from vigil.cameras import load_cameras

    for camera in load_cameras(Path(cameras_file)).cameras:
        if camera.id == camera_id:
            return camera.traffic.lanes if camera.traffic else []
    raise repo.RepositoryError(f"camera {camera_id!r} is not in {cameras_file}")


def cmd_adapt(args) -> int:
    from app.adapt.finetune import FinetuneConfig  # torch: imported when the command runs, not for `vigil --help`
    from app.adapt.run import AdaptRequest, adapt, reviewed_frames, store_frames, video_frames
    from app.review import ReviewError, ReviewSettings, parse_time

    settings = ReviewSettings()
    repository = settings.model_repository
    try:
        lanes = _lanes(args.camera, args.cameras)
        if args.lanes_of:  # set-up: the sample car camera's lanes, from the scenarios
            from app import scenarios

            lanes = getattr(scenarios, args.lanes_of).lanes
        request = AdaptRequest(args.camera, base=args.base, name=args.name or args.camera, holdout=args.holdout,
                               lanes=lanes, fps=args.fps,
                               finetune=FinetuneConfig(epochs=args.epochs, max_minutes=args.max_minutes))
        if args.video:
            frames = video_frames(Path(args.video), args.fps, args.start_s, args.end_s)
            reviewed = {}
        else:
            if not (args.since and args.until):
                raise repo.RepositoryError("give --since and --until (frames from the store), or --video FILE")
            since_ms, until_ms = parse_time(args.since), parse_time(args.until)
            if until_ms <= since_ms:
                raise repo.RepositoryError("--until must be after --since")
            frames = store_frames(settings, args.camera, since_ms, until_ms)
            reviewed = reviewed_frames(settings, settings.labels_root, args.camera, since_ms, until_ms)
        period = ({"video": str(Path(args.video).resolve()), "start_s": args.start_s, "end_s": args.end_s, "fps": args.fps}
                  if args.video else {"since": args.since, "until": args.until})
        replay = ()
        if args.replay:
            replay = video_frames(Path(args.replay), args.replay_fps, args.replay_start_s, args.replay_end_s)
            period["replay"] = {"video": str(Path(args.replay).resolve()), "start_s": args.replay_start_s,
                                "end_s": args.replay_end_s, "fps": args.replay_fps}
        report = adapt(request, frames, repository, reviewed, period=period, replay=replay)
    except (repo.RepositoryError, ReviewError) as exc:  # e.g. an unknown camera, a bad --since
        print(f"detector-adapt: {exc}", file=sys.stderr)
        return 2
    if args.report:
        Path(args.report).write_text(json.dumps(report, indent=1))
    if report["published"] is None:
        print(f"detector-adapt: {report['reason']}", file=sys.stderr)
        return 3
    model, version = report["published"]["model"], report["published"]["version"]
    print(f"published {model} version {version} ({report['seconds']} s); validation "
          f"{report['validation']['before']} → {report['validation']['after']}")
    if not args.no_reload:
        problem = repo.reload(settings.triton_url, model)
        print(f"Triton serves {model} version {version} now" if problem is None
              else f"not switched live ({problem}); Triton loads it at its next start")
    return 0


def cmd_rollback(args) -> int:
    from vigil.config import Settings

    settings = Settings()
    model = args.model or adapted_name(args.base, args.camera)
    try:
        found = repo.versions(settings.model_repository, model)
        if not found:
            raise repo.RepositoryError(f"no adapted model {model!r} in {settings.model_repository}")
        current = repo.served_version(settings.model_repository, model)
        target = None if args.latest else (args.to or max((v for v in found if v < current), default=None))
        if not args.latest and target is None:
            raise repo.RepositoryError(f"{model} serves version {current}, its oldest; nothing to roll back to")
        repo.set_policy(settings.model_repository, model, target)
    except repo.RepositoryError as exc:
        print(f"detector-rollback: {exc}", file=sys.stderr)
        return 2
    served = repo.served_version(settings.model_repository, model)
    print(f"{model}: serving version {served} (versions on disk: {found})")
    if not args.no_reload:
        problem = repo.reload(settings.triton_url, model)
        print("Triton switched" if problem is None else f"not switched live ({problem})")
    return 0


def cmd_versions(args) -> int:
    from vigil.config import Settings

    settings = Settings()
    models = ([adapted_name(args.base, args.camera)] if args.camera
              else repo.adapted_models(settings.model_repository, [args.base]))
    for model in models:
        served = repo.served_version(settings.model_repository, model)
        for version in repo.versions(settings.model_repository, model):
            meta = repo.metadata(settings.model_repository, model, version)
            validation = meta.get("validation", {})
            print(f"{model} v{version}{' (served)' if version == served else ''}: created {meta.get('created')}, "
                  f"F1 {validation.get('before', {}).get('f1')} → {validation.get('after', {}).get('f1')}, "
                  f"{meta.get('train_frames')} training frames")
    return 0


def add_commands(sub: argparse._SubParsersAction) -> None:
    adapt_parser = sub.add_parser("detector-adapt", help="fine-tune the detector on a camera's own frames (pseudo-labels, "
                                  "reviewed labels first) and switch the running Triton to the new version")
    adapt_parser.add_argument("--camera", required=True)
    adapt_parser.add_argument("--since", help="ISO time: first frame (frames from the frame store)")
    adapt_parser.add_argument("--until", help="ISO time: end of the period (exclusive)")
    adapt_parser.add_argument("--video", help="adapt from a video file instead of the frame store")
    adapt_parser.add_argument("--start-s", type=float, default=0.0, help="with --video: first second used")
    adapt_parser.add_argument("--end-s", type=float, help="with --video: second where the period ends")
    adapt_parser.add_argument("--fps", type=float, default=5.0, help="with --video: frames per second taken")
    adapt_parser.add_argument("--replay", help="video whose frames, labelled by the starting model, are mixed into "
                              "training so classes this camera's frames lack are not forgotten (e.g. footage with people)")
    adapt_parser.add_argument("--replay-start-s", type=float, default=0.0)
    adapt_parser.add_argument("--replay-end-s", type=float)
    adapt_parser.add_argument("--replay-fps", type=float, default=1.0)
    adapt_parser.add_argument("--cameras", help="camera file: the camera's traffic lanes guide the pseudo-labels")
    adapt_parser.add_argument("--lanes-of", help=argparse.SUPPRESS)
    adapt_parser.add_argument("--base", default="yolox_nano", help="model to start from (default yolox_nano)")
    adapt_parser.add_argument("--name", help="adapted model is <base>__<name>; default: the camera id")
    adapt_parser.add_argument("--holdout", type=float, default=0.2, help="share of the period kept for validation")
    adapt_parser.add_argument("--epochs", type=int, default=6)
    adapt_parser.add_argument("--max-minutes", type=float, help="time limit of the fine-tune (default none: the same "
                              "frames give the same model however loaded the machine is)")
    adapt_parser.add_argument("--report", help="write the adaptation report (JSON) here")
    adapt_parser.add_argument("--no-reload", action="store_true", help="do not tell a running Triton")
    adapt_parser.set_defaults(func=cmd_adapt)
    rollback = sub.add_parser("detector-rollback", help="serve an earlier version of a camera's adapted detector")
    rollback.add_argument("--camera", help="camera id (model <base>__<camera>)")
    rollback.add_argument("--model", help="the adapted model's full name instead of --camera")
    rollback.add_argument("--base", default="yolox_nano")
    rollback.add_argument("--to", type=int, help="version to serve (default: the one before the served one)")
    rollback.add_argument("--latest", action="store_true", help="serve the newest version again")
    rollback.add_argument("--no-reload", action="store_true")
    rollback.set_defaults(func=cmd_rollback)
    listing = sub.add_parser("detector-versions", help="list adapted detectors, their versions and validation")
    listing.add_argument("--camera")
    listing.add_argument("--base", default="yolox_nano")
    listing.set_defaults(func=cmd_versions)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m app.adapt.cli")
    sub = parser.add_subparsers(dest="command", required=True)
    add_commands(sub)
    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
