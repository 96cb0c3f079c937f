"""A TCP proxy that can turn into a black hole, for chaos runs (``make soak``, the RPC
failover tests): it forwards to a loopback port until ``blackhole()``; from then on it
accepts connections and reads requests but never sends a byte back, also on connections
that were already open (a provider that hangs rather than refuses)."""

from __future__ import annotations

import asyncio
from typing import Any


class BlackholeProxy:
    """Forwards TCP to ``upstream_port`` on loopback until ``blackhole()``; from then on
    it accepts connections and reads requests but never sends a byte back."""

    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        self.holed = False
        self.held = 0  # connections accepted while in the black hole
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._writers: set[asyncio.StreamWriter] = set()

    @property
    def url(self) -> str:
        assert self._server is not None
        return f"http://127.0.0.1:{self._server.sockets[0].getsockname()[1]}/"

    async def start(self) -> BlackholeProxy:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        return self

    def blackhole(self) -> None:
        self.holed = True

    def restore(self) -> None:
        self.holed = False

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
        for writer in list(self._writers):
            writer.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.get_running_loop().create_task(self._serve(reader, writer))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        opened = [writer]
        self._writers.add(writer)
        try:
            if self.holed:
                self.held += 1
                await _swallow(reader)
                return
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1",
                                                                 self.upstream_port)
            opened.append(up_writer)
            self._writers.add(up_writer)
            await asyncio.gather(self._pipe(reader, up_writer), self._pipe(up_reader, writer))
        except (ConnectionError, OSError):
            pass
        finally:
            for each in opened:
                each.close()
                self._writers.discard(each)

    async def _pipe(self, source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
        while data := await source.read(65536):
            if self.holed:
                continue  # swallowed: the other side waits forever
            sink.write(data)
            await sink.drain()


async def _swallow(reader: asyncio.StreamReader) -> None:
    while await reader.read(65536):
        pass
