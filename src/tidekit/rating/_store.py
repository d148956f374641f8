"""The rating store: one study per database, SQLite by default, PostgreSQL by URL.

Every state change is one short transaction, so a crash (even SIGKILL) loses nothing that was
acknowledged: a rating is answered only after its transaction commits. SQLite runs in WAL mode
with ``synchronous=NORMAL`` (durable across process crashes; set ``TIDEKIT_SQLITE_SYNC=FULL``
to survive power loss too) and takes its write lock at ``BEGIN IMMEDIATE`` so concurrent writers
queue on ``busy_timeout`` instead of failing. A rating's assignment is a unique key, so a double
submission stores one rating. Engines hide bound parameters from error messages, so a failed
statement never writes a rater's comment into a log.

Sessions: a rater is found by the hash of a random session token. A returning Prolific
participant on another device gets a second session only with the Prolific id *and* the
matching Prolific ``SESSION_ID`` (the id alone is guessable and is refused); only the session
that consented may withdraw.
"""

from __future__ import annotations

import hmac
import json
import os
import sqlite3
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from tidekit.errors import ConfigError, DataError
from tidekit.rating import _schema as t
from tidekit.rating._config import DEMOGRAPHICS, RatingStudyConfig
from tidekit.rating._design import RatingPlan
from tidekit.rating._engine import create_engine, normalize_url
from tidekit.rating._migrations import migrate
from tidekit.rating._queries import HOT, insert_rating
from tidekit.rating._security import keyed_hash, new_completion_code, new_token, sha256_hex
from tidekit.rating._views import (
    FACTORS,
    SCORE_FIELDS,
    AlreadyStarted,
    ItemView,
    NotYourItem,
    RaterView,
    StudyFull,
    StudyInfo,
    TooManyUnfinished,
)

__all__ = [
    "FACTORS",
    "SCORE_FIELDS",
    "AlreadyStarted",
    "ItemView",
    "NotYourItem",
    "RaterView",
    "RatingStore",
    "StudyFull",
    "StudyInfo",
    "TooManyUnfinished",
    "create_engine",
    "normalize_url",
]

DOUBLE_CLICK_S = 30.0  # a repeated "I agree" from the same browser and address within this is one rater


