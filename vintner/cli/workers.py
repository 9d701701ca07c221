"""``vintner workers …``: register, list, revoke, rotate-token."""

from __future__ import annotations

import json
import uuid

import click

from vintner.api import serializers
from vintner.api.schemas import RegisterWorkerSchema
from vintner.cli.context import (
    CliError,
    echo_json,
    echo_listing,
    json_option,
    load_with,
    services,
)
from vintner.domain import workers
from vintner.domain.model import WorkerMode, utcnow
from vintner.domain.workers import Registration
from vintner.ports.repository import Page


@click.group("workers")
def workers_group() -> None:
    """Workers (Tendril agents): register, list, revoke, rotate tokens."""


def _echo_registration(reg: Registration, as_json: bool, verb: str) -> None:
    svc = services()
    worker = serializers.worker(reg.worker, utcnow(), svc.timings)
    if as_json:
        echo_json({"worker_id": str(reg.worker.id), "worker_token": reg.token, "worker": worker})
        return
    click.echo(f"{verb} worker {reg.worker.name}")
    click.echo(f"  id:    {reg.worker.id}")
    click.echo(f"  token: {reg.token}")
    click.echo("The token is shown only this once: store it now (the agent reads it from "
               "VINTNER_WORKER_TOKEN).")


@workers_group.command("register")
@click.argument("name")
@click.option("--mode", type=click.Choice([m.value for m in WorkerMode]),
              default=WorkerMode.SELF_HOSTED.value, show_default=True)
@click.option("--cloud-identity", "cloud_identity_id", type=click.UUID,
              help="Bind the worker to one cloud identity (it then only claims its jobs).")
@click.option("--metadata", help="Worker metadata, a JSON object.")
@json_option
def register_command(name: str, mode: str, cloud_identity_id: uuid.UUID | None,
                     metadata: str | None, as_json: bool) -> None:
    """Register a worker; prints its id and token (the token is shown once)."""
    try:
        meta = json.loads(metadata) if metadata else {}
    except json.JSONDecodeError as exc:
        raise CliError(f"--metadata is not valid JSON: {exc}") from None
    body = load_with(RegisterWorkerSchema(), {"name": name, "mode": mode, "metadata": meta},
                     "worker")
    reg = workers.register(services().repository, name=body["name"], mode=WorkerMode(mode),
                           cloud_identity_id=cloud_identity_id, metadata=body["metadata"],
                           now=utcnow())
    _echo_registration(reg, as_json, "Registered")


@workers_group.command("list")
@click.option("--limit", type=click.IntRange(1, 1000), default=100, show_default=True)
@click.option("--offset", type=click.IntRange(min=0), default=0)
@json_option
def list_command(limit: int, offset: int, as_json: bool) -> None:
    """Workers (not revoked), with their status as the server sees it now."""
    svc = services()
    with svc.repository.transaction(readonly=True) as tx:
        items, total = tx.list_workers(Page(limit=limit, offset=offset))
    now = utcnow()
    rows = [serializers.worker(w, now, svc.timings) for w in items]
    echo_listing("workers", rows, total, limit, offset, as_json=as_json,
                 columns=[("id", "ID"), ("name", "NAME"), ("mode", "MODE"), ("status", "STATUS"),
                           ("version", "VERSION"), ("last_heartbeat", "LAST HEARTBEAT")],
                 empty="No workers.")


@workers_group.command("revoke")
@click.argument("worker_id", type=click.UUID)
def revoke_command(worker_id: uuid.UUID) -> None:
    """Revoke a worker's token at once; the jobs it held are recovered."""
    workers.revoke(services().repository, worker_id, now=utcnow())
    click.echo(f"Revoked worker {worker_id}.")


@workers_group.command("rotate-token")
@click.argument("worker_id", type=click.UUID)
@json_option
def rotate_token_command(worker_id: uuid.UUID, as_json: bool) -> None:
    """Give a worker a new token (printed once); the old one stops working."""
    reg = workers.rotate_token(services().repository, worker_id)
    _echo_registration(reg, as_json, "New token for")
