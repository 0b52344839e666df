"""Who may call Vigil's HTTP services: the roles, bearer API tokens for machine clients, and the one check every
service runs (the console, the re-ID API, the DATEX II feed). People sign in to the console (its sessions and users
live in services/console); programs send `Authorization: Bearer <token>`.

Roles, each including the ones before it:

| role | may |
| --- | --- |
| viewer | read: the console's tiles and incident queue, the DATEX II feed |
| analyst | also search and follow tracks across cameras (the re-ID API) and query the store read-only (`vigil sql`) |
| operator | also acknowledge, confirm and reject incidents |
| admin | also manage console users and read the console's live statistics |

A token may be scoped to cameras: it then sees only their incidents, clips, tracks, frames and DATEX II files
(anything else answers 404, as if it did not exist). Tokens are 256-bit random strings; only their SHA-256 hashes are
stored (a fast hash suffices for a random secret; passwords, which are guessable, get argon2id), and a presented
token is compared with every stored hash in constant time. The tokens file:

    {"version": 1, "tokens": {"datex2-feed": {"role": "viewer", "sha256": "9f86d0...", "cameras": ["gate"],
                                              "created_ms": 1796041234567}}}

`vigil api-token add NAME --role viewer [--cameras a,b]` writes it (mode 0600) and prints the token once;
`VIGIL_API_TOKENS` (a secret setting) takes more entries in the same JSON, e.g. from a Kubernetes Secret.
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import json
import os
import re
import secrets
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

ROLES = ("viewer", "analyst", "operator", "admin")
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}$")
TOKEN_PREFIX = "vigil_"
REALM = 'Bearer realm="vigil"'


def rank(role: str) -> int:
    return ROLES.index(role)


class AuthError(Exception):
    """A refused request: 401 (no or unknown credentials) or 403 (known, but not allowed), with what to do."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status, self.message = status, message
        self.headers = {"WWW-Authenticate": REALM} if status == 401 else {}


class CameraScope:
    """Per-camera scoping for a caller with a `cameras` attribute (a frozenset, or None for every camera): the API
    token's Principal and the console's Caller."""

    cameras: frozenset[str] | None

    def sees(self, camera_id: str) -> bool:
        return self.cameras is None or camera_id in self.cameras

    def scope(self, wanted: list[str] | None = None) -> list[str] | None:
        """The cameras a query may cover: `wanted` (None = every camera) within this caller's cameras."""
        if self.cameras is None:
            return wanted
        return sorted(self.cameras) if wanted is None else [c for c in wanted if c in self.cameras]


@dataclass(frozen=True)
class Principal(CameraScope):
    """A caller: a signed-in console user or an API token, with its role and, for a scoped token, its cameras."""

    name: str
    role: str
    cameras: frozenset[str] | None = None  # None: every camera
    via: str = "token"  # "token" or "session"

    def may(self, role: str) -> bool:
        """Whether this caller holds `role` or a higher one."""
        return rank(self.role) >= rank(role)



def new_token() -> str:
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def bearer(authorization: str | None) -> str | None:
    """The token of an `Authorization: Bearer <token>` header, else None."""
    scheme, _, token = (authorization or "").strip().partition(" ")
    return token.strip() or None if scheme.lower() == "bearer" else None


def _entries(data: dict, source: str) -> dict[str, dict]:
    tokens = data.get("tokens", data) if isinstance(data, dict) else None
    if not isinstance(tokens, dict):
        raise ValueError(f"{source}: expected {{\"tokens\": {{NAME: {{\"role\": ..., \"sha256\": ...}}}}}}")
    for name, entry in tokens.items():
        if not isinstance(entry, dict) or entry.get("role") not in ROLES or \
                not re.fullmatch(r"[0-9a-f]{64}", str(entry.get("sha256", ""))):
            raise ValueError(f"{source}: token {name!r} needs a role (one of {', '.join(ROLES)}) and the token's "
                             "sha256 (64 hex digits; `vigil api-token add` writes both)")
        if entry.get("cameras") is not None and not isinstance(entry["cameras"], list):
            raise ValueError(f"{source}: token {name!r}: cameras is a list of camera ids")
    return tokens


