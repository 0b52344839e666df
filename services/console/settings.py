"""Settings of the operator console (`VIGIL_CONSOLE_*`, besides the platform's Kafka, ClickHouse and frame-store
settings it reads like every service)."""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from pydantic import Field, SecretStr

from vigil.config import REPO_ROOT, Settings

FOOTAGE_CREDIT = ("Sample footage © Intel Corporation, CC BY 4.0 "
                  "(github.com/intel-iot-devkit/sample-videos: car-detection.mp4, one-by-one-person-detection.mp4)")


class ConsoleSettings(Settings):
    console_host: str = Field("127.0.0.1", description="Address the console binds.")
    console_port: int = Field(18090, description="Port the console listens on.")
    console_users_file: Path | None = Field(None, description="The users file (JSON of argon2id hashes and roles; "
                                            "`vigil console-user add`); empty = <data_dir>/console/users.json.")
    console_secret_key: SecretStr | None = Field(None, description="Key that signs session cookies (HMAC-SHA256); a "
                                                 "secret, never logged. Empty = a random key kept in "
                                                 "<data_dir>/console/secret.key (mode 0600), made on first start.")
    console_session_ttl_s: float = Field(8 * 3600.0, gt=0, description="A session expires this long after sign-in "
                                         "(a shift); then the console asks to sign in again.")
    console_cookie_secure: bool = Field(False, description="Mark the session cookie Secure (set it when the console "
                                        "is served over HTTPS behind a TLS proxy; with VIGIL_TLS_CERT_FILE the "
                                        "console serves HTTPS itself and sets it on its own).")
    console_cameras: Path | None = Field(None, description="Camera file (cameras.yaml) whose zones and lanes the "
                                         "tiles draw; cameras seen on Kafka but not in it get tiles without them.")
    console_push_fps: float = Field(5.0, gt=0, le=30, description="Most frames per second pushed per camera to "
                                    "each browser; a slow browser gets the newest frame, never a queue.")
    console_window_frames: int = Field(8, ge=1, le=1000, description="Most frames sent to one page and not yet "
                                       "acknowledged by it (flow control: bounds the delay a slow page sees).")
    console_credit: str = Field(FOOTAGE_CREDIT, description="Credit line shown wherever frames are shown.")
    console_login_max_failures: int = Field(5, ge=1, description="Failed sign-ins of one user name within the "
                                            "lock-out time before further tries are refused.")
    console_login_lockout_s: float = Field(60.0, ge=0, description="How long such a name is locked out.")
    console_verdict_overlay_s: float = Field(60.0, ge=0, description="Verdicts seen on incidents.v1 this recently "
                                             "override the store's answer (the sink stores them within a second).")
    console_track_pad_s: float = Field(10.0, ge=0, description="Seconds before and after an incident over which its "
                                       "tracks are drawn (the clip's pre- and post-roll).")
    console_consumer_group: str = Field("vigil-console", description="Prefix of the live consumer's group id; each "
                                        "console process adds a unique suffix and reads from the latest offsets.")
    console_assets_dir: Path = Field(REPO_ROOT / ".deps" / "console-ui" / "node_modules",
                                     description="npm packages installed by set-up (Swagger UI for /docs).")

    @property
    def users_path(self) -> Path:
        return self.console_users_file or self.data_dir / "console" / "users.json"

    def secret_key(self) -> bytes:
        """The cookie-signing key: the setting, else the one kept in the data directory (made on first use)."""
        if self.console_secret_key is not None and self.console_secret_key.get_secret_value():
            return self.console_secret_key.get_secret_value().encode()
        path = self.data_dir / "console" / "secret.key"
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            try:
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            except FileExistsError:  # another console made it meanwhile
                pass
            else:
                with os.fdopen(fd, "w") as handle:
                    handle.write(secrets.token_urlsafe(48))
        return path.read_text().strip().encode()
