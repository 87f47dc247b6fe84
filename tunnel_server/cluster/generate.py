"""`python -m tunnel_server.cluster.generate`: HAProxy and node files from a node list.

The node list is the one source of truth for a production cluster (systemd units, one per
node): one line per node, `ROUTING_ID HOST:PORT`, `#` starts a comment. From it this writes

- `haproxy.cfg`: the HAProxy configuration (see `tunnel_server.cluster.haproxy`);
- `rids.map`: routing ID → backend, installed where `--map-path` says;
- `nodes/RID.env`: `HOST=` and `PORT=` for the `tunnel-server@RID.service` template unit.

Adding a node: add its line, generate again, install the files, start its unit, then reload
HAProxy (live tunnels stay on the old HAProxy worker until they end).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from tunnel_server.exit_codes import EXIT_FAILURE, EXIT_OK, EXIT_USAGE

from .errors import ClusterError, ClusterReason
from .haproxy import Front, HaproxyFiles, Node, normal_routing_id, render


def parse_node_list(text: str) -> list[Node]:
    """Nodes from `RID HOST:PORT` lines; `ClusterError` names the first bad line."""
    nodes = []
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        parts = line.split()
        host, sep, port = parts[-1].rpartition(":") if len(parts) == 2 else ("", "", "")
        if not sep or not port.isdigit():
            raise ClusterError(
                ClusterReason.BAD_NODE_LIST,
                f"node list line {number} is {raw.strip()!r}: write 'ROUTING_ID HOST:PORT', "
                "e.g. '0A0B0C 127.0.0.1:8101'.",
            )
        nodes.append(Node(normal_routing_id(parts[0]), host.strip("[]"), int(port)))
    return nodes


def node_env(node: Node) -> str:
    return f"HOST={node.host}\nPORT={node.port}\n"


def write_files(out_dir: Path, nodes: Sequence[Node], files: HaproxyFiles) -> list[Path]:
    """Write the generated files under `out_dir`; return their paths."""
    (out_dir / "nodes").mkdir(parents=True, exist_ok=True)
    written = {
        out_dir / "haproxy.cfg": files.config,
        out_dir / "rids.map": files.rid_map,
    }
    for node in nodes:
        written[out_dir / "nodes" / f"{node.routing_id}.env"] = node_env(node)
    for path, text in written.items():
        path.write_text(text)
    return list(written)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m tunnel_server.cluster.generate",
        description="Write HAProxy's configuration, its routing-ID map and one env file per "
        "node from a node list (lines 'ROUTING_ID HOST:PORT').",
    )
    add = p.add_argument
    add("node_list", type=Path, help="the node list file")
    add("--out-dir", type=Path, required=True, help="directory for the generated files")
    add("--host", default="::", help="HAProxy's address (default %(default)s)")
    add("--port", type=int, default=443, help="HAProxy's port (default %(default)s)")
    add("--tls-pem", metavar="FILE", help="certificate chain + key in one PEM, for HAProxy")
    add(
        "--map-path",
        default="/etc/haproxy/cable-rids.map",
        help="where rids.map will be installed (default %(default)s)",
    )
    add("--stats-socket", metavar="PATH", help="HAProxy runtime API socket (admin level)")
    add("--ttl", type=float, default=120.0, help="the nodes' --ttl (default %(default)s)")
    add("--grace", type=float, default=10.0, help="the nodes' --grace (default %(default)s)")
    add(
        "--max-connections-per-ip",
        type=int,
        default=1000,
        metavar="N",
        help="open connections per client address across the cluster (%(default)s)",
    )
    add(
        "--max-connections",
        type=int,
        default=20000,
        metavar="N",
        help="client connections HAProxy accepts in total (%(default)s)",
    )
    add(
        "--no-proxy-protocol",
        action="store_false",
        dest="proxy_protocol",
        help="do not send PROXY v2 to the nodes (only for nodes without --proxy-protocol)",
    )
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        try:
            text = args.node_list.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            why = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
            raise ClusterError(
                ClusterReason.BAD_NODE_LIST,
                f"cannot read the node list {str(args.node_list)!r} ({why}).",
            ) from exc
        nodes = parse_node_list(text)
        front = Front(
            map_path=args.map_path,
            host=args.host,
            port=args.port,
            tls_pem=args.tls_pem,
            ttl=args.ttl,
            grace=args.grace,
            proxy_protocol=args.proxy_protocol,
            max_connections_per_ip=args.max_connections_per_ip,
            max_connections=args.max_connections,
            stats_socket=args.stats_socket,
        )
        files = render(nodes, front)
    except ClusterError as exc:
        print(f"error ({exc.reason.value}): {exc}", file=sys.stderr)
        return EXIT_USAGE
    try:
        written = write_files(args.out_dir, nodes, files)
    except OSError as exc:
        error = ClusterError(
            ClusterReason.CANNOT_WRITE,
            f"cannot write under --out-dir {str(args.out_dir)!r} ({exc.strerror}: "
            f"{exc.filename}): give a directory you may write to.",
        )
        print(f"error ({error.reason.value}): {error}", file=sys.stderr)
        return EXIT_FAILURE
    for path in written:
        print(os.fspath(path))
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
