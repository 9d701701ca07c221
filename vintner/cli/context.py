"""What every ``vintner`` command shares: the configured services, error reporting, output.

Commands talk to the domain services directly through the configured repository (not over
HTTP). The services are built lazily, on the first command that needs them, so ``vintner
--help`` and ``vintner agent`` work whatever the server's configuration says:

* run as ``vintner …`` — settings from :func:`vintner.config.load_settings` (TOML file,
  ``VINTNER_*`` environment), backends from :func:`vintner.factory.build_services`;
* run as ``flask --app app vintner …`` — the services of the app Flask's CLI loaded.

Errors: a configuration error is one line on stderr and exit status 2; a domain error (not
found, conflict, invalid input) is ``Error: <message>`` and exit status 1. No tracebacks.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, TypeVar

import click
from marshmallow import Schema, ValidationError

from vintner.api import serializers
from vintner.errors import ConfigError, VintnerError
from vintner.services import Services

F = TypeVar("F", bound=Callable[..., Any])


class CliError(click.ClickException):
    """A domain or input error: ``Error: <message>`` (plus field details), exit status 1."""

    exit_code = 1


class ConfigProblem(click.ClickException):
    """A configuration error: one line, exit status 2."""

    exit_code = 2

    def show(self, file: Any = None) -> None:
        click.echo(f"vintner: configuration error: {self.message}", err=True)


def _flatten(messages: Any, prefix: str = "") -> list[str]:
    """marshmallow / VintnerError field messages → ``["field: message", ...]``."""
    if isinstance(messages, Mapping):
        out: list[str] = []
        for key, value in messages.items():
            out.extend(_flatten(value, f"{prefix}.{key}" if prefix else str(key)))
        return out
    if isinstance(messages, list) and all(isinstance(m, str) for m in messages):
        return [f"{prefix}: {m}" if prefix else m for m in messages]
    if isinstance(messages, list):
        out = []
        for index, value in enumerate(messages):
            out.extend(_flatten(value, f"{prefix}.{index}" if prefix else str(index)))
        return out
    return [f"{prefix}: {messages}" if prefix else str(messages)]


def domain_error(exc: VintnerError) -> CliError:
    details = _flatten(exc.errors) if exc.errors else []
    # the field messages repeat the sentence when there is only one; keep the output short
    lines = [exc.message, *(f"  {d}" for d in details if len(details) > 1)]
    return CliError("\n".join(lines))


def translate_errors(invoke: Callable[[], Any]) -> Any:
    """Run ``invoke`` turning the project's errors into click exceptions."""
    try:
        return invoke()
    except ConfigError as exc:
        raise ConfigProblem(exc.message) from None
    except VintnerError as exc:
        raise domain_error(exc) from None


def load_with(schema: Schema, data: Any, what: str) -> dict[str, Any]:
    """Validate ``data`` with one of the API's request schemas, so the CLI accepts exactly
    what the API accepts."""
    try:
        return schema.load(data)
    except ValidationError as exc:
        details = _flatten(exc.messages)
        raise CliError("\n".join([f"Invalid {what}:", *(f"  {d}" for d in details)])) from None


class CliState:
    """Per-invocation state: the lazily built services (see the module docstring)."""

    def __init__(self) -> None:
        self._services: Services | None = None
        self._owned = False

    def services(self) -> Services:
        if self._services is None:
            self._services = self._flask_services() or self._build()
        return self._services

    @staticmethod
    def _flask_services() -> Services | None:
        from flask.cli import ScriptInfo

        ctx = click.get_current_context(silent=True)
        info = ctx.find_object(ScriptInfo) if ctx is not None else None
        if info is None:
            return None
        from vintner.services import EXTENSION_KEY

        return info.load_app().extensions[EXTENSION_KEY]

    def _build(self) -> Services:
        from vintner.config import load_settings
        from vintner.factory import build_services

        services = build_services(load_settings())
        self._owned = True
        return services

    def close(self) -> None:
        if self._services is not None and self._owned:
            self._services.close()
        self._services = None


STATE_KEY = "vintner.cli.state"


def state() -> CliState:
    """The :class:`CliState` of the running command (created on first use; ``Context.meta`` is
    shared by every nested context, and ``ctx.obj`` stays Flask's ScriptInfo when there is
    one)."""
    ctx = click.get_current_context()
    found = ctx.meta.get(STATE_KEY)
    if found is None:
        found = ctx.meta[STATE_KEY] = CliState()
        ctx.find_root().call_on_close(found.close)
    return found


def services() -> Services:
    return state().services()


# -- output ---------------------------------------------------------------------------------


def json_option(f: F) -> F:
    return click.option("--json", "as_json", is_flag=True,
                        help="Print JSON (the API's shapes) instead of text.")(f)


def echo_json(value: Any) -> None:
    click.echo(json.dumps(value, indent=2, ensure_ascii=False))


def echo_table(rows: Sequence[Mapping[str, Any]], columns: Sequence[tuple[str, str]],
               empty: str = "(none)") -> None:
    """A plain aligned table; ``columns`` = (key, heading)."""
    if not rows:
        click.echo(empty)
        return

    def cell(value: Any) -> str:
        if value is None:
            return "-"
        if isinstance(value, list | tuple):
            return ",".join(str(v) for v in value) or "-"
        return str(value)

    texts = [[cell(row.get(key)) for key, _ in columns] for row in rows]
    widths = [max(len(h), *(len(t[i]) for t in texts)) for i, (_, h) in enumerate(columns)]
    click.echo("  ".join(h.ljust(w) for (_, h), w in zip(columns, widths, strict=True)).rstrip())
    for line in texts:
        click.echo("  ".join(t.ljust(w) for t, w in zip(line, widths, strict=True)).rstrip())


def echo_page_footer(shown: int, total: int, offset: int) -> None:
    if shown < total:
        click.echo(f"({shown} shown, {offset + 1}-{offset + shown} of {total}; "
                   "use --limit/--offset for more)")


def echo_listing(plural: str, rows: list[dict[str, Any]], total: int, limit: int, offset: int,
                 *, as_json: bool, columns: Sequence[tuple[str, str]], empty: str) -> None:
    """A listing as the API returns it (``--json``), or as a table with a paging footer."""
    if as_json:
        echo_json(serializers.listing(plural, rows, total, limit, offset))
        return
    echo_table(rows, columns, empty=empty)
    echo_page_footer(len(rows), total, offset)


def echo_fields(pairs: Iterable[tuple[str, Any]]) -> None:
    items = list(pairs)
    width = max((len(k) for k, _ in items), default=0)
    for key, value in items:
        click.echo(f"{key + ':':<{width + 1}} {'-' if value is None else value}")
