"""A paused server answers nothing, even while clients keep connecting (PostgreSQL forks a
process per connection, so freezing it races with the forks)."""

from __future__ import annotations

import socket
import struct
import threading
import time
from collections.abc import Iterator

import pytest

from polystore.testing import LocalPostgresServer
from polystore.testing._processes import descendants, is_stopped

ROUNDS = 20
CLIENTS = 8

_STARTUP = b"user\0postgres\0database\0postgres\0\0"
_STARTUP_PACKET = struct.pack("!ii", 8 + len(_STARTUP), 196608) + _STARTUP


class Churn:
    """Clients that connect, send a start-up packet and wait for the first reply byte, in a
    loop, each connection served by a newly forked PostgreSQL backend."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.answers: list[tuple[float, float]] = []  # (request sent, reply received)
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._threads = [threading.Thread(target=self._run, daemon=True) for _ in range(CLIENTS)]

    def __enter__(self) -> Churn:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join()

    def _run(self) -> None:
        while not self._stop.is_set():
            self._ask()

    def _ask(self) -> None:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.2) as sock:
                sent = time.monotonic()
                sock.sendall(_STARTUP_PACKET)
                if sock.recv(1):
                    received = time.monotonic()
                    with self._lock:
                        self.answers.append((sent, received))
        except OSError:  # refused, reset or timed out: frozen or overloaded
            return


@pytest.fixture(scope="module")
def postgres() -> Iterator[LocalPostgresServer]:
    server = LocalPostgresServer()
    try:
        server.start()
        yield server
    finally:
        server.close()


def test_pause_under_connection_churn_stops_every_backend(postgres: LocalPostgresServer) -> None:
    assert postgres._proc is not None
    root = postgres._proc.pid
    running_after_pause: list[list[int]] = []
    answered_while_paused: list[tuple[float, float]] = []
    with Churn(postgres.port) as churn:
        for _ in range(ROUNDS):
            time.sleep(0.05)  # let the clients make the postmaster fork
            postgres.pause()
            paused = time.monotonic()
            running_after_pause.append([p for p in descendants(root) if not is_stopped(p)])
            time.sleep(0.3)
            resumed = time.monotonic()
            postgres.resume()
            answered_while_paused += [
                (sent, got) for sent, got in churn.answers if paused < sent and got < resumed
            ]

    assert churn.answers  # the clients were served between the pauses
    assert [pids for pids in running_after_pause if pids] == []
    assert answered_while_paused == []
