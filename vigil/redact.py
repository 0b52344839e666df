"""Secrets out of text: one helper, `redact`, for everything Vigil writes where people read (logs, CameraStatus
messages, stats files, error messages, HTTP error bodies).

It removes the userinfo of URLs (`rtsp://user:pw@cam/x` → `rtsp://***@cam/x`), bearer tokens, and every secret value
registered with `register` (the Kafka SASL password, the console's signing key, ...). `install_log_redaction()` makes
every log record of the process pass through it, tracebacks included, whichever handler writes it (uvicorn's too).
"""

from __future__ import annotations

import logging
import re
import threading

MASK = "***"
_URL_USERINFO = re.compile(r"(?P<scheme>\b[A-Za-z][A-Za-z0-9+.-]*://)(?P<userinfo>[^/\s@'\"<>]+)@")
_BEARER = re.compile(r"(?i)\b(bearer\s+)[A-Za-z0-9._~+/=-]{8,}")
_MIN_SECRET = 4  # shorter values would mask ordinary words

_secrets: set[str] = set()
_lock = threading.Lock()
_installed = False


def register(*values) -> None:
    """Secret values (str, or pydantic SecretStr) that must never appear in any text `redact` sees."""
    for value in values:
        if value is None:
            continue
        text = value.get_secret_value() if hasattr(value, "get_secret_value") else str(value)
        if len(text) >= _MIN_SECRET:
            with _lock:
                _secrets.add(text)


def redact(text) -> str:
    """`text` with URL credentials, bearer tokens and the registered secrets masked."""
    if text is None:
        return text
    text = str(text)
    with _lock:
        known = sorted(_secrets, key=len, reverse=True)  # longest first: a secret containing another
    for secret in known:
        if secret in text:
            text = text.replace(secret, MASK)
    text = _URL_USERINFO.sub(lambda m: f"{m['scheme']}{MASK}@", text)
    return _BEARER.sub(lambda m: f"{m[1]}{MASK}", text)


def redact_url(url: str) -> str:
    """A URL fit to show: its userinfo (user and password) replaced by ***."""
    return _URL_USERINFO.sub(lambda m: f"{m['scheme']}{MASK}@", url)


def install_log_redaction() -> None:
    """Redact every log record this process creates (message, arguments and traceback), at creation, so no handler
    or formatter can write a secret. Idempotent."""
    global _installed
    with _lock:
        if _installed:
            return
        _installed = True
    factory = logging.getLogRecordFactory()

    def redacting_factory(*args, **kwargs) -> logging.LogRecord:
        record = factory(*args, **kwargs)
        try:
            message = record.getMessage()
        except Exception:  # noqa: BLE001 - a bad format string: logging reports it itself later
            return record
        record.msg, record.args = redact(message), ()
        if record.exc_info and record.exc_info[0] is not None:
            record.exc_text = redact(logging.Formatter().formatException(record.exc_info))
        return record

    logging.setLogRecordFactory(redacting_factory)
