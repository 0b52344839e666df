"""Console sessions: signed, expiring cookies, and a sign-in throttle.

A session cookie is `<payload>.<signature>`: the payload (base64url JSON) names the user, a random session id and
the expiry; the signature is HMAC-SHA256 of the payload under the console's secret key (`VIGIL_CONSOLE_SECRET_KEY`).
The role is *not* in the cookie: every request reads it from the users file, so a demoted or removed user loses the
rights at once. Signing out revokes the session id (kept in memory until the session would have expired). The CSRF
token of a session is another HMAC of its id; every state-changing request must send it in `X-CSRF-Token`.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import threading
import time
from collections import defaultdict, deque
from dataclasses import dataclass

COOKIE = "vigil_session"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@dataclass(frozen=True)
class Session:
    user: str
    sid: str
    expires_ms: int


class SessionSigner:
    def __init__(self, key: bytes, ttl_s: float):
        if len(key) < 16:
            raise ValueError("the console's secret key needs at least 16 characters")
        self._key = key
        self.ttl_s = ttl_s
        self._revoked: dict[str, int] = {}
        self._lock = threading.Lock()

    def _sign(self, payload: str) -> str:
        return _b64(hmac.new(self._key, payload.encode(), hashlib.sha256).digest())

    def issue(self, user: str, now_ms: int | None = None) -> tuple[str, Session]:
        now_ms = time.time_ns() // 1_000_000 if now_ms is None else now_ms
        session = Session(user, secrets.token_urlsafe(18), now_ms + int(self.ttl_s * 1000))
        payload = _b64(json.dumps({"u": user, "s": session.sid, "e": session.expires_ms}, separators=(",", ":")).encode())
        return f"{payload}.{self._sign(payload)}", session

    def read(self, cookie: str | None, now_ms: int | None = None) -> Session | None:
        """The session of a cookie: None when it is missing, forged, expired or signed out."""
        if not cookie or cookie.count(".") != 1:
            return None
        payload, signature = cookie.split(".")
        if not hmac.compare_digest(signature, self._sign(payload)):
            return None
        try:
            fields = json.loads(_unb64(payload))
            session = Session(str(fields["u"]), str(fields["s"]), int(fields["e"]))
        except (ValueError, KeyError, TypeError):
            return None
        now_ms = time.time_ns() // 1_000_000 if now_ms is None else now_ms
        if session.expires_ms <= now_ms:
            return None
        with self._lock:
            if session.sid in self._revoked:
                return None
        return session

    def revoke(self, session: Session) -> None:
        now_ms = time.time_ns() // 1_000_000
        with self._lock:
            self._revoked = {sid: exp for sid, exp in self._revoked.items() if exp > now_ms}
            self._revoked[session.sid] = session.expires_ms

    def csrf(self, session: Session) -> str:
        return _b64(hmac.new(self._key, b"csrf:" + session.sid.encode(), hashlib.sha256).digest())[:32]

    def csrf_ok(self, session: Session, token: str | None) -> bool:
        return bool(token) and hmac.compare_digest(token, self.csrf(session))


class LoginThrottle:
    """Refuses sign-ins of a name that failed `max_failures` times within `lockout_s` (per name, so a guesser cannot
    try many passwords of one user; argon2's cost bounds the rate further)."""

    def __init__(self, max_failures: int, lockout_s: float):
        self.max_failures, self.lockout_s = max_failures, lockout_s
        self._failures: dict[str, deque] = defaultdict(deque)
        self._lock = threading.Lock()

    def _recent(self, name: str, now: float) -> deque:
        failures = self._failures[name]
        while failures and failures[0] < now - self.lockout_s:
            failures.popleft()
        return failures

    def locked(self, name: str) -> float:
        """Seconds until `name` may try again (0: now)."""
        now = time.monotonic()
        with self._lock:
            failures = self._recent(name, now)
            if len(failures) < self.max_failures:
                return 0.0
            return max(0.0, failures[0] + self.lockout_s - now)

    def failed(self, name: str) -> None:
        with self._lock:
            self._recent(name, time.monotonic()).append(time.monotonic())

    def succeeded(self, name: str) -> None:
        with self._lock:
            self._failures.pop(name, None)
