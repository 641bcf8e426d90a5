"""The Celery side of a census: broker URLs, the app's delivery settings, time limits.

Delivery guarantees come from three settings working together:

* late acknowledgement (`task_acks_late`): a message is acknowledged when its task ends, so
  a worker killed mid-task (kill -9, a lost machine) leaves it unacknowledged and the broker
  hands it to another worker: RabbitMQ as soon as the connection drops, Redis once the
  visibility timeout has passed;
* `task_reject_on_worker_lost` and `task_acks_on_timeout = False`: a pool process that dies
  or overruns the hard time limit puts its message back instead of dropping it;
* one message reserved per process (`worker_prefetch_multiplier = 1`), and a Redis visibility
  timeout longer than a reserved message can wait plus the hard time limit, so Redis never
  redelivers a task that is still running.

Whatever is redelivered, the store keeps every row once (store/census.py).  The time limits
all derive from the census's task deadline: the task stops itself at the deadline (keeping
what it stored, and retrying the rest); the soft and hard limits are backstops for a task
stuck past it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

from exwatch.errors import BrokerError, UsageError

if TYPE_CHECKING:
    from celery import Celery

TASK_NAME = "exwatch.census.scan_range"
DEFAULT_QUEUE = "exwatch"
DEFAULT_DEADLINE = 600.0
_SCHEMES = {"redis": "redis", "rediss": "redis", "amqp": "amqp", "amqps": "amqp", "pyamqp": "amqp"}
_CONNECT_TIMEOUT = 10


@dataclass(frozen=True, slots=True)
class TimeLimits:
    """Seconds, all derived from a task deadline (see the module docstring)."""

    deadline: float

    @property
    def soft(self) -> int:
        return math.ceil(self.deadline * 1.1) + 1

    @property
    def hard(self) -> int:
        return math.ceil(self.deadline * 1.2) + 2

    @property
    def visibility(self) -> int:
        # A reserved message may wait for a process to finish its task before it runs.
        return 2 * self.hard + 1


def broker_kind(url: str) -> str:
    """ "redis" or "amqp" for a broker URL; UsageError for anything else."""
    scheme = url.split("://", 1)[0].lower() if "://" in url else ""
    kind = _SCHEMES.get(scheme)
    if kind is None:
        raise UsageError(
            f"--broker {display_url(url)!r}: give a Redis (redis://host:6379/0) or RabbitMQ"
            " (amqp://user:password@host:5672//) URL"
        )
    return kind


def display_url(url: str) -> str:
    """The URL without its password, for messages and for the store."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<unparsable URL>"
    if parts.password is None:
        return url
    host = parts.hostname or ""
    if parts.port is not None:
        host = f"{host}:{parts.port}"
    user = f"{parts.username}@" if parts.username else ""
    return urlunsplit((parts.scheme, user + host, parts.path, parts.query, parts.fragment))


def transport_options(url: str, deadline: float) -> dict[str, Any]:
    if broker_kind(url) == "redis":
        visibility = TimeLimits(deadline).visibility
        return {
            "visibility_timeout": visibility,
            # Look for abandoned messages often enough that a lost task waits about the
            # visibility timeout, not ten times it (kombu's default sweep period).
            "unacked_restore_interval": max(1.0, min(10.0, visibility / 10)),
            "unacked_restore_throttle": 1,
            "socket_connect_timeout": _CONNECT_TIMEOUT,
        }
    # Publisher confirms: submit returns only once RabbitMQ holds every task.
    return {"confirm_publish": True, "connect_timeout": _CONNECT_TIMEOUT}


def celery_app(url: str, *, deadline: float = DEFAULT_DEADLINE) -> Celery:
    """A Celery app on this broker with exwatch's delivery settings."""
    broker_kind(url)
    from celery import Celery

    app = Celery("exwatch", broker=url, set_as_current=False)
    app.conf.update(
        task_serializer="json",
        accept_content=["json"],
        task_ignore_result=True,  # the store holds every outcome; no result backend
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        task_acks_on_timeout=False,
        worker_prefetch_multiplier=1,
        worker_cancel_long_running_tasks_on_connection_loss=True,
        broker_connection_retry_on_startup=True,
        broker_transport_options=transport_options(url, deadline),
        task_default_queue=DEFAULT_QUEUE,
        worker_hijack_root_logger=True,
    )
    return app


def check_broker(app: Celery) -> None:
    """Fail now, with a clear message, when the broker cannot be reached."""
    url = display_url(str(app.conf.broker_url))
    try:
        with app.connection_for_write() as conn:
            conn.ensure_connection(max_retries=1, timeout=_CONNECT_TIMEOUT)
    except Exception as exc:  # kombu raises many types (OperationalError, socket, amqp)
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise BrokerError(f"cannot reach the broker {url}: {reason}") from None


__all__ = [
    "DEFAULT_DEADLINE",
    "DEFAULT_QUEUE",
    "TASK_NAME",
    "TimeLimits",
    "broker_kind",
    "celery_app",
    "check_broker",
    "display_url",
    "transport_options",
]
