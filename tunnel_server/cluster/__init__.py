"""Many tunnel-server nodes behind HAProxy: configuration generation and a supervisor."""

from __future__ import annotations

from .errors import ClusterError, ClusterReason
from .haproxy import Front, HaproxyFiles, Node, render

__all__ = ["ClusterError", "ClusterReason", "Front", "HaproxyFiles", "Node", "render"]