class TokenStore:
    """The API tokens of the tokens file (re-read when it changes, so `vigil api-token` takes effect on running
    services at the next request) and of the `api_tokens` secret setting."""

    def __init__(self, path: Path | None, extra=None):
        self.path = Path(path) if path else None
        text = extra.get_secret_value() if hasattr(extra, "get_secret_value") else extra
        self._extra = _entries(json.loads(text), "VIGIL_API_TOKENS") if text else {}
        self._lock = threading.Lock()
        self._cache: tuple[tuple[int, int, int], dict] | None = None

    @classmethod
    def of(cls, settings) -> "TokenStore":
        return cls(settings.tokens_path, settings.api_tokens)

    def _file(self) -> dict[str, dict]:
        if self.path is None:
            return {}
        try:
            stat = self.path.stat()
        except FileNotFoundError:
            return {}
        with self._lock:
            key = (stat.st_mtime_ns, stat.st_size, stat.st_ino)  # a write replaces the file: a new inode
            if self._cache and self._cache[0] == key:
                return self._cache[1]
            data = _entries(json.loads(self.path.read_text() or "{}"), str(self.path))
            self._cache = (key, data)
            return data

    def tokens(self) -> dict[str, dict]:
        return {**self._file(), **self._extra}

    def __len__(self) -> int:
        return len(self.tokens())

    def authenticate(self, token: str | None) -> Principal | None:
        """The principal of a presented token, or None. Every stored hash is compared, in constant time."""
        if not token:
            return None
        presented = token_hash(token)
        found = None
        for name, entry in self.tokens().items():
            if hmac.compare_digest(presented, entry["sha256"]) and found is None:
                found = (name, entry)
        if found is None:
            return None
        name, entry = found
        cameras = entry.get("cameras")
        return Principal(name, entry["role"], None if cameras is None else frozenset(map(str, cameras)))

    # --- the file, for `vigil api-token` ------------------------------------------------------------------------
    def _write(self, tokens: dict) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(self.path.name + ".part")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as handle:
            json.dump({"version": 1, "tokens": tokens}, handle, indent=2, sort_keys=True)
            handle.flush()
            os.fsync(handle.fileno())
        tmp.replace(self.path)
        with self._lock:
            self._cache = None

    def add(self, name: str, role: str, cameras: list[str] | None = None, replace: bool = False) -> str:
        """Add a token to the file; returns the token (shown once, never stored)."""
        if not NAME.match(name or ""):
            raise ValueError(f"token name {name!r}: 1-64 letters, digits and _ . @ -, starting with one of the first two")
        if role not in ROLES:
            raise ValueError(f"unknown role {role!r}; one of {', '.join(ROLES)}")
        tokens = dict(self._file())
        if name in tokens and not replace:
            raise ValueError(f"token {name!r} exists already (--replace issues a new one)")
        token = new_token()
        tokens[name] = {"role": role, "sha256": token_hash(token), "created_ms": time.time_ns() // 1_000_000,
                        **({"cameras": sorted(set(cameras))} if cameras else {})}
        self._write(tokens)
        return token

    def remove(self, name: str) -> bool:
        tokens = dict(self._file())
        if tokens.pop(name, None) is None:
            return False
        self._write(tokens)
        return True


def check(principal: Principal | None, role: str, presented: bool = False) -> Principal:
    """`principal` if it may act as `role`; else AuthError 401 (no or unknown credentials) or 403 (too low a role)."""
    if principal is None:
        if presented:
            raise AuthError(401, "the API token is not known (mistyped, revoked or never issued)")
        raise AuthError(401, "authentication required: send 'Authorization: Bearer <token>' (an admin issues "
                             f"one with `vigil api-token add NAME --role {role}`)")
    if not principal.may(role):
        raise AuthError(403, f"{principal.name} (role {principal.role}) may not do this: it needs {role} or higher")
    return principal


def authorize(tokens: TokenStore, authorization: str | None, role: str) -> Principal:
    """The whole check of a request's Authorization header."""
    token = bearer(authorization)
    return check(tokens.authenticate(token), role, presented=bool(token))


def require_token(role: str, tokens_of):
    """A FastAPI dependency: the request's token principal holding `role` (401/403 otherwise). `tokens_of(request)`
    gives the service's TokenStore."""
    from fastapi import Depends, HTTPException, Request
    from fastapi.security import HTTPBearer

    scheme = HTTPBearer(auto_error=False, scheme_name="api-token",
                        description="An API token: `vigil api-token add NAME --role ROLE [--cameras a,b]`")

    def dependency(request: Request, _documented=Depends(scheme)) -> Principal:  # the scheme: for OpenAPI's page
        try:
            return authorize(tokens_of(request), request.headers.get("authorization"), role)
        except AuthError as exc:
            raise HTTPException(exc.status, exc.message, headers=exc.headers) from None

    dependency.__name__ = f"require_{role}"
    dependency.__annotations__ = {"request": Request, "return": Principal}  # real classes: fastapi is imported here
    return dependency


def main(argv: list[str] | None = None) -> int:
    from vigil.config import Settings

    parser = argparse.ArgumentParser(prog="vigil api-token", description="Bearer API tokens of the HTTP services "
                                     "(console API, re-ID API, DATEX II feed): a file of SHA-256 hashes, roles and "
                                     "camera scopes (VIGIL_API_TOKENS_FILE).")
    sub = parser.add_subparsers(dest="action", required=True)
    add = sub.add_parser("add", help="issue a token: printed once, only its hash is kept")
    add.add_argument("name")
    add.add_argument("--role", choices=ROLES, required=True)
    add.add_argument("--cameras", help="comma-separated camera ids the token is limited to (default: every camera)")
    add.add_argument("--replace", action="store_true", help="issue a new token under an existing name")
    remove = sub.add_parser("remove", help="revoke a token (at once, on every running service)")
    remove.add_argument("name")
    sub.add_parser("list", help="names, roles and scopes (never the tokens)")
    args = parser.parse_args(argv)
    store = TokenStore.of(Settings())  # add and remove change the file; list shows VIGIL_API_TOKENS' too
    try:
        if args.action == "add":
            cameras = [c.strip() for c in args.cameras.split(",") if c.strip()] if args.cameras else None
            token = store.add(args.name, args.role, cameras, replace=args.replace)
            print(f"{args.name} ({args.role}{', cameras ' + ','.join(cameras) if cameras else ''}) in {store.path}; "
                  "the token (shown only now):", file=sys.stderr)
            print(token)
        elif args.action == "remove":
            if not store.remove(args.name):
                raise ValueError(f"no token {args.name!r}")
            print(f"revoked {args.name}")
        else:
            for name, entry in sorted(store.tokens().items()):
                print(f"{name}\t{entry['role']}\t{','.join(entry['cameras']) if entry.get('cameras') else '*'}")
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
