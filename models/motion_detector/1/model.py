"""Motion-gated person/car detector for fixed cameras (no learned weights).

Per camera: photometric normalisation against a reference background (handles auto-exposure),
OpenCV MOG2 background subtraction with *selective* update (foreground is not learned, so people
standing still stay detected), morphology, connected components -> boxes, classification of each
blob by convex-hull solidity + rotated-rectangle fill (cars are convex and box-like, people are not), smoothed over time by a tiny IoU
tracker. Output classes are COCO ids: 0 person, 2 car.
"""
import json

import cv2
import numpy as np

try:
    import triton_python_backend_utils as pb_utils
except ImportError:  # allows offline use / tests
    pb_utils = None

PERSON, CAR = 0, 2


def _iou(a, b):
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    u = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / u if u > 0 else 0.0


class _Camera:
    def __init__(self, p):
        self.mog = cv2.createBackgroundSubtractorMOG2(
            history=p["history"], varThreshold=p["var_threshold"], detectShadows=True)
        # grey-scale shadow test is only "darker by ratio in [tau,1]": keep tau high so grey clothes
        # in front of a white wall are not discarded as shadow
        self.mog.setShadowThreshold(p["shadow_tau"])
        self.ref = None      # float32 reference background (normalisation target)
        self.age = None      # per-pixel consecutive-foreground counter
        self.n = 0
        self.tracks = []     # dicts: box, ev (person evidence), miss
        self.shape = None


