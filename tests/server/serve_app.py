"""APP for `signoff serve tests.server.serve_app:engine` in the process tests."""

from __future__ import annotations

import os

from tests.server.apps import make_engine

engine = make_engine(os.environ.get("SIGNOFF_DATABASE_URL", "sqlite:///signoff.db"))