class RatingStore:
    """All reads and writes of a study's database."""

    def __init__(self, engine: sa.Engine) -> None:
        self.engine = engine
        self._info: StudyInfo | None = None
        self.path = Path(engine.url.database) if engine.dialect.name == "sqlite" and engine.url.database else None
        self._identity = self._file_identity()
        self._last_write = float("-inf")  # time.monotonic() of the last committed write transaction

    @classmethod
    def open(cls, db: str | Path, create: bool = False, busy_timeout_s: float = 30.0) -> RatingStore:
        """Open (and migrate) the database at ``db``; ``create`` allows a new SQLite file;
        ``busy_timeout_s`` bounds how long a SQLite write waits for another process's lock."""
        engine = create_engine(db, must_exist=not create, busy_timeout_s=busy_timeout_s)
        # migrations wait for a lock like any batch job, even when the store's own calls must not
        patient = engine if busy_timeout_s >= 30 or engine.dialect.name != "sqlite" else create_engine(db)
        try:
            migrate(patient)
        except sa.exc.OperationalError as exc:
            engine.dispose()
            shown = engine.url.render_as_string(hide_password=True)
            raise DataError(f"cannot open the rating database {shown}: {exc.orig}. Check the URL, "
                            "that the server runs and that the database exists") from None
        finally:
            if patient is not engine:
                patient.dispose()
        return cls(engine)

    def close(self) -> None:
        self.engine.dispose()

    # -- transactions ---------------------------------------------------------------------
    @contextmanager
    def write(self) -> Iterator[sa.Connection]:
        """One write transaction (SQLite: BEGIN IMMEDIATE, so writers queue instead of failing)."""
        with self.engine.connect() as conn:
            conn.execution_options(tidekit_write=True)
            with conn.begin():
                yield conn
        self._last_write = time.monotonic()

    @contextmanager
    def read(self) -> Iterator[sa.Connection]:
        with self.engine.connect() as conn, conn.begin():
            yield conn

    # -- the study --------------------------------------------------------------------------
    def _meta(self, conn: sa.Connection) -> dict[str, Any]:
        return {k: json.loads(v) for k, v in conn.execute(sa.select(t.meta.c.key, t.meta.c.value))}

    def has_study(self) -> bool:
        with self.read() as conn:
            return conn.execute(sa.select(t.meta.c.key).where(t.meta.c.key == "config")).first() is not None

    @property
    def info(self) -> StudyInfo:
        if self._info is None:
            with self.read() as conn:
                m = self._meta(conn)
            if "config" not in m:
                raise DataError("this database holds no study yet; run 'tidekit rate create' first")
            self._info = StudyInfo(
                config=RatingStudyConfig.model_validate(m["config"]), secret=m["secret"], salt=m["salt"],
                completion_code=m["completion_code"], admin_token_hash=m["admin_token_hash"],
                per_rater=int(m["per_rater"]), created_at=float(m["created_at"]))
        return self._info

    def inputs_hash(self) -> str | None:
        with self.read() as conn:
            row = conn.execute(sa.select(t.meta.c.value).where(t.meta.c.key == "inputs_hash")).first()
        return json.loads(row[0]) if row else None

    def create_study(self, config: RatingStudyConfig, plan: RatingPlan, admin_token: str) -> None:
        """Write a new study (config, blinding, items, bundles) in one transaction."""
        per_rater = config.items_per_rater + config.attention_checks
        meta = {
            "config": config.model_dump(mode="json"), "inputs_hash": plan.inputs_hash,
            "secret": new_token(32), "salt": new_token(32),
            "completion_code": config.completion_code or new_completion_code(),
            "admin_token_hash": sha256_hex(admin_token), "per_rater": per_rater,
            "created_at": time.time(), "withdrawals": 0,
        }
        with self.write() as conn:
            if conn.execute(sa.select(t.meta.c.key).where(t.meta.c.key == "config")).first():
                raise ConfigError("this database already holds a study; use a new --db for a new study")
            conn.execute(t.meta.insert(), [{"key": k, "value": json.dumps(v)} for k, v in meta.items()])
            conn.execute(t.systems.insert(), [
                {"code": s.code, "system": s.system, "model": s.model, "condition": s.condition}
                for s in plan.systems])
            conn.execute(t.items.insert(), [
                {"id": i.index, "item_id": i.item_id, "conversation_id": i.conversation_id,
                 "persona_id": i.persona_id, "scenario_id": i.scenario_id, "system_code": i.system_code,
                 "context": json.dumps(i.context, ensure_ascii=False), "response": i.response,
                 "is_attention_check": i.is_attention_check, "expected": i.expected}
                for i in plan.items])
            conn.execute(t.bundles.insert(), [
                {"id": b.index, "order_seed": b.order_seed, "rater_id": None, "claimed_at": None}
                for b in plan.bundles])
            rows, next_id = [], 0
            for b in plan.bundles:
                for pos, item in enumerate(b.items):
                    rows.append({"id": next_id, "bundle_id": b.index, "item_id": item, "position": pos})
                    next_id += 1
            for start in range(0, len(rows), 5000):
                conn.execute(t.assignments.insert(), rows[start:start + 5000])

    def set_admin_token(self, token: str) -> None:
        with self.write() as conn:
            conn.execute(t.meta.update().where(t.meta.c.key == "admin_token_hash")
                         .values(value=json.dumps(sha256_hex(token))))
        self._info = None

    # -- raters -----------------------------------------------------------------------------
    def register_rater(
        self,
        pid: str | None = None,
        prolific_study: str | None = None,
        prolific_session: str | None = None,
        simulated: bool = False,
        token: str | None = None,
        *,
        pre: str | None = None,
        client: str | None = None,
        max_unfinished: int | None = None,
        release_after_s: float | None = None,
    ) -> tuple[str, str, bool]:
        """After consent: a new rater with the next free bundle, or the returning rater. Returns
        (rater id, session token, resumed); the token is new every time (rotated at consent).

        A returning rater is found by (1) the same pre-consent cookie ``pre`` from the same
        ``client`` address within a few seconds (a double-clicked "I agree": one rater, a second
        session), or (2) the Prolific id ``pid`` with the same Prolific ``prolific_session`` (the
        participant on another device: a 'resume' session, which may not withdraw). A Prolific id
        that exists without that proof raises AlreadyStarted. ``max_unfinished`` caps the
        unfinished slots of one ``client`` address (TooManyUnfinished); ``release_after_s``
        frees slots that consented but rated nothing for that long when no bundle is free.
        Raises StudyFull. Concurrent registrations that collide on a unique key are retried once.
        """
        for attempt in range(2):
            try:
                return self._register(pid, prolific_study, prolific_session, simulated, token or new_token(32),
                                      pre, client, max_unfinished, release_after_s)
            except sa.exc.IntegrityError:
                if attempt:
                    raise
        raise AssertionError("unreachable")  # pragma: no cover

    def _register(self, pid: str | None, prolific_study: str | None, prolific_session: str | None,
                  simulated: bool, token: str, pre: str | None, client: str | None,
                  max_unfinished: int | None, release_after_s: float | None) -> tuple[str, str, bool]:
        info = self.info
        now = time.time()
        r = t.raters.c
        session_hash = sha256_hex(token)
        pid_hash = keyed_hash(info.salt, "prolific_pid", pid) if pid else None
        psession_hash = keyed_hash(info.salt, "prolific_session", prolific_session) if prolific_session else None
        client_hash = keyed_hash(info.salt, "client", client) if client else None
        pre_hash = sha256_hex(pre) if pre else None
        with self.write() as conn:
            if pre_hash is not None:
                row = conn.execute(sa.select(r.id).where(r.pre_hash == pre_hash,
                                                         r.consented_at > now - DOUBLE_CLICK_S,
                                                         r.client_hash.is_(None) if client_hash is None
                                                         else r.client_hash == client_hash)).first()
                if row is not None:
                    self._add_session(conn, row.id, session_hash, "consent", now)
                    return row.id, token, True
            if pid_hash is not None:
                row = conn.execute(sa.select(r.id, r.prolific_session_hash).where(r.pid_hash == pid_hash)).first()
                if row is not None:
                    if psession_hash is None or not row.prolific_session_hash or not hmac.compare_digest(
                            psession_hash, row.prolific_session_hash):
                        raise AlreadyStarted()
                    self._add_session(conn, row.id, session_hash, "resume", now)
                    return row.id, token, True
            if client_hash is not None and max_unfinished is not None:
                held = conn.execute(sa.select(sa.func.count()).select_from(t.raters).where(
                    r.client_hash == client_hash, r.completed_at.is_(None))).scalar_one()
                if held >= max_unfinished:
                    raise TooManyUnfinished()
            rater_id = "R" + new_token(9).replace("-", "x").replace("_", "y")
            for _ in range(20):
                free = conn.execute(sa.select(t.bundles.c.id).where(t.bundles.c.rater_id.is_(None))
                                    .order_by(t.bundles.c.id).limit(1)).first()
                if free is None and release_after_s and self._release(conn, now - release_after_s, False, now, 1):
                    continue
                if free is None:
                    raise StudyFull()
                claimed = conn.execute(t.bundles.update()
                                       .where(t.bundles.c.id == free.id, t.bundles.c.rater_id.is_(None))
                                       .values(rater_id=rater_id, claimed_at=now)).rowcount
                if claimed == 1:
                    break
            else:  # pragma: no cover - only under extreme contention on PostgreSQL
                raise StudyFull()
            conn.execute(t.raters.insert().values(
                id=rater_id, session_hash=session_hash, pid_hash=pid_hash, prolific_study_id=prolific_study,
                prolific_session_hash=psession_hash, bundle_id=free.id, consented_at=now, simulated=simulated,
                client_hash=client_hash, pre_hash=pre_hash))
            self._add_session(conn, rater_id, session_hash, "consent", now)
        return rater_id, token, False

    @staticmethod
    def _add_session(conn: sa.Connection, rater_id: str, session_hash: str, kind: str, now: float) -> None:
        conn.execute(t.sessions.insert().values(token_hash=session_hash, rater_id=rater_id, kind=kind,
                                                created_at=now))

    @staticmethod
    def _rater(conn: sa.Connection, token: str) -> RaterView | None:
        row = conn.execute(HOT["rater"], {"session_hash": sha256_hex(token)}).first()
        if row is None:
            return None
        return RaterView(id=row.id, bundle_id=row.bundle_id, has_demographics=row.demographics_at is not None,
                         completed=row.completed_at is not None, from_prolific=row.pid_hash is not None,
                         simulated=bool(row.simulated), consented_here=row.kind == "consent")

    def rater_for_session(self, token: str | None) -> RaterView | None:
        """The rater whose session token this is (the database holds only its hash)."""
        if not token:
            return None
        with self.read() as conn:
            return self._rater(conn, token)

    def save_demographics(self, rater_id: str, answers: Mapping[str, str]) -> None:
        """Store validated answers (every key of DEMOGRAPHICS)."""
        values = {k: answers[k] for k in DEMOGRAPHICS}
        with self.write() as conn:
            conn.execute(t.raters.update().where(t.raters.c.id == rater_id)
                         .values(**values, demographics_at=time.time()))

    def withdraw(self, rater_id: str) -> bool:
        """Delete the rater, their sessions, ratings and demographics, and free their bundle."""
        with self.write() as conn:
            if not self._delete_raters(conn, [rater_id]):
                return False
            self._bump(conn, "withdrawals", 1)
        return True

    @staticmethod
    def _delete_raters(conn: sa.Connection, rater_ids: list[str]) -> int:
        if not rater_ids:
            return 0
        conn.execute(t.ratings.delete().where(t.ratings.c.rater_id.in_(rater_ids)))
        conn.execute(t.sessions.delete().where(t.sessions.c.rater_id.in_(rater_ids)))
        deleted = conn.execute(t.raters.delete().where(t.raters.c.id.in_(rater_ids))).rowcount
        # by rater, not by bundle id: on PostgreSQL a concurrent release may already have freed
        # the bundle and a new rater claimed it, which this must not undo
        conn.execute(t.bundles.update().where(t.bundles.c.rater_id.in_(rater_ids)).values(rater_id=None, claimed_at=None))
        return int(deleted)

    @staticmethod
    def _bump(conn: sa.Connection, key: str, by: int) -> None:
        """Add ``by`` to the counter ``key`` in meta (made at 0 if missing)."""
        row = conn.execute(sa.select(t.meta.c.value).where(t.meta.c.key == key)).first()
        if row is None:
            conn.execute(t.meta.insert().values(key=key, value=json.dumps(by)))
        else:
            conn.execute(t.meta.update().where(t.meta.c.key == key)
                         .values(value=json.dumps(int(json.loads(row.value)) + by)))

    # -- slots ------------------------------------------------------------------------------
    @staticmethod
    def _idle_slots(conn: sa.Connection, before: float, with_ratings: bool, limit: int | None = None) -> list[str]:
        """Unfinished raters whose last progress (consent, demographics, a rating) is before
        ``before``; only those with no rating unless ``with_ratings``."""
        r, rt = t.raters.c, t.ratings.c
        last_rating = sa.select(sa.func.max(rt.submitted_at)).where(rt.rater_id == r.id).scalar_subquery()
        last = sa.func.coalesce(last_rating, r.demographics_at, r.consented_at)
        query = sa.select(r.id).where(r.completed_at.is_(None), last < before).order_by(r.consented_at)
        if not with_ratings:
            query = query.where(~sa.exists().where(rt.rater_id == r.id))
        if limit is not None:
            query = query.limit(limit)
        return [row.id for row in conn.execute(query)]

    def _release(self, conn: sa.Connection, before: float, with_ratings: bool, now: float,
                 limit: int | None = None) -> list[str]:
        ids = self._idle_slots(conn, before, with_ratings, limit)
        released = self._delete_raters(conn, ids)
        if released:
            self._bump(conn, "released", released)
        return ids if released else []  # (on PostgreSQL a concurrent release may have taken some)

    def release_slots(self, idle_s: float, with_ratings: bool = False, dry_run: bool = False,
                      now: float | None = None) -> list[str]:
        """Free the slots of unfinished raters with no progress for ``idle_s`` seconds: their
        sessions (and, with ``with_ratings``, their partial ratings) are deleted and the bundle
        goes to the next rater. Returns the rater ids released (or that would be, ``dry_run``)."""
        now = time.time() if now is None else now
        with self.write() as conn:
            if dry_run:
                return self._idle_slots(conn, now - idle_s, with_ratings)
            return self._release(conn, now - idle_s, with_ratings, now)

    # -- admin sessions ----------------------------------------------------------------------
    def new_admin_session(self, hours: float) -> str:
        """A random admin session token valid for ``hours`` (expired ones are purged)."""
        token, now = new_token(32), time.time()
        with self.write() as conn:
            conn.execute(t.admin_sessions.delete().where(t.admin_sessions.c.expires_at < now))
            conn.execute(t.admin_sessions.insert().values(token_hash=sha256_hex(token), created_at=now,
                                                          expires_at=now + hours * 3600))
        return token

    def admin_session_valid(self, token: str | None) -> bool:
        if not token:
            return False
        with self.read() as conn:
            row = conn.execute(sa.select(t.admin_sessions.c.expires_at)
                               .where(t.admin_sessions.c.token_hash == sha256_hex(token))).first()
        return row is not None and row.expires_at > time.time()

    def end_admin_session(self, token: str) -> None:
        with self.write() as conn:
            conn.execute(t.admin_sessions.delete().where(t.admin_sessions.c.token_hash == sha256_hex(token)))

    # -- health ------------------------------------------------------------------------------
    def _file_identity(self) -> tuple[int, int] | None:
        if self.path is None:
            return None
        try:
            st = self.path.stat()
        except OSError:
            return None
        return st.st_dev, st.st_ino

    def quick_health(self, recent_s: float = 2.0) -> tuple[bool, str] | None:
        """The SQLite checks that take no lock (a stat): the file is still the one opened (not
        deleted or replaced) and has a write permission bit; healthy if this store committed a
        write in the last ``recent_s`` seconds. None when only :meth:`health`'s probe can tell."""
        if self.path is None:
            return None
        identity = self._file_identity()
        if identity is None or identity != self._identity:
            return False, "missing or replaced (the file the server opened is gone)"
        if not os.stat(self.path).st_mode & 0o222 or not os.access(self.path, os.W_OK):
            return False, "read-only (the file has no write permission)"
        if time.monotonic() - self._last_write < recent_s:
            return True, "writable"
        return None

    def health(self, wait_s: float = 0.3) -> tuple[bool, str]:
        """Whether the database can take a write now, and why not. SQLite: :meth:`quick_health`,
        then a write lock must be free within ``wait_s`` (taken and released at once, nothing
        written). PostgreSQL: the server answers and is not read-only. Blocks for at most about
        ``wait_s``: run it off the event loop."""
        if self.path is None:
            try:
                with self.engine.connect() as conn, conn.begin():
                    conn.exec_driver_sql(f"SET LOCAL statement_timeout = {max(1, round(wait_s * 1000))}")
                    read_only = conn.exec_driver_sql("SHOW transaction_read_only").scalar_one()
            except sa.exc.DBAPIError as exc:
                return False, f"unreachable ({type(exc.orig).__name__})"
            return (False, "read-only") if read_only == "on" else (True, "writable")
        quick = self.quick_health(recent_s=0.0)
        if quick is not None:
            return quick
        try:
            probe = sqlite3.connect(self.path, timeout=wait_s, isolation_level=None)
            try:
                probe.execute("BEGIN IMMEDIATE")
                probe.execute("ROLLBACK")
            finally:
                probe.close()
        except sqlite3.OperationalError as exc:
            text = str(exc)
            if "locked" in text or "busy" in text:
                return False, f"busy (another connection has held the write lock for over {wait_s:.1f} s)"
            return False, "read-only" if "readonly" in text else "not writable"
        return True, "writable"

    # -- items and ratings --------------------------------------------------------------------
    def progress(self, rater: RaterView) -> int:
        """How many of the rater's items are rated."""
        with self.read() as conn:
            return self._progress(conn, rater.id)

    @staticmethod
    def _progress(conn: sa.Connection, rater_id: str) -> int:
        return int(conn.execute(HOT["progress"], {"rater_id": rater_id}).scalar_one())

    @staticmethod
    def _next_item(conn: sa.Connection, rater: RaterView) -> tuple[ItemView | None, int]:
        """The rater's first unrated item and how many they rated, in one query."""
        row = conn.execute(HOT["next_item"], {"bundle_id": rater.bundle_id, "rater_id": rater.id}).first()
        if row is None:
            return None, 0
        return ItemView(assignment_id=row.id, item=row.item_id, position=row.position,
                        context=json.loads(row.context), response=row.response,
                        is_attention_check=bool(row.is_attention_check), expected=row.expected,
                        system_code=row.system_code), int(row.done)

    def next_item(self, rater: RaterView) -> ItemView | None:
        """The rater's first unrated item in their order (None when all are rated)."""
        with self.read() as conn:
            return self._next_item(conn, rater)[0]

    def rating_page(self, token: str | None) -> tuple[RaterView, ItemView | None, int] | None:
        """The rater behind ``token``, their next item (None when done) and how many they rated."""
        if not token:
            return None
        with self.read() as conn:
            rater = self._rater(conn, token)
            if rater is None:
                return None
            item, done = self._next_item(conn, rater)
            return rater, item, done

    def submit_rating(
        self,
        rater: RaterView,
        assignment_id: int,
        scores: Mapping[str, int],
        comment: str = "",
        duration_s: float | None = None,
        shown_at: float | None = None,
        now: float | None = None,
    ) -> bool:
        """Store one validated rating in one transaction; True if stored, False if this
        assignment was already rated (a double submission). Raises NotYourItem.

        ``shown_at`` (when the item page was served) gives ``duration_s`` unless it is given.
        """
        now = time.time() if now is None else now
        if duration_s is None and shown_at is not None:
            duration_s = round(max(0.0, now - shown_at), 3)
        with self.write() as conn:
            row = conn.execute(HOT["owned"], {"assignment_id": assignment_id, "bundle_id": rater.bundle_id}).first()
            if row is None:
                raise NotYourItem()
            values = {"assignment_id": assignment_id, "rater_id": rater.id, "item_id": row.item_id,
                      **{k: int(scores[k]) for k in SCORE_FIELDS}, "comment": comment,
                      "submitted_at": now, "duration_s": duration_s}
            stored = conn.execute(insert_rating(conn.dialect.name), values).first() is not None
            if stored and self._progress(conn, rater.id) >= self.info.per_rater:
                conn.execute(HOT["complete"], {"rater_id": rater.id, "now": now})
        return stored

    def bundle_items(self, rater: RaterView) -> list[ItemView]:
        """All of a rater's items in order (for simulated raters)."""
        a, i = t.assignments.c, t.items.c
        with self.read() as conn:
            rows = conn.execute(sa.select(a.id, a.item_id, a.position, i.context, i.response, i.is_attention_check,
                                          i.expected, i.system_code)
                                .join(t.items, i.id == a.item_id)
                                .where(a.bundle_id == rater.bundle_id).order_by(a.position)).all()
        return [ItemView(assignment_id=r.id, item=r.item_id, position=r.position, context=json.loads(r.context),
                         response=r.response, is_attention_check=bool(r.is_attention_check),
                         expected=r.expected, system_code=r.system_code) for r in rows]

    def rating_rows(self) -> list[dict[str, Any]]:
        """Every rating joined with its item, system and rater (the export's raw material)."""
        r, i, s, p, a = t.ratings.c, t.items.c, t.systems.c, t.raters.c, t.assignments.c
        query = (sa.select(r.id.label("rating_id"), r.rater_id, i.item_id, i.conversation_id, i.persona_id,
                           i.scenario_id, s.system, s.model, s.condition, i.system_code,
                           i.is_attention_check, i.expected, a.position, i.context, i.response,
                           *(getattr(r, f) for f in SCORE_FIELDS), r.comment, r.submitted_at,
                           r.duration_s, *(getattr(p, f) for f in DEMOGRAPHICS), p.simulated,
                           p.completed_at)
                 .select_from(t.ratings.join(t.items, i.id == r.item_id)
                              .join(t.assignments, a.id == r.assignment_id)
                              .join(t.raters, p.id == r.rater_id)
                              .outerjoin(t.systems, s.code == i.system_code))
                 .order_by(r.id))
        with self.read() as conn:
            return [dict(row._mapping) for row in conn.execute(query)]

    def counts(self) -> dict[str, Any]:
        """Raw counts for the status page."""
        with self.read() as conn:
            m = self._meta(conn)
            bundles = conn.execute(sa.select(sa.func.count(), sa.func.count(t.bundles.c.rater_id))).one()
            raters = conn.execute(sa.select(t.raters.c.id, t.raters.c.completed_at, t.raters.c.simulated,
                                            t.raters.c.demographics_at, t.raters.c.consented_at)).all()
            per_rater: dict[str, int] = dict(conn.execute(sa.select(t.ratings.c.rater_id, sa.func.count())
                                          .group_by(t.ratings.c.rater_id)).all())
            last_rating: dict[str, float] = dict(conn.execute(
                sa.select(t.ratings.c.rater_id, sa.func.max(t.ratings.c.submitted_at))
                .group_by(t.ratings.c.rater_id)).all())
            per_item: dict[str, int] = dict(conn.execute(sa.select(t.items.c.item_id, sa.func.count(t.ratings.c.id))
                                         .select_from(t.items.outerjoin(t.ratings,
                                                                        t.ratings.c.item_id == t.items.c.id))
                                         .where(t.items.c.is_attention_check.is_(False))
                                         .group_by(t.items.c.item_id)).all())
            failures = conn.execute(sa.select(t.ratings.c.rater_id, sa.func.count())
                                    .select_from(t.ratings.join(t.items, t.items.c.id == t.ratings.c.item_id))
                                    .where(t.items.c.is_attention_check.is_(True),
                                           sa.or_(*(getattr(t.ratings.c, f) != t.items.c.expected
                                                    for f in SCORE_FIELDS)))
                                    .group_by(t.ratings.c.rater_id)).all()
        return {"bundles": bundles[0], "claimed": bundles[1], "raters": raters, "per_rater": per_rater,
                "per_item": per_item, "failures": dict(failures), "withdrawals": int(m.get("withdrawals", 0)),
                "released": int(m.get("released", 0)), "last_rating": last_rating}
