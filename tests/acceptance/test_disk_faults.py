"""A full disk and a read-only disk under a SQLite database (a real tmpfs, mounted here).

Every answer is a clear `StoreError` (never a hang, never a wrong acknowledgement), and
nothing recorded before the fault is lost: once there is room again, the runs go on and
each effect happens once. Needs root (to mount); CI runs as root.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from signoff import Context, Engine, RunStatus, StoreError

pytestmark = pytest.mark.slow

PAID: list[str] = []


def pay(order: str) -> str:
    PAID.append(order)
    return f"paid {order}"


def _mount(point: Path, options: str) -> bool:
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(point)], capture_output=True
    )
    return done.returncode == 0


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    point = tmp_path / "disk"
    point.mkdir()
    if os.geteuid() != 0 or not _mount(point, "size=2m"):
        pytest.skip("mounting a tmpfs needs root")
    try:
        yield point
    finally:
        subprocess.run(["umount", "-l", str(point)], check=False)


def _remount(point: Path, options: str) -> None:
    subprocess.run(["mount", "-o", f"remount,{options}", str(point)], check=True)


def _engine(point: Path) -> Engine:
    engine = Engine(f"sqlite:///{point / 'signoff.db'}", poll_interval=0.01, lease="2s")

    @engine.workflow(name="order")
    async def order(ctx: Context, n: int) -> str:
        await ctx.approval("ok", proposed={"padding": "x" * 2000})
        return await ctx.step(pay, f"order-{n}")

    return engine


async def test_a_full_disk_refuses_clearly_and_loses_nothing(small_disk: Path) -> None:
    PAID.clear()
    engine = _engine(small_disk)
    started: list[str] = []
    try:
        async with engine:
            with pytest.raises(StoreError) as full:
                for n in range(2000):
                    run = await engine.start("order", n)
                    started.append(run.id)
            assert "full" in str(full.value).lower() or "disk" in str(full.value).lower()
            assert len(started) > 10
            _remount(small_disk, "size=8m")  # room again
            for run_id in started:
                await engine.settle(run_id, timeout=10)
                await engine.approve(run_id, "ok", by="carol")
            for run_id in started:
                assert (
                    await engine.result(run_id, timeout=10) == f"paid order-{started.index(run_id)}"
                )
        assert sorted(PAID) == sorted(f"order-{n}" for n in range(len(started)))
    finally:
        await engine.close()


async def test_a_read_only_disk_refuses_clearly_and_decisions_apply_later(small_disk: Path) -> None:
    PAID.clear()
    engine = _engine(small_disk)
    try:
        async with engine:
            runs = [(await engine.start("order", n)).id for n in range(5)]
            for run_id in runs:
                assert (await engine.settle(run_id, timeout=10)).status is RunStatus.WAITING
        await engine.close()
        _remount(small_disk, "ro")
        reader = _engine(small_disk)
        try:
            # SQLite in WAL mode needs its -shm file even to read: every call says so
            with pytest.raises(StoreError, match=r"signoff\.db"):
                await reader.get_run(runs[0])
            with pytest.raises(StoreError, match=r"signoff\.db"):
                await reader.approve(runs[0], "ok", by="carol")
        finally:
            await reader.close()
        _remount(small_disk, "rw")
        engine = _engine(small_disk)
        async with engine:
            for run_id in runs:
                await engine.approve(run_id, "ok", by="carol")
            assert [await engine.result(r, timeout=10) for r in runs] == [
                f"paid order-{n}" for n in range(5)
            ]
        assert sorted(PAID) == [f"order-{n}" for n in range(5)]
    finally:
        await engine.close()
