"""Opening the store from settings, the phone salt, and the first admin key (printed once by `hotline serve`)."""
from __future__ import annotations

import os
import secrets

from hotline.settings import Settings
from serving.store import Store


def phone_salt(settings: Settings) -> bytes:
    """HOTLINE_PHONE_SALT, or a random salt created once and kept (0600) in data_dir/phone_salt."""
    if settings.phone_salt:
        return settings.phone_salt.encode()
    path = settings.data_dir / "phone_salt"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(secrets.token_hex(32))
    return path.read_text().strip().encode()


def open_store(settings: Settings) -> Store:
    """Connect and run the migrations (idempotent)."""
    kw = {"repeated_return": settings.repeated_return} if settings.repeated_return else {}
    return Store.from_url(settings.resolved_database_url, phone_salt(settings), **kw)


def ensure_admin_key(settings: Settings, store: Store | None = None) -> str | None:
    """Create an admin key when no active admin key exists; returns the new key (show it once) or None."""
    own = store is None
    store = store or open_store(settings)
    try:
        if store.has_active_key("admin"):
            return None
        _, token = store.create_key("admin", "admin (first start)")
        return token
    finally:
        if own:
            store.dispose()
