"""`python -m tunnel_server.cluster`: N tunnel-server nodes behind HAProxy, until SIGTERM.

stdout carries one line per node, `node RID port PORT pid PID` (again whenever a node is
restarted), then `haproxy port PORT pid PID` and `listening on ws://HOST:PORT` once HAProxy
sees every node healthy. Messages go to stderr.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import secrets
import signal
import sys
from collections.abc import Sequence

from tunnel_server.__main__ import build_parser as node_parser
from tunnel_server.__main__ import config_from_args
from tunnel_server.config import ServerConfig, ServerConfigError, is_loopback
from tunnel_server.exit_codes import EXIT_FAILURE, EXIT_OK, EXIT_USAGE

from .errors import ClusterError, ClusterReason
from .haproxy import Front, check_front, normal_routing_id
from .supervisor import Cluster, ClusterSettings

#: Node flags the cluster sets itself (by argparse dest, so abbreviations count too).
RESERVED_NODE_FLAGS = {
    "host": "--host",
    "port": "--port",
    "routing_id": "--routing-id",
    "tls_cert": "--tls-cert",
    "tls_key": "--tls-key",
    "proxy_protocol": "--proxy-protocol",
    "trusted_proxies": "--trusted-proxies",
}
MAX_NODES = 64


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m tunnel_server.cluster",
        usage="%(prog)s --nodes N --port P [options] [-- node flags…]",
        description="Run N tunnel-server nodes on loopback ports behind HAProxy on one port. "
        "Flags after -- go to every node (see python -m tunnel_server --help).",
    )
    add = p.add_argument
    add("--nodes", type=int, required=True, metavar="N", help=f"number of nodes (1..{MAX_NODES})")
    add("--port", type=int, required=True, metavar="P", help="HAProxy's public port")
    add("--host", default="127.0.0.1", help="HAProxy's address (default %(default)s)")
    add("--tls-cert", metavar="FILE", help="PEM certificate chain; HAProxy serves wss://")
    add("--tls-key", metavar="FILE", help="PEM private key for --tls-cert")
    add(
        "--insecure",
        action="store_true",
        help="allow plain ws:// on a non-loopback --host (only behind another TLS proxy)",
    )
    add(
        "--routing-ids",
        metavar="HEX,…",
        help="the nodes' routing IDs, comma-separated (default: distinct random ones)",
    )
    add(
        "--max-connections-per-ip",
        type=int,
        default=1000,
        metavar="N",
        help="open connections per client address across all nodes, enforced by HAProxy "
        "(%(default)s)",
    )
    add("--haproxy", metavar="PATH", help="the haproxy executable (default: found on PATH)")
    return p


def proxy_protocol_supported() -> bool:
    """Whether this tunnel_server's nodes accept PROXY protocol from trusted proxies."""
    return "--proxy-protocol" in node_parser().format_help()


def _routing_ids(text: str | None, count: int) -> tuple[str, ...]:
    if text is None:
        ids: set[str] = set()
        while len(ids) < count:
            ids.add(secrets.token_hex(3).upper())
        return tuple(sorted(ids))
    given = tuple(normal_routing_id(part.strip()) for part in text.split(","))
    if len(given) != count or len(set(given)) != count:
        raise ClusterError(
            ClusterReason.BAD_NODE_LIST,
            f"--routing-ids must list {count} distinct routing IDs, one per node.",
        )
    return given


class _Unset:
    """Default of the reserved node flags, so that any spelling of one is noticed."""


def _node_config(node_args: Sequence[str]) -> ServerConfig:
    """The node flags as a config; `ClusterError` if one sets what the cluster sets itself.

    Checked after argparse has resolved the flags, so `--rout` or `--port=1` count too.
    """
    parser = node_parser()
    unset = _Unset()
    parser.set_defaults(**dict.fromkeys(RESERVED_NODE_FLAGS, unset))
    args = parser.parse_args(list(node_args))
    taken = [flag for dest, flag in RESERVED_NODE_FLAGS.items() if getattr(args, dest) is not unset]
    if taken:
        raise ClusterError(
            ClusterReason.BAD_NODE_FLAGS,
            f"node flag {taken[0]} is set by the cluster: use the cluster's own "
            "--port/--host/--routing-ids/--tls-cert/--tls-key instead (the nodes always take "
            "PROXY v2 from HAProxy on loopback).",
        )
    defaults = node_parser().parse_args([])
    for dest in RESERVED_NODE_FLAGS:
        setattr(args, dest, getattr(defaults, dest))
    try:
        return config_from_args(args)
    except ServerConfigError as exc:
        raise ClusterError(ClusterReason.BAD_NODE_FLAGS, f"node flags: {exc}") from exc


