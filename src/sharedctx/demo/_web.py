"""``sharedctx demo --web``: the run's session in the browser, served from the demo's
own process (a memory session lives there), and its checkpoint decided on the page.

With ``--interactive``, the checkpoint's automatic proposal is written to
``checkpoint:cp-1:proposal``; the person sets that entry on the page (its
``decision``: approve, reject or revise, and ``notes``), and the run goes on with
that decision. A value that is not a decision is answered in
``checkpoint:cp-1:problem``, and the run waits for the next one. Needs the ``web``
extra (Starlette, uvicorn).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from types import TracebackType
from typing import Any, Self
from urllib.parse import quote

from pydantic import ValidationError

from sharedctx import CheckpointDecision, InvalidArgumentError, SharedContext
from sharedctx.backends import Backend
from sharedctx.demo._pipeline import CHECKPOINT, Decide

__all__ = ["PROBLEM", "PROPOSAL", "WebView"]

PROPOSAL = f"checkpoint:{CHECKPOINT}:proposal"
PROBLEM = f"checkpoint:{CHECKPOINT}:problem"


class WebView:
    """The web view of the demo's backend on a thread of this process, on loopback,
    values settable only when the checkpoint is decided on the page."""

    def __init__(self, backend: str | Backend, port: int, *, decide_on_page: bool) -> None:
        try:
            from sharedctx.web import WebServer, create_app
        except ImportError:
            raise InvalidArgumentError(
                "--web needs the web extra: pip install 'sharedctx[web]'"
            ) from None
        self.server = WebServer(create_app(backend, allow_writes=decide_on_page), port=port)

    def page_url(self, session_id: str) -> str:
        """The address of a session's page."""
        return f"{self.server.url}sessions/{quote(session_id, safe='')}"

    def __enter__(self) -> Self:
        self.server.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.server.stop()


def page_decider(context: SharedContext, note: Callable[[str], Any]) -> Decide:
    """A ``Decide`` that waits for the person's decision, set on the page."""

    async def decide(proposal: CheckpointDecision) -> CheckpointDecision:
        proposed = await context.aset(
            PROPOSAL,
            {"decision": proposal.decision, "notes": proposal.notes, "decided_by": "page"},
            source="checkpoint",
            tags=["phase:checkpoint", CHECKPOINT],
        )
        note(
            f"checkpoint {CHECKPOINT}: decide on the page: set {PROPOSAL} (decision: "
            "approve, reject or revise)"
        )
        with context.watch(PROPOSAL, since=proposed.revision) as changes:
            async for event in changes:
                if event.action != "set" or event.entry.version <= proposed.version:
                    continue
                try:
                    return _decision(event.entry.value)
                except ValidationError as exc:
                    problem = "; ".join(
                        f"{'.'.join(map(str, error['loc'])) or 'value'}: {error['msg']}"
                        for error in exc.errors()
                    )
                    await context.aset(
                        PROBLEM,
                        f"not a decision ({problem}): set {PROPOSAL} again",
                        source="checkpoint",
                        tags=["phase:checkpoint", CHECKPOINT],
                    )
        raise asyncio.CancelledError  # the watch ended: the context is closing

    return decide


def _decision(value: Any) -> CheckpointDecision:
    fields = value if isinstance(value, dict) else {"decision": value}
    return CheckpointDecision.model_validate(
        {
            "checkpoint_id": CHECKPOINT,
            "decision": fields.get("decision"),
            "notes": fields.get("notes", ""),
            "decided_by": fields.get("decided_by") or "page",
        }
    )
