"""Vector writes in progress: one row per note whose vectors are being written to the store.

`Library` registers a note (registry row `pending`) and inserts its row here in one transaction before it
writes any vector, and deletes it in the transaction that marks the note indexed. A row left behind
means the writer died (SIGKILL, power loss) between those two transactions: the store may hold some of
the note's element points, or all of them and its note point, with no `indexed` registry row.
`Library.sweep_interrupted_writes` removes those vectors on open; until then readers show only notes
whose registry row is `indexed` (app/library.py). Created by Alembic revision 0007.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Sequence

from sqlalchemy import String, delete, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Mapped, Session, mapped_column

from app.records.models import Base, UTCDateTime, utcnow


class StoreWriteRow(Base):
    """A note whose vectors a process started writing at `started_at` (UTC) and has not finished."""

    __tablename__ = "store_writes"

    note_id: Mapped[str] = mapped_column(String(200), primary_key=True)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


def begin(session: Session, note_ids: Sequence[str]) -> None:
    """Record that the vectors of `note_ids` are about to be written (started_at = now; idempotent)."""
    if not note_ids:
        return
    insert = pg_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert
    now = utcnow()
    stmt = insert(StoreWriteRow).values([{"note_id": n, "started_at": now} for n in dict.fromkeys(note_ids)])
    session.execute(stmt.on_conflict_do_update(index_elements=[StoreWriteRow.note_id],
                                               set_={"started_at": stmt.excluded.started_at}))


def end(session: Session, note_ids: Sequence[str]) -> None:
    """The writes of `note_ids` finished (or their vectors were removed again)."""
    if note_ids:
        session.execute(delete(StoreWriteRow).where(StoreWriteRow.note_id.in_(list(note_ids))))


def interrupted(session: Session, older_than_s: float = 0.0, limit: int = 1000) -> list[str]:
    """Note ids whose write started at least `older_than_s` seconds ago (oldest first, at most `limit`)."""
    cutoff = utcnow() - timedelta(seconds=older_than_s)
    rows = session.scalars(select(StoreWriteRow.note_id).where(StoreWriteRow.started_at <= cutoff)
                           .order_by(StoreWriteRow.started_at, StoreWriteRow.note_id).limit(limit))
    return list(rows)