def settings_from_args(args: argparse.Namespace, node_args: Sequence[str]) -> ClusterSettings:
    """Check the cluster's flags and the node flags; `ClusterError` says which to fix."""
    if not 1 <= args.nodes <= MAX_NODES:
        raise ClusterError(ClusterReason.BAD_NODE_FLAGS, f"--nodes must be 1..{MAX_NODES}.")
    if not 1 <= args.port <= 65535:
        raise ClusterError(ClusterReason.BAD_NODE_FLAGS, "--port must be 1..65535.")
    if (args.tls_cert is None) != (args.tls_key is None):
        raise ClusterError(
            ClusterReason.BAD_NODE_FLAGS, "--tls-cert and --tls-key must be given together."
        )
    if args.tls_cert is None and not args.insecure and not is_loopback(args.host):
        raise ClusterError(
            ClusterReason.BAD_NODE_FLAGS,
            f"refusing plain ws:// on non-loopback host {args.host!r}: give --tls-cert and "
            "--tls-key, or pass --insecure behind another TLS proxy.",
        )
    for path in (args.tls_cert, args.tls_key):
        try:
            with open(path or os.devnull, "rb"):
                pass
        except OSError as exc:
            raise ClusterError(
                ClusterReason.BAD_NODE_FLAGS,
                f"cannot read {path!r} ({exc.strerror}): check --tls-cert and --tls-key.",
            ) from exc
    node = _node_config(node_args)
    # what HAProxy will get, checked now rather than after the nodes have started
    check_front(
        Front(
            map_path="rids.map",
            host=args.host,
            port=args.port,
            ttl=node.ttl,
            grace=node.grace,
            handshake_timeout=node.handshake_timeout,
            max_connections_per_ip=args.max_connections_per_ip,
        )
    )
    return ClusterSettings(
        routing_ids=_routing_ids(args.routing_ids, args.nodes),
        port=args.port,
        host=args.host,
        tls_cert=args.tls_cert,
        tls_key=args.tls_key,
        max_connections_per_ip=args.max_connections_per_ip,
        node_args=tuple(node_args),
        proxy_protocol=proxy_protocol_supported(),
        ttl=node.ttl,
        grace=node.grace,
        close_timeout=node.close_timeout,
        handshake_timeout=node.handshake_timeout,
        haproxy=args.haproxy,
    )


async def run(settings: ClusterSettings) -> int:
    """Start the cluster, run it until SIGTERM/SIGINT, drain it; a second signal cuts grace."""
    cluster = Cluster(settings, lambda line: print(line, flush=True))
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()

    def on_signal() -> None:
        if stop.is_set():
            cluster.cut_grace()
        stop.set()

    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, on_signal)
    try:
        starting = asyncio.ensure_future(cluster.start())
        stopped = asyncio.ensure_future(stop.wait())
        await asyncio.wait({starting, stopped}, return_when=asyncio.FIRST_COMPLETED)
        stopped.cancel()
        if not starting.done():  # stopped while starting: stop what has started
            starting.cancel()
            with contextlib.suppress(asyncio.CancelledError, ClusterError):
                await starting
            return EXIT_OK
        starting.result()
        print(f"listening on {cluster.url}", flush=True)
        await cluster.supervise(stop)
        return EXIT_OK
    except ClusterError as exc:
        print(f"error ({exc.reason.value}): {exc}", file=sys.stderr, flush=True)
        return EXIT_FAILURE
    finally:
        await cluster.stop()


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    node_args: list[str] = []
    if "--" in argv:
        cut = argv.index("--")
        argv, node_args = argv[:cut], argv[cut + 1 :]
    args = build_parser().parse_args(argv)
    try:
        settings = settings_from_args(args, node_args)
    except ClusterError as exc:
        print(f"error ({exc.reason.value}): {exc}", file=sys.stderr)
        return EXIT_USAGE
    return asyncio.run(run(settings))


if __name__ == "__main__":
    sys.exit(main())
