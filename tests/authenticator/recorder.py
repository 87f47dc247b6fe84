"""An approve callback for tests that records what the phone's user was asked."""

from __future__ import annotations

from typing import Any

from hybrid.authenticator import ApprovalRequest


class Recorder:
    """Records each ApprovalRequest and answers `answer` (anything, to test odd callbacks)."""

    def __init__(self, answer: Any = True) -> None:
        self.answer = answer
        self.requests: list[ApprovalRequest] = []

    def __call__(self, request: ApprovalRequest) -> Any:
        self.requests.append(request)
        return self.answer
