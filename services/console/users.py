"""Console users: a JSON file of names, roles and argon2id password hashes (argon2-cffi), and `vigil console-user`.

    {"version": 1, "users": {"alice": {"role": "operator", "hash": "$argon2id$v=19$m=65536,t=3,p=4$...",
                                       "created_ms": 1796041234567}}}

Passwords are never stored, printed or logged; only their argon2id hashes (RFC 9106 parameters of argon2-cffi's
defaults) are. The file is written atomically with mode 0600 and re-read when it changes, so a user added, demoted or
removed with `vigil console-user` takes effect on the running console at that user's next request.

Roles (vigil/auth.py, shared with the API tokens of every HTTP service), each including the ones before it:

| role | may |
| --- | --- |
| viewer | see the live tiles, the incident queue, incidents with their snapshot, clip and tracks, the noisiest rules |
| analyst | the same in the console (elsewhere: re-ID search, read-only SQL) |
| operator | also acknowledge, confirm and reject incidents |
| admin | also manage users and read the console's live statistics |
"""

from __future__ import annotations

import argparse
import getpass
import json
import os
import re
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from vigil.auth import ROLES, rank

NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}$")
MIN_PASSWORD = 8
_HASHER = PasswordHasher()
# Verified against when the name is unknown, so a sign-in takes as long for a missing user as for a wrong password.
_DUMMY_HASH = _HASHER.hash("not a password of anyone")


class UserError(ValueError):
    """A user that cannot be added or changed: bad name, unknown role, short password, exists already."""


@dataclass(frozen=True)
class User:
    name: str
    role: str
    created_ms: int = 0

    def may(self, role: str) -> bool:
        """Whether this user holds `role` or a higher one."""
        return rank(self.role) >= rank(role)


class UserStore:
    def __init__(self, path: Path):
        self.path = Path(path)
        self._lock = threading.Lock()
        self._cache: tuple[tuple[int, int, int], dict] | None = None

    def _read(self) -> dict:
        try:
            stat = self.path.stat()
        except FileNotFoundError:
            return {}
        with self._lock:
            key = (stat.st_mtime_ns, stat.st_size, stat.st_ino)  # a write replaces the file: a new inode
            if self._cache and self._cache[0] == key:
                return self._cache[1]
            data = json.loads(self.path.read_text() or "{}").get("users", {})
            self._cache = (key, data)
            return data

    def _write(self, users: dict) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(self.path.name + ".part")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as handle:
            json.dump({"version": 1, "users": users}, handle, indent=2, sort_keys=True)
            handle.flush()
            os.fsync(handle.fileno())
        tmp.replace(self.path)
        with self._lock:
            self._cache = None

    def get(self, name: str) -> User | None:
        entry = self._read().get(name)
        if not entry or entry.get("role") not in ROLES:
            return None
        return User(name, entry["role"], int(entry.get("created_ms", 0)))

    def list(self) -> list[User]:
        return [user for user in (self.get(name) for name in sorted(self._read())) if user]

    def add(self, name: str, role: str, password: str, replace: bool = False) -> User:
        if not NAME.match(name or ""):
            raise UserError(f"user name {name!r}: 1-64 letters, digits and _ . @ -, starting with a letter or digit")
        if role not in ROLES:
            raise UserError(f"unknown role {role!r}; one of {', '.join(ROLES)}")
        if len(password or "") < MIN_PASSWORD:
            raise UserError(f"a password needs at least {MIN_PASSWORD} characters")
        users = dict(self._read())
        if name in users and not replace:
            raise UserError(f"user {name!r} exists already (--replace sets a new password and role)")
        users[name] = {"role": role, "hash": _HASHER.hash(password), "created_ms": time.time_ns() // 1_000_000}
        self._write(users)
        return User(name, role, users[name]["created_ms"])

    def add_generated(self, name: str, role: str) -> str:
        """Add (or replace) `name` with a new random password and return it, for a demo to print once."""
        import secrets

        password = secrets.token_urlsafe(12)
        self.add(name, role, password, replace=True)
        return password

    def set_role(self, name: str, role: str) -> User:
        if role not in ROLES:
            raise UserError(f"unknown role {role!r}; one of {', '.join(ROLES)}")
        users = dict(self._read())
        if name not in users:
            raise UserError(f"no user {name!r}")
        users[name] = {**users[name], "role": role}
        self._write(users)
        return User(name, role, int(users[name].get("created_ms", 0)))

    def remove(self, name: str) -> bool:
        users = dict(self._read())
        if users.pop(name, None) is None:
            return False
        self._write(users)
        return True

    def verify(self, name: str, password: str) -> User | None:
        """The user when `password` is theirs, else None (same work for an unknown name). Re-hashes a hash made
        with older parameters."""
        entry = self._read().get(name or "")
        try:
            _HASHER.verify(entry["hash"] if entry else _DUMMY_HASH, password or "")
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return None
        user = self.get(name)
        if user is None:
            return None
        if _HASHER.check_needs_rehash(entry["hash"]):
            users = dict(self._read())
            users[name] = {**users[name], "hash": _HASHER.hash(password)}
            self._write(users)
        return user


def _password(args) -> str:
    if args.password_stdin:
        return sys.stdin.readline().rstrip("\n")
    first = getpass.getpass(f"password for {args.name}: ")
    if first != getpass.getpass("again: "):
        raise UserError("the two passwords differ")
    return first


def main(argv: list[str] | None = None) -> int:
    from services.console.settings import ConsoleSettings

    parser = argparse.ArgumentParser(prog="vigil console-user", description="Manage the operator console's users "
                                     "(a file of argon2id hashes; VIGIL_CONSOLE_USERS_FILE).")
    sub = parser.add_subparsers(dest="action", required=True)
    add = sub.add_parser("add", help="add a user (asks for the password, or reads one line from stdin)")
    add.add_argument("name")
    add.add_argument("--role", choices=ROLES, required=True)
    add.add_argument("--password-stdin", action="store_true", help="read the password from standard input")
    add.add_argument("--replace", action="store_true", help="replace an existing user's password and role")
    role = sub.add_parser("role", help="change a user's role")
    role.add_argument("name")
    role.add_argument("role", choices=ROLES)
    remove = sub.add_parser("remove", help="remove a user (their sessions end at their next request)")
    remove.add_argument("name")
    sub.add_parser("list", help="list users and roles")
    args = parser.parse_args(argv)
    store = UserStore(ConsoleSettings().users_path)
    try:
        if args.action == "add":
            user = store.add(args.name, args.role, _password(args), replace=args.replace)
            print(f"{'replaced' if args.replace else 'added'} {user.name} ({user.role}) in {store.path}")
        elif args.action == "role":
            user = store.set_role(args.name, args.role)
            print(f"{user.name} is now {user.role}")
        elif args.action == "remove":
            if not store.remove(args.name):
                raise UserError(f"no user {args.name!r}")
            print(f"removed {args.name}")
        else:
            for user in store.list():
                print(f"{user.name}\t{user.role}")
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0
