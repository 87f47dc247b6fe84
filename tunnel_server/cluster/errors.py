"""Why a cluster could not start or keep running, as data plus advice."""

from __future__ import annotations

import enum

from hybrid.errors import HybridError


class ClusterReason(enum.Enum):
    HAPROXY_MISSING = "haproxy_missing"
    PORT_TAKEN = "port_taken"
    BAD_NODE_LIST = "bad_node_list"
    BAD_NODE_FLAGS = "bad_node_flags"
    NODE_FAILED = "node_failed"
    HAPROXY_FAILED = "haproxy_failed"
    NOT_HEALTHY = "not_healthy"
    CANNOT_WRITE = "cannot_write"


class ClusterError(HybridError):
    """The cluster could not start or lost HAProxy; `reason` says which, the message what to do."""

    def __init__(self, reason: ClusterReason, message: str) -> None:
        super().__init__(message)
        self.reason = reason
