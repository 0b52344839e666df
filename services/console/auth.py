"""Sign-in, sessions and roles (`/api/auth`), user management for admins (`/api/users`), and the dependencies every
other router checks its callers with: `require("viewer" | "analyst" | "operator" | "admin")`. Checks are server-side
on every request (and on the live WebSocket's handshake); the page only hides what a role may not do.

Two kinds of caller: people signed in with a session cookie (CSRF token on every change), and programs with an API
token (`Authorization: Bearer`, vigil/auth.py; no cookie, so no CSRF). A token scoped to cameras sees only theirs:
the routers ask `caller.sees(camera_id)` and answer 404 for the rest, as if they did not exist."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from fastapi import APIRouter, Depends, HTTPException, Request, Response
from pydantic import BaseModel, Field

from services.console.sessions import COOKIE, Session
from services.console.users import ROLES, User, UserError
from vigil.auth import CameraScope, bearer

log = logging.getLogger("vigil.console.auth")
router = APIRouter(prefix="/api/auth", tags=["auth"])
users_router = APIRouter(prefix="/api/users", tags=["users"])
SAFE_METHODS = ("GET", "HEAD", "OPTIONS")


@dataclass(frozen=True)
class Caller(CameraScope):
    user: User  # for an API token: "token:<name>" and the token's role
    session: Session | None  # None: an API token
    cameras: frozenset[str] | None = None  # a scoped token's cameras; None: every camera
    token: str | None = None


class Login(BaseModel):
    username: str = Field(max_length=64)
    password: str = Field(max_length=1024)


class Me(BaseModel):
    user: str
    role: str
    expires_ms: int | None = Field(description="When the session ends (UTC epoch ms); then sign in again. None for "
                                   "an API token.")
    csrf: str | None = Field(description="Send as X-CSRF-Token with every POST, PUT and DELETE (sessions only; an API "
                             "token needs none).")
    cameras: list[str] | None = Field(None, description="The cameras a scoped API token may see; None: every camera.")
    credit: str = Field(description="Footage credit to show with frames.")


class NewUser(BaseModel):
    name: str
    role: str = Field(description=f"one of {', '.join(ROLES)}")
    password: str = Field(min_length=8, max_length=1024)


class UserOut(BaseModel):
    name: str
    role: str
    created_ms: int


def console_of(request: Request):
    return request.app.state.console


def caller_from(console, cookie: str | None) -> Caller | None:
    session = console.signer.read(cookie)
    if session is None:
        return None
    user = console.users.get(session.user)  # the role as the users file says now
    return Caller(user, session) if user else None


def caller_of_token(console, token: str) -> Caller | None:
    principal = console.tokens.authenticate(token)
    if principal is None:
        return None
    return Caller(User(f"token:{principal.name}", principal.role), None, principal.cameras, token)


def identify(console, authorization: str | None, cookie: str | None) -> Caller:
    """The caller of a request: its API token when it sends one, else its session; HTTPException 401 otherwise."""
    token = bearer(authorization)
    if token:
        caller = caller_of_token(console, token)
        if caller is None:
            raise HTTPException(401, "the API token is not known (mistyped, revoked or never issued)",
                                headers={"WWW-Authenticate": 'Bearer realm="vigil"'})
        return caller
    caller = caller_from(console, cookie)
    if caller is None:
        raise HTTPException(401, "sign in first (the session is missing, expired or signed out), or send an API "
                                 "token as 'Authorization: Bearer <token>'", headers={"WWW-Authenticate": 'Bearer realm="vigil"'})
    return caller


def require(role: str):
    def check(request: Request) -> Caller:
        console = console_of(request)
        caller = identify(console, request.headers.get("authorization"), request.cookies.get(COOKIE))
        if caller.session is not None and request.method not in SAFE_METHODS and \
                not console.signer.csrf_ok(caller.session, request.headers.get("x-csrf-token")):
            raise HTTPException(403, "missing or wrong X-CSRF-Token (take it from GET /api/auth/me)")
        if not caller.user.may(role):
            raise HTTPException(403, f"your role ({caller.user.role}) may not do this: it needs {role}")
        return caller

    check.__name__ = f"require_{role}"
    return check


def _me(console, caller: Caller) -> Me:
    session = caller.session
    return Me(user=caller.user.name, role=caller.user.role, expires_ms=session.expires_ms if session else None,
              csrf=console.signer.csrf(session) if session else None, credit=console.settings.console_credit,
              cameras=None if caller.cameras is None else sorted(caller.cameras))


@router.post("/login", response_model=Me, summary="Sign in: sets the session cookie (HttpOnly, SameSite=Strict)")
def login(body: Login, request: Request, response: Response):
    console = console_of(request)
    wait = console.throttle.locked(body.username)
    if wait:
        raise HTTPException(429, f"too many failed sign-ins for this name; try again in {wait:.0f} s",
                            headers={"Retry-After": str(int(wait) + 1)})
    user = console.users.verify(body.username, body.password)
    if user is None:
        console.throttle.failed(body.username)
        log.warning("sign-in refused for %r from %s", body.username[:64], request.client.host if request.client else "?")
        raise HTTPException(401, "wrong user name or password")
    console.throttle.succeeded(body.username)
    cookie, session = console.signer.issue(user.name)
    response.set_cookie(COOKIE, cookie, max_age=int(console.settings.console_session_ttl_s), httponly=True,
                        samesite="strict", secure=console.settings.console_cookie_secure, path="/")
    log.info("%s (%s) signed in", user.name, user.role)
    return _me(console, Caller(user, session))


@router.post("/logout", status_code=204, summary="Sign out: the session ends on every tab")
def logout(request: Request, response: Response):
    console = console_of(request)
    caller = caller_from(console, request.cookies.get(COOKIE))
    if caller is not None:
        console.signer.revoke(caller.session)
        log.info("%s signed out", caller.user.name)
    response.delete_cookie(COOKIE, path="/")
    response.status_code = 204
    return response


@router.get("/me", response_model=Me, summary="Who is signed in, the role, when the session ends, the CSRF token")
def me(request: Request, caller: Caller = Depends(require("viewer"))):
    return _me(console_of(request), caller)


@users_router.get("", response_model=list[UserOut], summary="List users and roles (admin)")
def list_users(request: Request, caller: Caller = Depends(require("admin"))):
    return [UserOut(name=u.name, role=u.role, created_ms=u.created_ms) for u in console_of(request).users.list()]


@users_router.post("", response_model=UserOut, status_code=201, summary="Add a user (admin)")
def add_user(body: NewUser, request: Request, caller: Caller = Depends(require("admin"))):
    try:
        user = console_of(request).users.add(body.name, body.role, body.password)
    except UserError as exc:
        raise HTTPException(400, str(exc)) from None
    log.info("%s added user %s (%s)", caller.user.name, user.name, user.role)
    return UserOut(name=user.name, role=user.role, created_ms=user.created_ms)


@users_router.delete("/{name}", status_code=204, summary="Remove a user (admin); their sessions end")
def remove_user(name: str, request: Request, caller: Caller = Depends(require("admin"))):
    if name == caller.user.name:
        raise HTTPException(400, "you cannot remove yourself")
    if not console_of(request).users.remove(name):
        raise HTTPException(404, f"no user {name!r}")
    log.info("%s removed user %s", caller.user.name, name)
    return Response(status_code=204)
