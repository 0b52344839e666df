"""The drift judgement on its own: PSI, baselines that survive a restart, and the episode logic (one event per drift,
none while stable, again only after recovering)."""

from __future__ import annotations

import numpy as np

from vigil.drift import Baseline, CameraDrift, DriftSettings, histogram, psi

SETTINGS = DriftSettings(baseline_s=30, window_s=20, check_every_s=5, threshold=0.25, consecutive=2, min_values=10)


def frame(rng, brightness=1.0, blur=1.0):
    n = int(rng.integers(1, 4))
    x = rng.uniform(0, 600, n)
    y = rng.uniform(0, 300, n)
    boxes = np.stack([x, y, x + 60, y + 40], 1)
    return dict(sharpness=float(rng.normal(400, 30) * blur), contrast=float(rng.normal(50, 3) * brightness),
                scores=rng.uniform(0.5, 0.95, n).tolist(), boxes=boxes, classes=[2] * n, width=768, height=432)


def run(camera: CameraDrift, rng, seconds: float, start_ms: int, fps: float = 2.0, **change):
    verdicts = []
    for i in range(int(seconds * fps)):
        _, verdict = camera.observe(start_ms + int(i * 1000 / fps), **frame(rng, **change))
        if verdict:
            verdicts.append(verdict)
    return verdicts


def test_psi_is_zero_for_the_same_shares_and_large_for_a_shift():
    edges = list(np.quantile(np.arange(100.0), np.linspace(0.1, 0.9, 9)))
    base = histogram(np.arange(100.0), edges)
    assert psi(base, base * 3) == 0.0
    assert psi(base, histogram(np.arange(100.0) + 5, edges)) < 0.1
    assert psi(base, histogram(np.arange(100.0) * 0.5, edges)) > 0.25


def test_a_stable_camera_never_drifts_and_a_darkened_one_drifts_once(tmp_path):
    rng = np.random.default_rng(3)
    steady = CameraDrift("a", SETTINGS)
    verdicts = run(steady, rng, 300, 0)
    assert steady.baseline is not None and len(verdicts) > 40
    assert not any(v.raised or v.drifted for v in verdicts), [v.scores for v in verdicts if v.drifted][:3]

    dark = CameraDrift("b", SETTINGS)
    before = run(dark, rng, 120, 0)
    after = run(dark, rng, 120, 120_000, brightness=0.5, blur=0.4)
    assert not any(v.raised for v in before)
    raised = [v for v in after if v.raised]
    assert len(raised) == 1 and {"contrast", "sharpness"} <= set(raised[0].drifted)
    assert raised[0].ts_ms - 120_000 <= 20_000  # within a window (20 s) of the change

    back = run(dark, rng, 120, 240_000)  # recovered: the episode ends; a new darkening is a new episode
    assert not any(v.raised for v in back) and not back[-1].drifted
    again = run(dark, rng, 60, 360_000, brightness=0.5, blur=0.4)
    assert sum(v.raised for v in again) == 1


def test_the_baseline_is_saved_and_loaded_as_it_was(tmp_path):
    rng = np.random.default_rng(5)
    camera = CameraDrift("c", SETTINGS)
    run(camera, rng, 40, 0)
    camera.baseline.save(tmp_path / "c.json")
    loaded = Baseline.load(tmp_path / "c.json")
    assert loaded == camera.baseline
    restarted = CameraDrift("c", SETTINGS, loaded)  # judges from its first window, no new reference period
    verdicts = run(restarted, rng, 30, 100_000, brightness=0.5, blur=0.4)
    assert verdicts and verdicts[-1].drifted


def test_the_remedy_the_service_logs_is_a_review_export_command_the_cli_accepts():
    """The drift warning names the labelling loop's command with the drifted window filled in, and it parses."""
    import shlex

    from app.cli import build_parser
    from services.drift.service import remedy_command

    command = remedy_command("car park", 1_796_041_200_000, 1_796_041_260_000)
    args = build_parser().parse_args(shlex.split(command)[1:])
    assert args.camera == "car park" and args.func.__name__ == "cmd_review_export"
    assert (args.since, args.until) == ("2026-11-30T12:20:00Z", "2026-11-30T12:21:01Z")
    assert args.out.startswith("review-car park-")
