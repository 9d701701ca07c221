"""``vintner serve``: migrate if needed, then serve — Flask's development server when
``VINTNER_ENV=development``, gunicorn (threaded workers) when ``production``."""

from __future__ import annotations

import json
from typing import Any

import click
from werkzeug.serving import WSGIRequestHandler

from vintner.cli.context import CliError

DEFAULT_PORT = 5000  # Flask's (the README and examples use it)


def protocol_error_body(status: int, message: str) -> bytes:
    """The project's error shape for a request the HTTP server refuses before the app sees it
    (a garbage request line, an over-long URL or header): JSON, never the server's HTML page."""
    return json.dumps({"error": message, "code": status}).encode()


class JsonErrorRequestHandler(WSGIRequestHandler):
    """Flask's development server, answering its own protocol errors as JSON."""

    def send_error(self, code: int, message: str | None = None,
                   explain: str | None = None) -> None:
        self.log_error("code %d, message %s", code, message)
        text = message or self.responses.get(code, ("Error",))[0]
        body = protocol_error_body(code, text)
        if self.request_version == "HTTP/0.9":  # unparsable request line: answer with a status
            self.request_version = "HTTP/1.0"
        self.send_response(code)
        self.send_header("Connection", "close")
        self.close_connection = True
        if code >= 200 and code not in (204, 304):
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD" and code >= 200 and code not in (204, 304):
            self.wfile.write(body)


def _gunicorn_json_errors() -> None:
    """gunicorn answers malformed requests itself with an HTML page (``util.write_error``);
    make that the project's JSON error shape in the processes ``vintner serve`` starts."""
    from gunicorn import util

    def write_error(sock: Any, status_int: int, reason: str, mesg: str) -> None:
        body = protocol_error_body(status_int, mesg or reason)
        head = (f"HTTP/1.1 {status_int} {reason}\r\nConnection: close\r\n"
                f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n")
        util.write_nonblock(sock, head.encode("latin1") + body)

    util.write_error = write_error


def run_development(app: Any, host: str, port: int) -> None:
    """Flask's development server: threaded, no reloader (the sweep thread and the printed
    token would otherwise run twice)."""
    app.run(host=host, port=port, threaded=True, use_reloader=False, debug=False,
            request_handler=JsonErrorRequestHandler)


def run_production(host: str, port: int, workers: int, threads: int, timeout: int) -> None:
    """gunicorn with ``gthread`` workers; each worker process builds its own app (database
    pools and the sweep thread must not be shared across a fork)."""
    try:
        from gunicorn.app.base import BaseApplication
    except ImportError:
        raise CliError("gunicorn is not installed: pip install 'vintner[production]'") from None

    class VintnerServer(BaseApplication):  # type: ignore[misc]
        def __init__(self, options: dict[str, Any]) -> None:
            self.options = options
            super().__init__()

        def load_config(self) -> None:
            for key, value in self.options.items():
                self.cfg.set(key, value)

        def load(self) -> Any:
            from vintner.factory import create_app

            # the schema was migrated once, before the workers started
            return create_app({"auto_migrate": False})

    _gunicorn_json_errors()
    VintnerServer({
        "bind": f"{host}:{port}", "workers": workers, "threads": threads,
        "worker_class": "gthread", "timeout": timeout, "accesslog": "-",
    }).run()


@click.command("serve")
@click.option("--host", help="Address to listen on (default: 127.0.0.1 in development, "
                             "0.0.0.0 in production).")
@click.option("--port", type=click.IntRange(1, 65535), default=DEFAULT_PORT, show_default=True)
@click.option("--workers", type=click.IntRange(min=1), default=2, show_default=True,
              help="Production: gunicorn worker processes.")
@click.option("--threads", type=click.IntRange(min=1), default=8, show_default=True,
              help="Production: threads per worker process.")
@click.option("--timeout", type=click.IntRange(min=0), default=120, show_default=True,
              help="Production: gunicorn worker timeout in seconds (log streams are long).")
def serve_command(host: str | None, port: int, workers: int, threads: int,
                  timeout: int) -> None:
    """Run the Vintner server (migrating the database first if needed)."""
    from vintner.config import development_admin_token, load_settings

    settings = load_settings()
    if settings.development:
        if settings.admin_token is None:
            token, created = development_admin_token(settings)
            where = f"{settings.instance_path}/admin-token"
            click.echo(f"Operator token ({'generated and stored in' if created else 'from'} "
                       f"{where}): {token}")
        from vintner.factory import create_app

        app = create_app()  # migrates (auto_migrate) and starts the sweep thread
        run_development(app, host or "127.0.0.1", port)
        return
    if settings.auto_migrate:
        from vintner.registry import load_repository

        repo = load_repository(settings.database_url, {})
        try:
            repo.migrate()
        finally:
            repo.close()
    run_production(host or "0.0.0.0", port, workers, threads, timeout)
