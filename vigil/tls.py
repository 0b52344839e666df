"""TLS of Vigil's HTTP services: with `VIGIL_TLS_CERT_FILE` and `VIGIL_TLS_KEY_FILE` set, the console, the re-ID API
and the DATEX II feed serve HTTPS (TLS 1.2 or newer) with that certificate; unset, plain HTTP, as on the embedded
stack's 127.0.0.1. Checked at start-up: a missing or unreadable file, or a key that does not fit the certificate,
stops the service with a message that says which setting to fix."""

from __future__ import annotations

import ssl


class TlsConfigError(ValueError):
    pass


def enabled(settings) -> bool:
    return bool(settings.tls_cert_file or settings.tls_key_file)


def scheme(settings) -> str:
    return "https" if enabled(settings) else "http"


def server_context(settings) -> ssl.SSLContext | None:
    """The server-side SSLContext of the configured certificate, or None when TLS is not configured."""
    if not enabled(settings):
        return None
    cert, key = settings.tls_cert_file, settings.tls_key_file
    if not cert or not key:
        raise TlsConfigError("TLS needs both VIGIL_TLS_CERT_FILE and VIGIL_TLS_KEY_FILE (PEM); one is not set")
    for name, path in (("VIGIL_TLS_CERT_FILE", cert), ("VIGIL_TLS_KEY_FILE", key)):
        if not path.is_file():
            raise TlsConfigError(f"{name}={path}: no such file")
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        context.load_cert_chain(str(cert), str(key))
    except (ssl.SSLError, OSError) as exc:
        raise TlsConfigError(f"VIGIL_TLS_CERT_FILE={cert} / VIGIL_TLS_KEY_FILE={key}: not a PEM certificate and its "
                             f"key ({exc})") from None
    return context


def uvicorn_options(settings) -> dict:
    """uvicorn.run(...) arguments: HTTPS with the configured certificate (checked first), or nothing."""
    if server_context(settings) is None:
        return {}
    return {"ssl_certfile": str(settings.tls_cert_file), "ssl_keyfile": str(settings.tls_key_file)}
