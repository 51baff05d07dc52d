"""Generate missing secrets into DATA_DIR once (used by ``make run``).

Runs before Django is configured, because the settings read these files.
Existing files are never overwritten, so restarts reuse the same keys.
"""

from __future__ import annotations

import os
import secrets
import sys
from pathlib import Path

from cryptography.fernet import Fernet


def ensure_secrets(data_dir: Path) -> None:
    folder = data_dir / "secrets"
    folder.mkdir(parents=True, exist_ok=True)
    os.chmod(folder, 0o700)
    wanted = {
        "secret_key": lambda: secrets.token_urlsafe(50),
        "field_encryption_keys": lambda: Fernet.generate_key().decode(),
    }
    for name, make in wanted.items():
        path = folder / name
        if not path.exists():
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as fh:
                fh.write(make() + "\n")
            print(f"generated {path}", file=sys.stderr)


if __name__ == "__main__":
    base = Path(__file__).resolve().parent.parent
    ensure_secrets(Path(os.environ.get("DATA_DIR", base / "var")).resolve())
