"""A webhook receiver for benchmarks: answers every POST with 204 and counts distinct
`webhook-id`s; prints `ready PORT` when listening and, on SIGTERM, the count as JSON.

    .venv/bin/python bench/webhook_receiver.py
"""

from __future__ import annotations

import asyncio
import json
import signal


async def main() -> None:
    seen: set[str] = set()
    posts = 0

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal posts
        try:
            while True:
                request = await reader.readline()
                if not request:
                    return
                length, webhook_id = 0, ""
                while (line := await reader.readline()) not in (b"\r\n", b""):
                    name, _, value = line.decode("latin-1").partition(":")
                    if name.strip().lower() == "content-length":
                        length = int(value)
                    elif name.strip().lower() == "webhook-id":
                        webhook_id = value.strip()
                await reader.readexactly(length)
                posts += 1
                seen.add(webhook_id)
                writer.write(b"HTTP/1.1 204 No Content\r\nContent-Length: 0\r\n\r\n")
                await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError):
            return
        finally:
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    print(f"ready {port}", flush=True)
    await stop.wait()
    print(json.dumps({"posts": posts, "distinct": len(seen)}), flush=True)


if __name__ == "__main__":
    asyncio.run(main())
