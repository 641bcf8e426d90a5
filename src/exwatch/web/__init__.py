"""`exwatch serve`: a read-only web interface and JSON API over the store.

Pages (server-rendered, small progressive JavaScript shipped in `static/`) and `/api/`
answer from the same functions; see docs/web.md.
"""

from __future__ import annotations

from exwatch.web.app import create_app, warm

__all__ = ["create_app", "warm"]
