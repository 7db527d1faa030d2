"""An emulated WAN on loopback: a user-space TCP proxy per MPyC party that delays every byte by a
fixed one-way time in each direction, so every link between two parties has a round-trip time of
twice that (each connection passes through exactly one proxy: the one in front of its target).

It also counts *flights* per direction: bursts of data after the direction was idle for at least
``gap`` seconds. With the delay far above the parties' compute time per round, the largest count
over the links is the number of communication rounds of the run.

    proxies, endpoints = delayed_mesh(ports, one_way=0.025)   # endpoints[i]: what party i dials
    ...
    for p in proxies: p.stop()
"""

from __future__ import annotations

import asyncio
import threading
import time

import localnet


class DelayProxy:
    """Forwards 127.0.0.1:``port`` to 127.0.0.1:``target_port``, ``one_way`` seconds late each way.

    :param target_port: where the party really listens.
    :param one_way: delay added in each direction, in seconds.
    :param port: the proxy's port (a free one by default).
    :param gap: idle time that separates two flights, in seconds.
    """

    def __init__(self, target_port: int, one_way: float, port: int | None = None, gap: float = 0.005):
        self.target_port = target_port
        self.one_way = one_way
        self.port = port or localnet.free_port()
        self.gap = gap
        self.flights: dict[str, int] = {}  # "connection n/up|down" -> flights
        self.bytes = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._server = None
        self._count = 0

    def start(self) -> DelayProxy:
        self._thread = threading.Thread(target=self._serve, daemon=True, name=f"delay-proxy-{self.port}")
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError(f"delay proxy on port {self.port} did not start")
        return self

    def stop(self) -> None:
        if self._loop is not None and self._loop.is_running():
            self._loop.call_soon_threadsafe(self._loop.stop)
        if self._thread is not None:
            self._thread.join(5)

    @property
    def max_flights(self) -> int:
        return max(self.flights.values(), default=0)

    def _serve(self) -> None:
        self._loop = asyncio.new_event_loop()
        asyncio.set_event_loop(self._loop)
        self._server = self._loop.run_until_complete(asyncio.start_server(self._handle, "127.0.0.1", self.port))
        self._ready.set()
        try:
            self._loop.run_forever()
        finally:
            self._server.close()
            for task in asyncio.all_tasks(self._loop):
                task.cancel()
            self._loop.run_until_complete(asyncio.sleep(0))
            self._loop.close()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        # The target may not listen yet (the parties start at once): retry as its client would.
        for _ in range(600):
            try:
                up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
                break
            except OSError:
                await asyncio.sleep(0.1)
        else:
            writer.close()
            return
        self._count += 1
        n = self._count
        await asyncio.gather(
            self._pipe(reader, up_writer, f"{n}/up"), self._pipe(up_reader, writer, f"{n}/down"), return_exceptions=True
        )

    async def _pipe(self, src: asyncio.StreamReader, dst: asyncio.StreamWriter, name: str) -> None:
        queue: asyncio.Queue = asyncio.Queue()

        async def deliver() -> None:
            while True:
                due, data = await queue.get()
                if data is None:
                    break
                wait = due - time.monotonic()
                if wait > 0:
                    await asyncio.sleep(wait)
                dst.write(data)
                await dst.drain()
            dst.close()

        sender = asyncio.ensure_future(deliver())
        last = 0.0
        self.flights[name] = 0
        try:
            while data := await src.read(1 << 16):
                now = time.monotonic()
                if now - last >= self.gap:
                    self.flights[name] += 1
                last = now
                self.bytes += len(data)
                queue.put_nowait((now + self.one_way, data))
        except (OSError, asyncio.IncompleteReadError):
            pass
        finally:
            queue.put_nowait((0.0, None))
            await asyncio.gather(sender, return_exceptions=True)


def delayed_mesh(ports: list[int], one_way: float) -> tuple[list[list[str]], list[DelayProxy]]:
    """A proxy in front of every party's port; party i dials the others through them.

    :param ports: where each party really listens (MPyC's own entry keeps its real port).
    :return: (endpoints per party, the started proxies).
    """
    proxies = [DelayProxy(port, one_way).start() for port in ports]
    endpoints = [
        [f"127.0.0.1:{ports[j] if j == i else proxies[j].port}" for j in range(len(ports))] for i in range(len(ports))
    ]
    return endpoints, proxies
