"""The store's hot-path statements, built once per process.

Building a SQLAlchemy statement costs more than running it on SQLite, and these run on every
page view and submission, so they are compiled here at import with bound parameters.
"""

from __future__ import annotations

from functools import cache
from typing import Any

import sqlalchemy as sa

from tidekit.rating import _schema as t

__all__ = ["HOT", "insert_rating"]


def _hot_statements() -> dict[str, Any]:
    a, i, rt, r, sess = t.assignments.c, t.items.c, t.ratings, t.raters.c, t.sessions.c
    done = (sa.select(sa.func.count()).select_from(rt).where(rt.c.rater_id == sa.bindparam("rater_id"))
            .scalar_subquery().label("done"))
    return {
        "rater": sa.select(r.id, r.bundle_id, r.demographics_at, r.completed_at, r.pid_hash, r.simulated, sess.kind)
        .select_from(t.sessions.join(t.raters, r.id == sess.rater_id))
        .where(sess.token_hash == sa.bindparam("session_hash")),
        "next_item": sa.select(a.id, a.item_id, a.position, i.context, i.response, i.is_attention_check,
                               i.expected, i.system_code, done)
        .join(t.items, i.id == a.item_id)
        .where(a.bundle_id == sa.bindparam("bundle_id"), ~sa.exists().where(rt.c.assignment_id == a.id))
        .order_by(a.position).limit(1),
        "progress": sa.select(sa.func.count()).select_from(rt).where(rt.c.rater_id == sa.bindparam("rater_id")),
        "owned": sa.select(a.item_id).where(a.id == sa.bindparam("assignment_id"),
                                            a.bundle_id == sa.bindparam("bundle_id")),
        "complete": t.raters.update().where(r.id == sa.bindparam("rater_id"), r.completed_at.is_(None))
        .values(completed_at=sa.bindparam("now"), client_hash=None),  # finished: the address is forgotten
    }


HOT = _hot_statements()


@cache
def insert_rating(dialect: str) -> Any:
    """INSERT a rating unless its assignment already has one (a double submission)."""
    # the PostgreSQL dialect costs about 70 ms to import; a SQLite study never needs it
    from sqlalchemy.dialects import postgresql, sqlite

    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    return insert(t.ratings).on_conflict_do_nothing(index_elements=["assignment_id"]).returning(t.ratings.c.id)
