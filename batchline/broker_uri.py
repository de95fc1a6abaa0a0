"""The broker URL that batchline's worker, beat and Flower banners print: masked only where there is a password.

kombu's `Connection.as_uri` puts its mask in place of the password whether or not there is one, so a Redis broker
with no password shows as `redis://:**@127.0.0.1:6379/0`, as if it had one. Here a connection with no password is
shown as it is; one with a password keeps kombu's mask.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from celery.app.amqp import AMQP as CeleryAMQP
from kombu import Connection as KombuConnection


class Connection(KombuConnection):
    def as_uri(
        self, include_password: bool = False, mask: str = "**", getfields: Callable[..., Any] | None = None
    ) -> str:
        # Only where kombu builds the URL from its parsed fields: a transport that keeps the URL whole (can_parse_url)
        # may hold credentials in it that `info()` does not name.
        if not include_password and not self.transport.can_parse_url and not self.uri_prefix:
            include_password = not self.info().get("password")  # nothing to hide
        if getfields is None:  # kombu's own default, which its signature cannot say
            return str(super().as_uri(include_password, mask))
        return str(super().as_uri(include_password, mask, getfields))


class AMQP(CeleryAMQP):
    """Celery's messaging layer with the `Connection` above (`Celery(amqp=...)`)."""

    Connection = Connection
