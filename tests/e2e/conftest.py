"""The real server process for end-to-end tests (``tests/support/server.py``).

One server per module and mode: ``development`` (Flask's threaded server) and ``production``
(gunicorn, gthread workers) — both are what ``vintner serve`` runs. After every test the
server's stderr is checked for a Python traceback printed during that test.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.server import LiveServer, check_no_tracebacks, start_server


@pytest.fixture(scope="module", params=["development", "production"])
def live_server(request: pytest.FixtureRequest,
                tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    server = start_server(tmp_path_factory.mktemp(f"server-{request.param}"),
                          mode=request.param)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def server(live_server: LiveServer) -> Iterator[LiveServer]:
    """The module's server; the test fails if the server printed a traceback meanwhile."""
    start = live_server.stderr_size()
    yield live_server
    check_no_tracebacks(live_server, start)
