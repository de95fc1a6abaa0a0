"""The store's Redis client from its URL: one Redis, a Redis Cluster, or a Sentinel-watched master, in TLS or not.

| URL | client |
|---|---|
| `redis://[[user]:password@]host[:port][/db]`, `rediss://...` (TLS), `unix://path` | one Redis (`redis.Redis`) |
| `redis+cluster://[[user]:password@]host:port[,host:port...]`, `rediss+cluster://...` | `redis.cluster.RedisCluster` |
| `redis+sentinel://[[user]:password@]host:port[,host:port...]/service[/db]`, `rediss+sentinel://...` | the master
  Sentinel names for `service` (`redis.sentinel.Sentinel.master_for`), found again after a failover |

A plain `redis://` or `rediss://` URL with the setting `redis_cluster` is a cluster URL too. Query options are
redis-py's (`?ssl_cert_reqs=required&ssl_ca_certs=/etc/ssl/ca.pem`, `socket_timeout=5`, ...); a Sentinel URL also takes
`sentinel_password` (Sentinel's own password when it has one: the URL's credentials are the master's).
"""

from __future__ import annotations

from typing import Any, cast
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import redis
from redis.cluster import ClusterNode, RedisCluster
from redis.connection import parse_url
from redis.sentinel import Sentinel

from .errors import SettingsError

PLAIN = ("redis://", "rediss://", "unix://")
CLUSTER = ("redis+cluster://", "rediss+cluster://")
SENTINEL = ("redis+sentinel://", "rediss+sentinel://")
SCHEMES = PLAIN + CLUSTER + SENTINEL
# Every client keeps idle connections alive and checks them before use, as the single-Redis client always has.
OPTIONS: dict[str, Any] = {"health_check_interval": 30, "socket_keepalive": True}


def is_cluster_url(url: str, cluster: bool = False) -> bool:
    """Whether `url` (with the setting `redis_cluster`) names a Redis Cluster."""
    return url.startswith(CLUSTER) or (cluster and url.startswith(("redis://", "rediss://")))


def store_client(url: str, cluster: bool = False) -> redis.Redis:  # a RedisCluster passes for one: see below
    """The client for the store at `url` (a RedisCluster duck-types the commands the store uses: see
    `store_cluster.ClusterStore` for what it changes)."""
    if is_cluster_url(url, cluster):
        return cast(redis.Redis, cluster_client(url))
    if url.startswith(SENTINEL):
        return sentinel_client(url)
    if cluster:
        raise SettingsError("BATCHLINE_REDIS_CLUSTER needs a redis:// or rediss:// store URL (a node of the cluster).")
    return redis.Redis.from_url(url, **OPTIONS)


def cluster_client(url: str) -> Any:
    _, hosts, options = _split(url)
    if options.get("db", 0) != 0:
        raise SettingsError("A Redis Cluster store URL cannot name a database: a cluster has only database 0.")
    options.pop("db", None)
    nodes = [ClusterNode(host, port) for host, port in hosts]  # type: ignore[no-untyped-call]
    return RedisCluster(startup_nodes=nodes, **options, **OPTIONS)


def sentinel_client(url: str) -> redis.Redis:
    tls, hosts, options = _split(url)
    path = [p for p in urlsplit(url).path.split("/") if p]
    if not path:
        raise SettingsError("A Sentinel store URL names the master's service: redis+sentinel://host:26379/mymaster")
    service = path[0]
    options["db"] = int(path[1]) if len(path) > 1 else 0
    sentinel_password = options.pop("sentinel_password", None)
    sentinel_options: dict[str, Any] = {"password": sentinel_password} if sentinel_password else {}
    # `ssl=True`, not an SSL connection class: the master's pool swaps in its own class that asks Sentinel for the
    # master's address, in its TLS form when told so.
    options.pop("connection_class", None)
    if tls:  # the sentinels speak TLS when the master does, with the same ssl_* options
        options["ssl"] = True
        sentinel_options.update({k: v for k, v in options.items() if k.startswith("ssl")})
    sentinel = Sentinel(hosts, sentinel_kwargs=sentinel_options, **OPTIONS)  # type: ignore[no-untyped-call]
    return cast(redis.Redis, sentinel.master_for(service, **options))  # type: ignore[no-untyped-call]


def _split(url: str) -> tuple[bool, list[tuple[str, int]], dict[str, Any]]:
    """Whether the URL asks for TLS, its `host:port` list, and redis-py's connection options from the rest of it."""
    scheme, _, rest = url.partition("://")
    tls = scheme.startswith("rediss")
    parts = urlsplit(f"x://{rest}")
    userinfo, _, hostlist = parts.netloc.rpartition("@")
    hosts: list[tuple[str, int]] = []
    for item in hostlist.split(","):
        host, _, port = item.strip().rpartition(":")
        if not host or not port.isdigit():
            raise SettingsError("A cluster or Sentinel store URL lists its nodes as host:port[,host:port...].")
        hosts.append((host, int(port)))
    query = dict(parse_qsl(parts.query))
    extra = {k: query.pop(k) for k in ("sentinel_password",) if k in query}
    # One node's URL in redis-py's own form gives every other option (credentials, TLS, timeouts) its own parsing.
    netloc = f"{userinfo}@{hostlist.split(',')[0].strip()}" if userinfo else hostlist.split(",")[0].strip()
    db = "/0" if scheme.endswith("sentinel") else parts.path
    plain = urlunsplit(("rediss" if tls else "redis", netloc, db, urlencode(query), ""))
    options: dict[str, Any] = parse_url(plain)  # type: ignore[no-untyped-call]
    for key in ("host", "port"):
        options.pop(key, None)
    return tls, hosts, {**options, **extra}
