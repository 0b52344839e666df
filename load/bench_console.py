"""The operator console under load: N cameras streaming at F fps and B browsers watching every tile.

On a private embedded broker and store (no Triton), `app/console_feed.py` streams N synthetic cameras (frames of the
sample car footage, © Intel Corporation, CC BY 4.0, with the motion detector's tracked boxes: each frame's JPEG in
the frame store, a FrameRef and a DetectionBatch on Kafka, capture time = now) as a child process; the console runs as
deployed (`python -m services.console`, a child process); B headless Debian chromium contexts (Playwright) sign in
and show all N tiles at once (4 columns on a 1920x1200 window).

Measured over the window after a warm-up:

- frames in (DetectionBatches the console consumed) and frames pushed (sent over the WebSockets) per second, frames
  dropped (superseded in a browser's slot before it could be sent), and frames drawn per second in the browsers;
- capture → tile delay: each page reports [capture_ts, pushed, drawn] for every frame it drew (about once a second),
  so the delay is the frame's capture time to the moment the page drew it on its canvas (same machine, same clock);
  push → tile is the part after the console sent it;
- CPU (% of one core) and RSS of the console process (psutil, sampled every second), the CPU of the browsers and
  of the feeder, and the whole machine's CPU.

`--clients websocket` replaces the browsers by as many plain WebSocket clients (Python, `websockets`) that sign in,
receive every frame, acknowledge it and report it "drawn" on arrival: the console's own fan-out capacity, without browsers competing
for the same cores.

    .venv/bin/python load/bench_console.py --cameras 16 --browsers 5 --seconds 60 --out load/results/console.json
    .venv/bin/python load/bench_console.py --cameras 16 --browsers 5 --clients websocket --out load/results/console-ws.json
"""

from __future__ import annotations

import argparse
import http.cookiejar
import json
import secrets
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import psutil

from app.console_feed import console_env, launch_chromium, start_console
from app.stack import manager
from app.stack.process import free_port
from load._harness import env_for, machine, private_settings
from load._results import save
from services.console.users import UserStore
from vigil.config import REPO_ROOT
from vigil.kafka_io import ensure_topics

ADMIN, ADMIN_PW = "bench-admin", secrets.token_urlsafe(12)
VIEWER, VIEWER_PW = "bench-viewer", secrets.token_urlsafe(12)


class Api:
    """The console's API as an admin (cookie session)."""

    def __init__(self, url: str):
        self.url = url
        self.opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()))
        self.request("/api/auth/login", {"username": ADMIN, "password": ADMIN_PW})

    def request(self, path: str, body: dict | None = None) -> dict:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(self.url + path, data=data, headers={"Content-Type": "application/json"})
        with self.opener.open(request, timeout=10) as response:
            return json.load(response)


