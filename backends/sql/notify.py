"""Notifiers for the SQL backend (the port is :mod:`vintner.ports.notifier`).

PostgreSQL — :class:`PostgresNotifier`: ``LISTEN/NOTIFY`` on one channel, ``vintner_events``,
with tiny payloads (``j`` = a job was enqueued, ``l:<job id>`` = new logs). Each process keeps
one dedicated listening connection (a thread turns incoming notifications into local wake-ups,
reconnecting with backoff and waking everyone after a reconnect, since notifications may have
been missed) and one sending connection. Sends are coalesced: a sender thread collects the
distinct payloads of a short window (``coalesce_s``) and sends them in one transaction, so a
burst of log appends for one job costs one NOTIFY. Local waiters are woken at once as well.

SQLite — :class:`SqlitePollingNotifier`: no cross-process signal exists, so a thread polls
``PRAGMA data_version`` (a cheap read of the file header that changes when *another* connection
commits) every ``interval_s`` and wakes every waiter on a change; notifications from this
process wake local waiters immediately. Polling never stops, so a commit is noticed within one
interval even if it happened just before someone started waiting.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
import uuid
from typing import Any

import psycopg
from sqlalchemy.engine import URL

from backends.sql.engine import normalize_url
from vintner.ports.notifier import JOBS_CHANNEL, LocalNotifier, logs_channel

log = logging.getLogger(__name__)

PG_CHANNEL = "vintner_events"
_JOBS_PAYLOAD = "j"
_LOGS_PREFIX = "l:"


def create_notifier(url: str | URL, **options: Any) -> LocalNotifier:
    """The notifier that fits the database URL (also :meth:`SqlRepository.create_notifier`)."""
    parsed = normalize_url(url)
    if parsed.get_backend_name() == "postgresql":
        return PostgresNotifier(parsed, **options)
    return SqlitePollingNotifier(parsed, **options)


class PostgresNotifier(LocalNotifier):
    def __init__(self, url: URL, *, coalesce_s: float = 0.02, reconnect_max_s: float = 5.0):
        super().__init__()
        self._conninfo = url.set(drivername="postgresql").render_as_string(hide_password=False)
        self._coalesce_s = coalesce_s
        self._reconnect_max_s = reconnect_max_s
        self._pending: set[str] = set()
        self._pending_lock = threading.Lock()
        self._send_wanted = threading.Event()
        self._stop = threading.Event()
        self._listening = threading.Event()
        self._listener = threading.Thread(target=self._listen, name="vintner-listen", daemon=True)
        self._sender = threading.Thread(target=self._send, name="vintner-notify", daemon=True)
        self._listener.start()
        self._sender.start()

    def ready(self, timeout: float = 10.0) -> bool:
        """Wait until the LISTEN is in place (tests; production need not wait)."""
        return self._listening.wait(timeout)

    # -- publishing ---------------------------------------------------------------------------
    def notify_job_enqueued(self) -> None:
        self._publish(_JOBS_PAYLOAD, JOBS_CHANNEL)

    def notify_logs(self, job_id: uuid.UUID) -> None:
        self._publish(f"{_LOGS_PREFIX}{job_id}", logs_channel(job_id))

    def _publish(self, payload: str, channel: str) -> None:
        self._bump(channel)  # this process's waiters need not wait for the round trip
        with self._pending_lock:
            self._pending.add(payload)
        self._send_wanted.set()

    def _send(self) -> None:
        conn: psycopg.Connection[Any] | None = None
        while not self._stop.is_set():
            self._send_wanted.wait()
            if self._stop.is_set():
                break
            time.sleep(self._coalesce_s)  # let a burst accumulate
            self._send_wanted.clear()
            with self._pending_lock:
                batch, self._pending = self._pending, set()
            if not batch:
                continue
            try:
                if conn is None or conn.closed:
                    conn = psycopg.connect(self._conninfo, connect_timeout=10)
                with conn.transaction():
                    for payload in sorted(batch):
                        conn.execute("SELECT pg_notify(%s, %s)", (PG_CHANNEL, payload))
            except Exception:
                # Best effort: other processes fall back to their wait timeouts.
                log.warning("could not send %d notification(s)", len(batch), exc_info=True)
                if conn is not None:
                    conn.close()
                conn = None
        if conn is not None:
            conn.close()

    # -- listening ----------------------------------------------------------------------------
    def _listen(self) -> None:
        delay = 0.2
        while not self._stop.is_set():
            try:
                with psycopg.connect(self._conninfo, autocommit=True, connect_timeout=10) as conn:
                    conn.execute(f"LISTEN {PG_CHANNEL}")
                    self._listening.set()
                    self._bump_all()  # notifications may have been missed while not listening
                    delay = 0.2
                    while not self._stop.is_set():
                        for note in conn.notifies(timeout=0.5):
                            self._deliver(note.payload)
            except Exception as exc:
                if self._stop.is_set():
                    break
                self._listening.clear()
                # one line per attempt (the listener retries forever while the server runs)
                log.warning("notification listener lost its connection (%s); retrying in %.1fs",
                            str(exc).strip().splitlines()[0] if str(exc).strip()
                            else type(exc).__name__, delay)
                self._stop.wait(delay)
                delay = min(delay * 2, self._reconnect_max_s)

    def _deliver(self, payload: str) -> None:
        if payload == _JOBS_PAYLOAD:
            self._bump(JOBS_CHANNEL)
        elif payload.startswith(_LOGS_PREFIX):
            self._bump(f"logs:{payload[len(_LOGS_PREFIX):]}")

    def close(self) -> None:
        self._stop.set()
        self._send_wanted.set()
        super().close()
        self._listener.join(5)
        self._sender.join(5)


class SqlitePollingNotifier(LocalNotifier):
    def __init__(self, url: URL, *, interval_s: float = 0.25):
        super().__init__()
        self._path = url.database or ""
        self._interval_s = interval_s
        self._stop = threading.Event()
        self._poller = threading.Thread(target=self._poll, name="vintner-poll", daemon=True)
        self._poller.start()

    def _poll(self) -> None:
        conn: sqlite3.Connection | None = None
        last: int | None = None
        while not self._stop.wait(self._interval_s):
            try:
                if conn is None:
                    conn = sqlite3.connect(self._path, timeout=5, isolation_level=None,
                                           check_same_thread=False)
                version = conn.execute("PRAGMA data_version").fetchone()[0]
            except sqlite3.Error:
                log.warning("notification poller cannot read %s", self._path, exc_info=True)
                if conn is not None:
                    conn.close()
                conn = None
                continue
            if last is not None and version != last:
                self._bump_all()
            last = version
        if conn is not None:
            conn.close()

    def close(self) -> None:
        self._stop.set()
        super().close()
        self._poller.join(5)
