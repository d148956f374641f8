"""The rating store's tables as the code queries them (SQLAlchemy Core).

The tables are created and changed only by the ordered migrations in ``_migrations.py``; this
module describes the schema at the newest migration, and a test checks the two agree.

- ``meta``: one study per database: its config, secrets, blinding and counters (key -> JSON).
- ``systems``: blinding codes; the only place a code maps to a system name.
- ``items``: what is rated: a conversation context and one system's reply, or an attention check.
- ``bundles``: one rater's worth of assignments, built at creation so every item gets k ratings.
- ``assignments``: an item at a position in a bundle (the rater's randomised order).
- ``raters``: pseudonymous raters (random id; the Prolific id only as a salted hash) with their
  demographics. Withdrawal deletes the row and the rater's ratings, and frees the bundle.
- ``ratings``: one submitted rating per assignment (a unique key makes resubmission a no-op).
- ``sessions``: a rater's browser sessions (token hashes): ``consent`` for the browser that
  agreed (the only kind that may withdraw), ``resume`` for a device resumed with the matching
  Prolific session.
- ``admin_sessions``: admin sign-ins (token hashes) with a server-side expiry.

Times are UTC seconds since the epoch (a portable float on SQLite and PostgreSQL).
"""

from __future__ import annotations

import sqlalchemy as sa

from tidekit.scenarios import EMPATHY_FACTOR_IDS

__all__ = [
    "admin_sessions",
    "assignments",
    "bundles",
    "items",
    "meta",
    "metadata",
    "raters",
    "ratings",
    "sessions",
    "systems",
]

metadata = sa.MetaData()

meta = sa.Table(
    "meta", metadata,
    sa.Column("key", sa.String(64), primary_key=True),
    sa.Column("value", sa.Text, nullable=False),
)

systems = sa.Table(
    "systems", metadata,
    sa.Column("code", sa.String(16), primary_key=True),
    sa.Column("system", sa.String(200), nullable=False, unique=True),
    sa.Column("model", sa.String(200)),
    sa.Column("condition", sa.String(32)),
)

items = sa.Table(
    "items", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("item_id", sa.String(32), nullable=False, unique=True),
    sa.Column("conversation_id", sa.String(200)),
    sa.Column("persona_id", sa.String(200)),
    sa.Column("scenario_id", sa.String(200)),
    sa.Column("system_code", sa.String(16), sa.ForeignKey("systems.code")),
    sa.Column("context", sa.Text, nullable=False),
    sa.Column("response", sa.Text, nullable=False),
    sa.Column("is_attention_check", sa.Boolean, nullable=False),
    sa.Column("expected", sa.Integer),
)

bundles = sa.Table(
    "bundles", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("order_seed", sa.BigInteger, nullable=False),
    sa.Column("rater_id", sa.String(40), unique=True),
    sa.Column("claimed_at", sa.Double),
)

assignments = sa.Table(
    "assignments", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("bundle_id", sa.Integer, sa.ForeignKey("bundles.id"), nullable=False),
    sa.Column("item_id", sa.Integer, sa.ForeignKey("items.id"), nullable=False),
    sa.Column("position", sa.Integer, nullable=False),
    sa.UniqueConstraint("bundle_id", "position", name="uq_assignment_position"),
)

raters = sa.Table(
    "raters", metadata,
    sa.Column("id", sa.String(40), primary_key=True),
    sa.Column("session_hash", sa.String(64), nullable=False, unique=True),
    sa.Column("pid_hash", sa.String(64), unique=True),
    sa.Column("prolific_study_id", sa.String(64)),
    sa.Column("prolific_session_hash", sa.String(64)),
    sa.Column("bundle_id", sa.Integer, sa.ForeignKey("bundles.id"), nullable=False, unique=True),
    sa.Column("consented_at", sa.Double, nullable=False),
    sa.Column("age_group", sa.String(40)),
    sa.Column("gender", sa.String(40)),
    sa.Column("education", sa.String(40)),
    sa.Column("race_ethnicity", sa.String(40)),
    sa.Column("mh_support_experience", sa.String(40)),
    sa.Column("demographics_at", sa.Double),
    sa.Column("completed_at", sa.Double),
    sa.Column("simulated", sa.Boolean, nullable=False),
    sa.Column("client_hash", sa.String(64)),  # HMAC of the client address while unfinished
    sa.Column("pre_hash", sa.String(64)),  # SHA-256 of the pre-consent cookie (double clicks)
)

sessions = sa.Table(
    "sessions", metadata,
    sa.Column("token_hash", sa.String(64), primary_key=True),
    sa.Column("rater_id", sa.String(40), sa.ForeignKey("raters.id"), nullable=False),
    sa.Column("kind", sa.String(16), nullable=False),
    sa.Column("created_at", sa.Double, nullable=False),
)

admin_sessions = sa.Table(
    "admin_sessions", metadata,
    sa.Column("token_hash", sa.String(64), primary_key=True),
    sa.Column("created_at", sa.Double, nullable=False),
    sa.Column("expires_at", sa.Double, nullable=False),
)

ratings = sa.Table(
    "ratings", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("assignment_id", sa.Integer, sa.ForeignKey("assignments.id"), nullable=False, unique=True),
    sa.Column("rater_id", sa.String(40), sa.ForeignKey("raters.id"), nullable=False),
    sa.Column("item_id", sa.Integer, sa.ForeignKey("items.id"), nullable=False),
    sa.Column("empathy", sa.SmallInteger, nullable=False),
    *(sa.Column(factor, sa.SmallInteger, nullable=False) for factor in EMPATHY_FACTOR_IDS),
    sa.Column("comment", sa.Text, nullable=False),
    sa.Column("submitted_at", sa.Double, nullable=False),
    sa.Column("duration_s", sa.Double),
)

# added by migration 0002_lookup_indexes (0003 dropped assignments.shown_at: the page now carries
# a signed "shown at" time, so serving an item writes nothing)
sa.Index("ix_assignments_bundle", assignments.c.bundle_id, assignments.c.position)
sa.Index("ix_ratings_rater", ratings.c.rater_id)
sa.Index("ix_ratings_item", ratings.c.item_id)
# added by migration 0004_sessions_slots_admin
sa.Index("ix_sessions_rater", sessions.c.rater_id)
sa.Index("ix_raters_client", raters.c.client_hash)
sa.Index("ix_raters_pre", raters.c.pre_hash)
