"""Ordered, named schema migrations for the rating store.

Each migration is a function registered with :func:`migration`; they run in the order they are
defined, once each, and the ``tidekit_migrations`` table records which have run. A migration
describes its own DDL (a snapshot), never ``_schema.py``, so old databases upgrade the same way
new ones are built. To change the schema: append a migration, then update ``_schema.py`` (a test
checks that a migrated database matches ``_schema.py``). Never edit a released migration.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import sqlalchemy as sa

from tidekit.scenarios import EMPATHY_FACTOR_IDS

__all__ = ["MIGRATIONS", "applied_migrations", "migrate"]

MigrationFn = Callable[[sa.Connection], None]
MIGRATIONS: list[tuple[str, MigrationFn]] = []

_ledger = sa.Table(
    "tidekit_migrations", sa.MetaData(),
    sa.Column("name", sa.String(100), primary_key=True),
    sa.Column("applied_at", sa.Double, nullable=False),
)


def migration(fn: MigrationFn) -> MigrationFn:
    """Register ``fn`` as the next migration, named after the function."""
    MIGRATIONS.append((fn.__name__.lstrip("_"), fn))
    return fn


@migration
def _m0001_initial(conn: sa.Connection) -> None:
    md = sa.MetaData()
    sa.Table("meta", md, sa.Column("key", sa.String(64), primary_key=True),
             sa.Column("value", sa.Text, nullable=False))
    sa.Table("systems", md, sa.Column("code", sa.String(16), primary_key=True),
             sa.Column("system", sa.String(200), nullable=False, unique=True),
             sa.Column("model", sa.String(200)), sa.Column("condition", sa.String(32)))
    sa.Table("items", md, sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
             sa.Column("item_id", sa.String(32), nullable=False, unique=True),
             sa.Column("conversation_id", sa.String(200)), sa.Column("persona_id", sa.String(200)),
             sa.Column("scenario_id", sa.String(200)),
             sa.Column("system_code", sa.String(16), sa.ForeignKey("systems.code")),
             sa.Column("context", sa.Text, nullable=False), sa.Column("response", sa.Text, nullable=False),
             sa.Column("is_attention_check", sa.Boolean, nullable=False), sa.Column("expected", sa.Integer))
    sa.Table("bundles", md, sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
             sa.Column("order_seed", sa.BigInteger, nullable=False),
             sa.Column("rater_id", sa.String(40), unique=True), sa.Column("claimed_at", sa.Double))
    sa.Table("assignments", md, sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
             sa.Column("bundle_id", sa.Integer, sa.ForeignKey("bundles.id"), nullable=False),
             sa.Column("item_id", sa.Integer, sa.ForeignKey("items.id"), nullable=False),
             sa.Column("position", sa.Integer, nullable=False), sa.Column("shown_at", sa.Double),
             sa.UniqueConstraint("bundle_id", "position", name="uq_assignment_position"))
    sa.Table("raters", md, sa.Column("id", sa.String(40), primary_key=True),
             sa.Column("session_hash", sa.String(64), nullable=False, unique=True),
             sa.Column("pid_hash", sa.String(64), unique=True),
             sa.Column("prolific_study_id", sa.String(64)),
             sa.Column("prolific_session_hash", sa.String(64)),
             sa.Column("bundle_id", sa.Integer, sa.ForeignKey("bundles.id"), nullable=False, unique=True),
             sa.Column("consented_at", sa.Double, nullable=False),
             *(sa.Column(name, sa.String(40)) for name in
               ("age_group", "gender", "education", "race_ethnicity", "mh_support_experience")),
             sa.Column("demographics_at", sa.Double), sa.Column("completed_at", sa.Double),
             sa.Column("simulated", sa.Boolean, nullable=False))
    sa.Table("ratings", md, sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
             sa.Column("assignment_id", sa.Integer, sa.ForeignKey("assignments.id"), nullable=False, unique=True),
             sa.Column("rater_id", sa.String(40), sa.ForeignKey("raters.id"), nullable=False),
             sa.Column("item_id", sa.Integer, sa.ForeignKey("items.id"), nullable=False),
             *(sa.Column(name, sa.SmallInteger, nullable=False) for name in
               ("empathy", *EMPATHY_FACTOR_IDS)),
             sa.Column("comment", sa.Text, nullable=False),
             sa.Column("submitted_at", sa.Double, nullable=False), sa.Column("duration_s", sa.Double))
    md.create_all(conn)


@migration
def _m0002_lookup_indexes(conn: sa.Connection) -> None:
    # the hot paths: a rater's next assignment, a rater's ratings, an item's ratings
    md = sa.MetaData()
    assignments = sa.Table("assignments", md, autoload_with=conn)
    ratings = sa.Table("ratings", md, autoload_with=conn)
    sa.Index("ix_assignments_bundle", assignments.c.bundle_id, assignments.c.position).create(conn)
    sa.Index("ix_ratings_rater", ratings.c.rater_id).create(conn)
    sa.Index("ix_ratings_item", ratings.c.item_id).create(conn)


@migration
def _m0003_drop_assignment_shown_at(conn: sa.Connection) -> None:
    # serving an item used to write its first-shown time; the page now carries a signed time and
    # the rating keeps duration_s, so GET /rate is read-only (a third of the writes under load)
    conn.execute(sa.text("ALTER TABLE assignments DROP COLUMN shown_at"))


@migration
def _m0004_sessions_slots_admin(conn: sa.Connection) -> None:
    # sessions: a rater may hold several (the consenting browser, a resumed device); only a
    # 'consent' session may withdraw. raters.session_hash stays as the first consent session.
    # client_hash caps unfinished slots per client address; pre_hash makes a double-clicked
    # "I agree" one rater. admin_sessions: random admin sign-ins that expire and can be revoked.
    md = sa.MetaData()
    raters = sa.Table("raters", md, autoload_with=conn)
    sessions = sa.Table("sessions", md, sa.Column("token_hash", sa.String(64), primary_key=True),
                        sa.Column("rater_id", sa.String(40), sa.ForeignKey("raters.id"), nullable=False),
                        sa.Column("kind", sa.String(16), nullable=False),
                        sa.Column("created_at", sa.Double, nullable=False))
    sa.Index("ix_sessions_rater", sessions.c.rater_id)
    sa.Table("admin_sessions", md, sa.Column("token_hash", sa.String(64), primary_key=True),
             sa.Column("created_at", sa.Double, nullable=False), sa.Column("expires_at", sa.Double, nullable=False))
    md.create_all(conn, tables=[md.tables["sessions"], md.tables["admin_sessions"]])
    conn.execute(sessions.insert().from_select(
        ["token_hash", "rater_id", "kind", "created_at"],
        sa.select(raters.c.session_hash, raters.c.id, sa.literal("consent"), raters.c.consented_at)))
    for name in ("client_hash", "pre_hash"):
        conn.execute(sa.text(f"ALTER TABLE raters ADD COLUMN {name} VARCHAR(64)"))
    conn.execute(sa.text("CREATE INDEX ix_raters_client ON raters (client_hash)"))
    conn.execute(sa.text("CREATE INDEX ix_raters_pre ON raters (pre_hash)"))


def applied_migrations(conn: sa.Connection) -> list[str]:
    """Names of the migrations already applied, in order."""
    if not sa.inspect(conn).has_table(_ledger.name):
        return []
    rows = conn.execute(sa.select(_ledger.c.name, _ledger.c.applied_at)).all()
    return [name for name, _ in sorted(rows, key=lambda r: (r[1], r[0]))]


def migrate(engine: sa.Engine, upto: str | None = None) -> list[str]:
    """Apply every pending migration (up to and including ``upto``), each in its own
    transaction; returns the names applied now. Safe to call on every start."""
    done_now: list[str] = []
    with engine.begin() as conn:
        _ledger.metadata.create_all(conn)
    for name, fn in MIGRATIONS:
        with engine.begin() as conn:
            if conn.dialect.name == "postgresql":  # two servers starting at once must not race
                conn.execute(sa.text("LOCK TABLE tidekit_migrations IN EXCLUSIVE MODE"))
            already = conn.execute(sa.select(_ledger.c.name).where(_ledger.c.name == name)).first()
            if already is None:
                fn(conn)
                conn.execute(_ledger.insert().values(name=name, applied_at=time.time()))
                done_now.append(name)
        if name == upto:
            break
    return done_now
