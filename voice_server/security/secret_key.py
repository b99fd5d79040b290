"""Where the key that seals auth tokens at rest comes from: `SECRETS_KEY`, else a key file.

With `SECRETS_KEY` unset, the key is read from `DATA_DIR/secrets.key`, which is made (mode 0600)
the first time; that suits the embedded database, whose data lives beside it. `serve` refuses to
start against `MONGODB_URI` without `SECRETS_KEY`: every instance behind a load balancer must
seal and open with the same key, and a key file on one machine cannot promise that.
"""

from __future__ import annotations

import os
from pathlib import Path

from stores.secrets import SecretBox
from voice_server.settings import Settings

KEY_FILE = "secrets.key"


def key_file(settings: Settings) -> Path:
    return settings.data_dir / KEY_FILE


def secret_box(settings: Settings) -> SecretBox:
    """The box for `SECRETS_KEY`, or for the key file (made if missing)."""
    if settings.secrets_key is not None:
        return SecretBox(settings.secrets_key.get_secret_value())
    path = key_file(settings)
    if not path.exists():
        _write_key_file(path)
    return SecretBox(path.read_text().strip())


def _write_key_file(path: Path) -> None:
    """Write a new key; of two processes starting at once, the first link wins for both."""
    path.parent.mkdir(parents=True, exist_ok=True)
    draft = path.with_name(f"{path.name}.{os.getpid()}")
    descriptor = os.open(draft, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as file:
        file.write(SecretBox.generate_key())
    try:
        os.link(draft, path)  # atomic, and refuses to replace a key already there
    except FileExistsError:
        pass
    finally:
        draft.unlink()
