"""The result cache: finished model calls in one SQLite file (WAL), keyed by request hash.

A row is written only for a successful call, and a whole batch is committed in one
transaction, so a process killed at any moment leaves either all of a batch or none of it;
failed calls are not cached, so a rerun retries them. WAL lets several processes share a
cache. The schema grows by named, ordered migrations.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Iterable, Sequence
from pathlib import Path

from tidekit.backends import ChatResult
from tidekit.errors import ConfigError

__all__ = ["MIGRATIONS", "ResultCache"]

# (name, SQL), applied in order once each; never edit a released entry, append a new one
MIGRATIONS: list[tuple[str, str]] = [
    ("001_results", """
        CREATE TABLE results (
            key TEXT PRIMARY KEY,      -- sha256 of model identity, messages, params and seed
            model TEXT NOT NULL,       -- model alias, for inspection
            result TEXT NOT NULL,      -- ChatResult as JSON
            created_at REAL NOT NULL   -- unix time
        )"""),
]


class ResultCache:
    """Finished results by key; ``path=None`` keeps them in memory only."""

    def __init__(self, path: str | Path | None) -> None:
        self.path = Path(path) if path is not None else None
        self._lock = threading.Lock()
        target = ":memory:"
        if self.path is not None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            target = str(self.path)
        try:
            self._db = sqlite3.connect(target, timeout=60, isolation_level=None, check_same_thread=False)
            if self.path is not None:
                self._db.execute("PRAGMA journal_mode=WAL")
                self._db.execute("PRAGMA synchronous=NORMAL")  # durable across process crashes
            self._migrate()
        except sqlite3.DatabaseError as exc:
            raise ConfigError(f"{self.path}: not a usable tidekit cache ({exc}); delete it or give another "
                              "--cache path") from None

    def _migrate(self) -> None:
        db = self._db
        db.execute("CREATE TABLE IF NOT EXISTS migrations (name TEXT PRIMARY KEY, applied_at REAL NOT NULL)")
        done = {row[0] for row in db.execute("SELECT name FROM migrations")}
        for name, sql in MIGRATIONS:
            if name in done:
                continue
            db.execute("BEGIN IMMEDIATE")
            try:
                if not db.execute("SELECT 1 FROM migrations WHERE name = ?", (name,)).fetchone():
                    db.execute(sql)
                    db.execute("INSERT INTO migrations VALUES (?, ?)", (name, time.time()))
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise

    def get_many(self, keys: Iterable[str]) -> dict[str, ChatResult]:
        """The cached results among ``keys``."""
        wanted = list(dict.fromkeys(keys))
        found: dict[str, ChatResult] = {}
        with self._lock:
            for start in range(0, len(wanted), 500):
                chunk = wanted[start:start + 500]
                marks = ",".join("?" * len(chunk))
                for key, text in self._db.execute(f"SELECT key, result FROM results WHERE key IN ({marks})", chunk):
                    found[key] = ChatResult.model_validate(json.loads(text))
        return found

    def put_many(self, items: Sequence[tuple[str, str, ChatResult]]) -> None:
        """Store ``(key, model, result)`` triples in one transaction (all or none)."""
        if not items:
            return
        now = time.time()
        rows = [(key, model, result.model_dump_json(), now) for key, model, result in items]
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                self._db.executemany("INSERT OR REPLACE INTO results VALUES (?, ?, ?, ?)", rows)
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise

    def __len__(self) -> int:
        with self._lock:
            return int(self._db.execute("SELECT COUNT(*) FROM results").fetchone()[0])

    def close(self) -> None:
        with self._lock:
            self._db.close()
