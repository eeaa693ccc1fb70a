"""Per-connector sync checkpoints: the newest ``updated_at`` a connector has synced."""

from __future__ import annotations

from ..backends import backend_for, translated
from ..errors import ValidationError
from ..models import Checkpoint, bound_database
from . import inputs, writes


@translated("read")
def get_checkpoint(source: str) -> int | None:
    """The stored cursor for ``source``, or ``None``; a non-integer cursor raises CorruptValueError."""
    bound_database()
    inputs.checked_text(source, "source", empty=False)
    # The cursor alone: an updated_at another program stored oddly must not fail this read.
    row = Checkpoint.select(Checkpoint.cursor).where(Checkpoint.source == source).first()
    return None if row is None else row.cursor


@translated("write")
def clear_checkpoint(source: str) -> bool:
    """Forget ``source``'s cursor (its next sync starts from the beginning); False if it had none."""
    bound_database()
    inputs.checked_text(source, "source", empty=False)
    return bool(Checkpoint.delete().where(Checkpoint.source == source).execute())


@translated("write")
def set_checkpoint(source: str, cursor: int) -> None:
    """Store ``cursor`` (an integer, e.g. the newest ``updated_at`` synced) for ``source``."""
    db = bound_database()
    inputs.checked_text(source, "source", empty=False)
    if cursor is None:
        raise ValidationError("cursor must be an integer, got None")
    Checkpoint.cursor.db_value(cursor)  # validates type and range before anything is sent
    with backend_for(db).errors("write"):
        Checkpoint.insert(source=source, cursor=cursor, updated_at=writes.now()).on_conflict(
            conflict_target=[Checkpoint.source],
            preserve=[Checkpoint.cursor, Checkpoint.updated_at],
        ).execute()