class SocketClients:
    """`n` signed-in WebSocket clients on one asyncio loop in a thread: every frame is parsed and acknowledged as
    drawn when it arrives, as the page does after drawing it."""

    def __init__(self, url: str, n: int):
        import threading

        self.url, self.n = url, n
        self.counts = [dict() for _ in range(n)]
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _cookie(self) -> str:
        jar = http.cookiejar.CookieJar()
        opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
        opener.open(urllib.request.Request(self.url + "/api/auth/login", json.dumps(
            {"username": VIEWER, "password": VIEWER_PW}).encode(), {"Content-Type": "application/json"}), timeout=10)
        return "; ".join(f"{c.name}={c.value}" for c in jar)

    def _run(self) -> None:
        import asyncio

        asyncio.run(self._main())

    async def _main(self) -> None:
        import asyncio

        await asyncio.gather(*(self._client(i) for i in range(self.n)))

    async def _client(self, index: int) -> None:
        import asyncio
        import struct

        import websockets

        cookie = await asyncio.to_thread(self._cookie)
        uri = self.url.replace("http://", "ws://") + "/api/live/ws"
        async with websockets.connect(uri, additional_headers={"Cookie": cookie}, max_size=1 << 22) as ws:
            samples, last_sent = [], time.monotonic()
            while not self.stop.is_set():
                try:
                    message = await asyncio.wait_for(ws.recv(), timeout=1.0)
                except asyncio.TimeoutError:
                    continue
                if isinstance(message, bytes):
                    (length,) = struct.unpack(">I", message[:4])
                    header = json.loads(message[4:4 + length])
                    counts = self.counts[index]
                    counts[header["camera_id"]] = counts.get(header["camera_id"], 0) + 1
                    samples.append([header["capture_ts_ms"], header["pushed_ms"], time.time_ns() // 1_000_000])
                    await ws.send('{"t":"ack","n":1}')
                if time.monotonic() - last_sent >= 1.0 and samples:
                    await ws.send(json.dumps({"t": "drawn", "samples": samples}))
                    samples, last_sent = [], time.monotonic()


_SEEN: dict[int, psutil.Process] = {}


def tree_cpu(processes: list[psutil.Process]) -> float:
    """CPU % (of one core) since the last call, summed over the processes and their children (each process object
    kept between calls: psutil measures from its previous call on the same object)."""
    total = 0.0
    for process in processes:
        try:
            members = [process, *process.children(recursive=True)]
        except psutil.Error:
            continue
        for member in members:
            member = _SEEN.setdefault(member.pid, member)
            try:
                total += member.cpu_percent(None)
            except psutil.Error:
                continue
    return total


def page_counts(page) -> dict:
    return page.evaluate("Object.fromEntries([...window.vigil.state.tiles.values()].map(t => [t.camera.camera_id, t.frames]))")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cameras", type=int, default=16)
    parser.add_argument("--fps", type=float, default=5.0)
    parser.add_argument("--browsers", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=60.0, help="measured window")
    parser.add_argument("--warmup", type=float, default=15.0)
    parser.add_argument("--clients", choices=["browser", "websocket"], default="browser",
                        help="headless chromium pages, or plain WebSocket clients (the console's own capacity)")
    parser.add_argument("--screenshot", type=Path, help="save the first browser's page (all tiles) here")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)

    from playwright.sync_api import sync_playwright

    settings = private_settings()
    work = settings.data_dir
    print(f"private stack in {work}", flush=True)
    manager.up(settings, only=["broker", "clickhouse"], log=lambda *_: None)
    ensure_topics(settings)
    users = UserStore(work / "users.json")
    users.add(ADMIN, "admin", ADMIN_PW)
    users.add(VIEWER, "viewer", VIEWER_PW)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    procs: dict[str, subprocess.Popen] = {}
    try:
        procs["console"] = start_console(console_env(settings, port, work / "users.json", secrets.token_urlsafe(32)),
                                         work / "console.log")
        total_s = args.warmup + args.seconds + 30
        procs["feed"] = subprocess.Popen(
            [sys.executable, "-m", "app.console_feed", "--cameras", str(args.cameras), "--fps", str(args.fps),
             "--seconds", str(total_s), "--prefix", "cam-"], env=env_for(settings, frame_store=settings.frame_store_uri),
            cwd=REPO_ROOT, stdout=open(work / "feed.log", "ab"), stderr=subprocess.STDOUT)
        api = Api(url)
        console = psutil.Process(procs["console"].pid)
        with sync_playwright() as playwright:
            chromium, pages, sockets = None, [], None
            if args.clients == "browser":
                chromium = launch_chromium(playwright)
                for _ in range(args.browsers):
                    context = chromium.new_context(viewport={"width": 1920, "height": 1200}, bypass_csp=True)
                    page = context.new_page()
                    page.add_init_script("localStorage.setItem('vigil.columns', '4')")
                    page.goto(url + "/login")
                    page.fill("#username", VIEWER)
                    page.fill("#password", VIEWER_PW)
                    page.click("#signin")
                    page.wait_for_selector("#who .role")
                    pages.append(page)

                def counts():
                    return [page_counts(page) for page in pages]
            else:
                sockets = SocketClients(url, args.browsers)

                def counts():
                    return [dict(c) for c in sockets.counts]
            deadline = time.monotonic() + 90
            while time.monotonic() < deadline:  # every client shows every camera's frames
                seen = counts()
                if all(len(c) >= args.cameras and all(v > 0 for v in c.values()) for c in seen):
                    break
                time.sleep(1)
            else:
                raise TimeoutError(f"not every client got frames of every camera: {[len(c) for c in seen]}")
            print(f"{args.browsers} {args.clients} clients show {args.cameras} cameras; warming up {args.warmup:.0f} s",
                  flush=True)
            time.sleep(args.warmup)

            # Playwright's driver (node) and the chromium processes it started are this process's children
            own = {procs["console"].pid, procs["feed"].pid}
            browsers = [p for p in psutil.Process().children(recursive=False) if p.pid not in own] \
                if chromium is not None else []
            feeder = [psutil.Process(procs["feed"].pid)]
            console.cpu_percent(None)
            psutil.cpu_percent(None)
            tree_cpu(browsers), tree_cpu(feeder)
            before, drawn_before = api.request("/api/live/stats"), [sum(c.values()) for c in counts()]
            begin = time.monotonic()
            cpu, rss, machine_cpu, browser_cpu, feeder_cpu = [], [], [], [], []
            while time.monotonic() - begin < args.seconds:
                time.sleep(1.0)
                cpu.append(console.cpu_percent(None))
                rss.append(console.memory_info().rss / 2**20)
                machine_cpu.append(psutil.cpu_percent(None))
                browser_cpu.append(tree_cpu(browsers))
                feeder_cpu.append(tree_cpu(feeder))
            elapsed = time.monotonic() - begin
            after = api.request(f"/api/live/stats?window_s={args.seconds:.0f}")
            if args.screenshot and pages:
                pages[0].screenshot(path=str(args.screenshot))
            drawn_after = [sum(c.values()) for c in counts()]
            if sockets is not None:
                sockets.stop.set()
                sockets.thread.join(10)
            if chromium is not None:
                chromium.close()
    finally:
        for proc in procs.values():
            if proc.poll() is None:
                proc.terminate()
        for proc in procs.values():
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()
        manager.down(settings)

    def rate(key):
        return round((after[key] - before[key]) / elapsed, 1)

    drawn = [round((a - b) / elapsed, 1) for a, b in zip(drawn_after, drawn_before)]
    offered = args.cameras * args.fps
    result = {
        "cameras": args.cameras, "fps": args.fps, "clients": args.clients, "browsers": args.browsers,
        "measured_s": round(elapsed, 1),
        "offered_frames_per_s": offered,
        "frames_in_per_s": rate("frames_in"),
        "frames_pushed_per_s": rate("frames_pushed"),
        "frames_pushed_per_s_per_browser": round(rate("frames_pushed") / args.browsers, 1),
        "frames_dropped": after["frames_dropped"] - before["frames_dropped"],
        "frames_drawn_per_s_per_browser": drawn,
        "capture_to_tile_ms": after["capture_to_tile_ms"], "push_to_tile_ms": after["push_to_tile_ms"],
        "console_cpu_percent_of_one_core": {"mean": round(sum(cpu) / len(cpu), 1), "max": round(max(cpu), 1)},
        "console_rss_mb": {"mean": round(sum(rss) / len(rss), 1), "max": round(max(rss), 1)},
        "machine_cpu_percent": {"mean": round(sum(machine_cpu) / len(machine_cpu), 1)},
        "browsers_cpu_percent_of_one_core": {"mean": round(sum(browser_cpu) / len(browser_cpu), 1)} if browsers else None,
        "feeder_cpu_percent_of_one_core": {"mean": round(sum(feeder_cpu) / len(feeder_cpu), 1)},
        "machine": {**machine(), "load_average_1m_at_end": round(__import__("os").getloadavg()[0], 2)},
        "note": "broker, store, feeder, console and the browsers share the machine",
    }
    if args.out:
        save(args.out, result)
    else:
        print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