class MotionDetector:
    DEFAULTS = dict(
        work_width=384,        # processing width (frames are downscaled, boxes scaled back)
        history=500,           # MOG2 history (learning rate 1/history after warm-up)
        var_threshold=16.0,    # MOG2 Mahalanobis^2 threshold
        shadow_tau=0.7,        # MOG2 shadow ratio threshold
        warmup_frames=40,      # frames learned non-selectively with fast rate, no output
        max_fg_age=600,        # frames a pixel may stay foreground before it is learned anyway
        min_area_frac=0.004,   # min blob area as fraction of the frame
        open_k=3, close_k=9, dilate_k=5,  # morphology kernels at work resolution
        shape_threshold=1.63,  # solidity + minAreaRect fill below this -> person evidence
        edge_weight=0.3,       # blobs cut by the frame border give weaker class evidence
        max_det=32,
    )

    def __init__(self, **params):
        self.p = dict(self.DEFAULTS)
        self.p.update(params)
        self.cams = {}
        k = lambda n: cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (n, n)) if n else None
        self.k_open, self.k_close, self.k_dil = k(self.p["open_k"]), k(self.p["close_k"]), k(self.p["dilate_k"])
        self._grid = {}

    # ---- photometric normalisation -------------------------------------------------------
    def _normalise(self, gray, ref, step=3):
        """Fit ref ~ (g-mu)*(a0+a1*x+a2*y) + (b0+b1*x+b2*y) robustly (moving objects are outliers),
        ridge-regularised toward a pure gain; return the frame mapped into the reference exposure
        and the inlier fraction."""
        h, w = gray.shape
        if (h, w) not in self._grid:
            yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
            self._grid[(h, w)] = ((xx / w - 0.5) * 2, (yy / h - 0.5) * 2)
        X, Y = self._grid[(h, w)]
        gf = gray.astype(np.float32)
        g = gf[::step, ::step].ravel()
        r = ref[::step, ::step].ravel()
        x = X[::step, ::step].ravel()
        y = Y[::step, ::step].ravel()
        mu = float(np.median(g))
        gain = float(np.median((r + 1) / (g + 1)))
        gc = g - mu
        prior = np.array([gain, 0, 0, gain * mu, 0, 0], np.float64)
        A = np.stack([gc, gc * x, gc * y, np.ones_like(g), x, y], 1).astype(np.float64)
        lam = np.diag([25.0, 25.0, 25.0, 1e-3, 1.0, 1.0]) * g.size
        coef = prior
        keep = np.ones(g.size, bool)
        for _ in range(3):
            res = np.abs(r - A @ coef)
            mad = max(float(np.median(res)), 1.0)
            keep = res < 3.0 * 1.4826 * mad
            Ak = A[keep]
            coef = np.linalg.solve(Ak.T @ Ak + lam, Ak.T @ r[keep] + lam @ prior)
        a0, a1, a2, b0, b1, b2 = coef
        out = (gf - mu) * (a0 + a1 * X + a2 * Y) + (b0 + b1 * X + b2 * Y)
        return np.clip(out, 0, 255).astype(np.uint8), float(keep.mean())

    # ---- one frame -----------------------------------------------------------------------
    def process(self, cam_id, frame_rgb, min_score=None):
        """frame_rgb: HxWx3 uint8. Returns (boxes[N,4] float32 xyxy, scores[N], classes[N]). `min_score` (a tracker
        asking a neural detector for weaker boxes) does not apply: these scores are shape confidences."""
        p = self.p
        H, W = frame_rgb.shape[:2]
        c = self.cams.get(cam_id)
        if c is None or c.shape != (H, W):           # new camera or resolution change -> reset
            c = self.cams[cam_id] = _Camera(p)
            c.shape = (H, W)
        s = p["work_width"] / float(W)
        ws, hs = p["work_width"], max(1, int(round(H * s)))
        small = cv2.resize(frame_rgb, (ws, hs), interpolation=cv2.INTER_AREA)
        gray = cv2.GaussianBlur(cv2.cvtColor(small, cv2.COLOR_RGB2GRAY), (5, 5), 0)
        c.n += 1
        if c.ref is None:
            c.ref = gray.astype(np.float32)
            c.age = np.zeros(gray.shape, np.uint16)
            c.mog.apply(gray, learningRate=1.0)
            return self._empty()
        gray, inliers = self._normalise(gray, c.ref)

        fg = c.mog.apply(gray, learningRate=0)       # classify only, update below
        m = np.where(fg > 200, 255, 0).astype(np.uint8)   # 127 = shadow -> background
        m = cv2.morphologyEx(m, cv2.MORPH_OPEN, self.k_open)
        m0 = cv2.morphologyEx(m, cv2.MORPH_CLOSE, self.k_close)
        m = cv2.dilate(m0, self.k_dil)

        # selective update: foreground pixels are not learned unless foreground for > max_fg_age
        fgm = m > 0
        c.age = np.where(fgm, np.minimum(c.age + 1, 60000), 0).astype(np.uint16)
        warm = c.n <= p["warmup_frames"]
        learn = np.ones_like(fgm) if warm else (~fgm | (c.age > p["max_fg_age"]))
        upd = gray if warm else np.where(learn, gray, c.mog.getBackgroundImage())
        c.mog.apply(upd, learningRate=1.0 / min(c.n, p["history"]))
        if inliers > 0.5:
            cv2.accumulateWeighted(gray, c.ref, max(0.02, 1.0 / c.n), mask=learn.astype(np.uint8))
        if warm:
            return self._empty()

        # blobs
        n, lab, st, _ = cv2.connectedComponentsWithStats(m, connectivity=8)
        min_area = p["min_area_frac"] * ws * hs
        dets = []
        for i in range(1, n):
            x, y, w, h, a = (int(v) for v in st[i])
            if a < min_area:
                continue
            roi = ((lab[y:y + h, x:x + w] == i) & (m0[y:y + h, x:x + w] > 0)).astype(np.uint8)
            cs, _ = cv2.findContours(roi, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
            if not cs:
                continue
            cnt = max(cs, key=cv2.contourArea)
            ca = cv2.contourArea(cnt)
            sol = ca / max(cv2.contourArea(cv2.convexHull(cnt)), 1.0)
            (_, (rw, rh), _) = cv2.minAreaRect(cnt)
            rect = ca / max(rw * rh, 1.0)
            at_edge = x <= 1 or y <= 1 or x + w >= ws - 1 or y + h >= hs - 1
            # person evidence in [-1, 1]: cars are convex and box-like, people are not
            ev = float(np.clip((p["shape_threshold"] - sol - rect) / 0.06, -1.0, 1.0))
            ev *= p["edge_weight"] if at_edge else 1.0
            box = (x / s, y / s, min(W, (x + w) / s), min(H, (y + h) / s))
            dets.append((box, ev))
        dets.sort(key=lambda d: -(d[0][2] - d[0][0]) * (d[0][3] - d[0][1]))
        dets = dets[: p["max_det"]]

        # tiny greedy IoU tracker: accumulate class evidence so labels do not flicker
        new_tracks, used = [], set()
        for box, ev in dets:
            best, bi = 0.3, -1
            for j, t in enumerate(c.tracks):
                if j not in used:
                    v = _iou(box, t["box"])
                    if v > best:
                        best, bi = v, j
            acc = ev
            if bi >= 0:
                used.add(bi)
                acc = float(np.clip(c.tracks[bi]["ev"] + ev, -10, 10))
            new_tracks.append({"box": box, "ev": acc, "miss": 0})
        for j, t in enumerate(c.tracks):           # keep unmatched tracks a few frames
            if j not in used and t["miss"] < 5:
                t["miss"] += 1
                new_tracks.append(t)
        c.tracks = new_tracks
        k = len(dets)
        boxes = np.array([t["box"] for t in new_tracks[:k]], np.float32).reshape(k, 4)
        evs = np.array([t["ev"] for t in new_tracks[:k]], np.float32)
        classes = np.where(evs > 0, PERSON, CAR).astype(np.int32)
        scores = (0.5 + 0.5 * np.tanh(np.abs(evs) / 3.0)).astype(np.float32)   # class confidence
        return boxes, scores, classes

    @staticmethod
    def _empty():
        return np.zeros((0, 4), np.float32), np.zeros((0,), np.float32), np.zeros((0,), np.int32)


class TritonPythonModel:
    def initialize(self, args):
        cfg = json.loads(args["model_config"])
        params = {}
        for key, v in cfg.get("parameters", {}).items():
            if key in MotionDetector.DEFAULTS:
                params[key] = type(MotionDetector.DEFAULTS[key])(v["string_value"])
        cv2.setNumThreads(1)
        self.det = MotionDetector(**params)

    def execute(self, requests):
        responses = []
        for req in requests:
            try:
                frames = pb_utils.get_input_tensor_by_name(req, "FRAMES").as_numpy()      # [B,H,W,3]
                cams = pb_utils.get_input_tensor_by_name(req, "CAMERA_ID").as_numpy()     # [B,1] bytes
                res = []
                for b in range(frames.shape[0]):
                    cid = cams[b, 0]
                    cid = cid.decode() if isinstance(cid, bytes) else str(cid)
                    res.append(self.det.process(cid, frames[b]))
                B, N = len(res), max([len(r[0]) for r in res] + [1])
                boxes = np.zeros((B, N, 4), np.float32)
                scores = np.zeros((B, N), np.float32)
                classes = np.full((B, N), -1, np.int32)
                count = np.zeros((B, 1), np.int32)
                for b, (bx, sc, cl) in enumerate(res):
                    k = len(bx)
                    boxes[b, :k], scores[b, :k], classes[b, :k], count[b, 0] = bx, sc, cl, k
                out = [pb_utils.Tensor("BOXES", boxes), pb_utils.Tensor("SCORES", scores),
                       pb_utils.Tensor("CLASSES", classes), pb_utils.Tensor("COUNT", count)]
                responses.append(pb_utils.InferenceResponse(output_tensors=out))
            except Exception as e:  # noqa: BLE001
                responses.append(pb_utils.InferenceResponse(
                    output_tensors=[], error=pb_utils.TritonError(f"motion_detector: {e}")))
        return responses
