"""Workspace sessions: a browser signs in once with an API key and then holds an HttpOnly, SameSite=Strict cookie.

Only the cookie's SHA-256 is stored (as for keys). Each session has its own CSRF token, which every write must carry
in its form; a session expires after `session_minutes`, and one whose key was revoked ends at its next request (the
key is read with the session, every time: a revocation must not wait for a cache).
"""

from __future__ import annotations

import hmac
import secrets
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import delete, select
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from bazkhord.service.auth import Caller, KeyStore, hash_key, parse_scopes
from bazkhord.service.db import ApiKey, WorkspaceSession, utcnow

COOKIE = "bazkhord_session"


@dataclass(frozen=True)
class SignedIn:
    caller: Caller
    csrf: str
    session_id: int

    def csrf_ok(self, token: str | None) -> bool:
        return token is not None and hmac.compare_digest(token.encode(), self.csrf.encode())


class SessionStore:
    def __init__(self, engine: Engine, keys: KeyStore, minutes: int) -> None:
        self.engine, self.keys, self.minutes = engine, keys, minutes

    def sign_in(self, key: str) -> tuple[str, SignedIn] | None:
        """A new session's cookie value for a valid key with scope `report` (or `curate`, `admin`); None otherwise."""
        caller = self.keys.verify(key.strip())
        if caller is None or not (caller.allows("report") or caller.allows("curate")):
            return None
        token = secrets.token_urlsafe(32)
        now = utcnow()
        row = WorkspaceSession(token_sha256=hash_key(token), api_key_id=caller.id, csrf=secrets.token_urlsafe(24),
                               created_at=now, expires_at=now + timedelta(minutes=self.minutes))
        with Session(self.engine) as session, session.begin():
            session.execute(delete(WorkspaceSession).where(WorkspaceSession.expires_at < now))
            session.add(row)
            session.flush()
            return token, SignedIn(caller, row.csrf, row.id)

    def find(self, token: str | None) -> SignedIn | None:
        if not token or len(token) > 100:
            return None
        with Session(self.engine) as session:
            found = session.execute(
                select(WorkspaceSession, ApiKey).join(ApiKey, ApiKey.id == WorkspaceSession.api_key_id)
                .where(WorkspaceSession.token_sha256 == hash_key(token))).first()
            if found is None:
                return None
            row, key = found
            if row.expires_at <= utcnow() or key.revoked_at is not None:
                return None
            caller = Caller(key.id, key.name, parse_scopes(key.scopes), key.rate_per_minute)
            return SignedIn(caller, row.csrf, row.id)

    def sign_out(self, session_id: int) -> None:
        with Session(self.engine) as session, session.begin():
            session.execute(delete(WorkspaceSession).where(WorkspaceSession.id == session_id))

