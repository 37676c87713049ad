"""A damaged SQLite file answers HTTP reads with 503 problem+json at once; it used to hang
them for ever (the read's failed COMMIT left the waiting futures unresolved)."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from signoff import Context, Engine
from signoff.server import create_app


async def _fill(db: Path) -> None:
    engine = Engine(f"sqlite:///{db}")

    @engine.workflow()
    async def flow(ctx: Context, n: int) -> int:
        return n

    for n in range(300):
        await engine.start(flow, n, run_id=f"run-{n:04d}-" + "x" * 40)
    await engine.close()


@pytest.mark.timeout(30)
async def test_reads_on_a_damaged_file_answer_503(tmp_path: Path) -> None:
    db = tmp_path / "damaged.db"
    await _fill(db)
    size = db.stat().st_size
    with db.open("r+b") as f:
        f.seek(size // 2 // 4096 * 4096)
        f.write(b"\x5a" * (size - f.tell()))
    engine = Engine(f"sqlite:///{db}")
    app = create_app(engine, auth=False, run_worker=False)
    transport = httpx.ASGITransport(app=app)
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            for _ in range(2):
                response = await client.get("/runs", params={"limit": 500}, timeout=10)
                assert response.status_code == 503, response.text
                assert response.headers["content-type"].startswith("application/problem+json")
                # damage found on opening or on reading, as the file's layout has it
                assert "SQLite" in response.text and "damaged" in response.text
    finally:
        await app.state.hub.close()
        await engine.close()
