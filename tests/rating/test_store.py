"""The rating store, the same tests on SQLite and on a real PostgreSQL server."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable

import pytest
import sqlalchemy as sa

from tidekit.data import Dataset, GenerationRecord
from tidekit.errors import ConfigError
from tidekit.rating import (
    EXPORT_COLUMNS,
    MIGRATIONS,
    RatingStore,
    RatingStudyConfig,
    applied_migrations,
    create_study,
    export_ratings,
    rating_frame,
    study_status,
)
from tidekit.rating import _schema as schema
from tidekit.rating._store import AlreadyStarted, NotYourItem, StudyFull, create_engine

SCORES = {"empathy": 5, "emotion_recognition": 4, "distress_normalization": 6, "supportive_reflection": 3}


def test_migrations_run_in_order_once_and_match_the_schema(db_url: str) -> None:
    from tidekit.rating import migrate

    engine = create_engine(db_url, must_exist=False)
    try:
        assert migrate(engine, upto="m0001_initial") == ["m0001_initial"]
        with engine.connect() as conn:
            assert not any(ix["name"] == "ix_ratings_rater" for ix in sa.inspect(conn).get_indexes("ratings"))
        assert migrate(engine) == [name for name, _ in MIGRATIONS[1:]]
        assert migrate(engine) == []  # idempotent on every start
        with engine.connect() as conn:
            assert applied_migrations(conn) == [name for name, _ in MIGRATIONS]
            inspector = sa.inspect(conn)
            for table in schema.metadata.sorted_tables:  # the migrated database is what the code queries
                assert {c["name"] for c in inspector.get_columns(table.name)} == set(table.columns.keys())
                want = {ix.name for ix in table.indexes}
                assert want <= {ix["name"] for ix in inspector.get_indexes(table.name)}
    finally:
        engine.dispose()


def test_design_is_balanced_and_blinded(db_url: str, make_study: Callable[..., tuple[str, str]]) -> None:
    db, _ = make_study(db_url)
    store = RatingStore.open(db)
    try:
        with store.read() as conn:
            items = conn.execute(sa.select(schema.items)).all()
            assignments = conn.execute(sa.select(schema.assignments)).all()
            systems = conn.execute(sa.select(schema.systems)).all()
        real = {i.id for i in items if not i.is_attention_check}
        per_item = Counter(a.item_id for a in assignments if a.item_id in real)
        assert len(real) == 30 and set(per_item) == real  # 10 conversations x (2 systems + reference)
        assert min(per_item.values()) == 2 and max(per_item.values()) <= 3  # k=2, last bundle padded
        per_bundle: dict[int, list[int]] = {}
        for a in assignments:
            per_bundle.setdefault(a.bundle_id, []).append(a.item_id)
        for bundle in per_bundle.values():
            assert len(bundle) == len(set(bundle)) == 7  # 6 items + 1 attention check, no repeats
        assert {s.system for s in systems} == {"reference", "smollm2-135m:zero_shot", "smollm2-135m:fine_tuned"}
        assert all(s.code not in s.system and len(s.code) == 5 for s in systems)
    finally:
        store.close()


def test_create_is_idempotent_and_refuses_other_inputs(db_url: str, make_study: Callable[..., tuple[str, str]],
                                                       dataset: Dataset, generations: list[GenerationRecord]) -> None:
    db, _ = make_study(db_url)
    cfg = RatingStudyConfig(items_per_rater=6, ratings_per_item=2, attention_checks=1, seed=3)
    again = create_study(cfg, dataset, generations, db=db)
    assert not again.created and again.admin_token is None
    with pytest.raises(ConfigError, match="other inputs"):
        create_study(cfg.model_copy(update={"seed": 4}), dataset, generations, db=db)


def test_double_submission_stores_one_rating_and_foreign_items_are_refused(
        db_url: str, make_study: Callable[..., tuple[str, str]]) -> None:
    db, _ = make_study(db_url)
    store = RatingStore.open(db)
    try:
        _, tok_a, _ = store.register_rater(pid="PIDA", prolific_session="SA")
        _, tok_b, _ = store.register_rater()
        a, b = store.rater_for_session(tok_a), store.rater_for_session(tok_b)
        assert a is not None and b is not None and a.bundle_id != b.bundle_id
        item = store.next_item(a)
        assert item is not None
        results = []
        threads = [threading.Thread(target=lambda: results.append(store.submit_rating(a, item.assignment_id, SCORES)))
                   for _ in range(6)]
        for th in threads:
            th.start()
        for th in threads:
            th.join()
        assert sorted(results) == [False] * 5 + [True]
        assert store.progress(a) == 1
        with pytest.raises(NotYourItem):
            store.submit_rating(b, item.assignment_id, SCORES)
        # the same Prolific participant resumes on another device only with the matching Prolific
        # session: a new 'resume' session, the consenting one stays signed in and alone may withdraw
        with pytest.raises(AlreadyStarted):
            store.register_rater(pid="PIDA")
        with pytest.raises(AlreadyStarted):
            store.register_rater(pid="PIDA", prolific_session="OTHER")
        rid, tok_a2, resumed = store.register_rater(pid="PIDA", prolific_session="SA")
        assert resumed and rid == a.id and tok_a2 != tok_a
        again, first = store.rater_for_session(tok_a2), store.rater_for_session(tok_a)
        assert again is not None and store.next_item(again) != item and not again.consented_here
        assert first is not None and first.consented_here
    finally:
        store.close()


def test_withdrawal_deletes_data_and_frees_the_slot(db_url: str, make_study: Callable[..., tuple[str, str]]) -> None:
    db, _ = make_study(db_url)
    store = RatingStore.open(db)
    try:
        rid, tok, _ = store.register_rater(pid="SOMEONE")
        rater = store.rater_for_session(tok)
        assert rater is not None
        store.save_demographics(rater.id, dict.fromkeys(
            ("age_group", "gender", "education", "race_ethnicity", "mh_support_experience"), "prefer_not_to_say"))
        item = store.next_item(rater)
        assert item is not None
        store.submit_rating(rater, item.assignment_id, SCORES)
        assert store.withdraw(rid)
        assert rating_frame(store).empty
        status = study_status(store)
        assert status.raters_withdrawn == 1 and status.bundles_claimed == 0
        _, tok2, resumed = store.register_rater(pid="SOMEONE")  # comes back: starts afresh
        new = store.rater_for_session(tok2)
        assert not resumed and new is not None and new.bundle_id == rater.bundle_id
    finally:
        store.close()


def test_concurrent_joins_claim_distinct_slots_until_full(db_url: str,
                                                          make_study: Callable[..., tuple[str, str]]) -> None:
    db, _ = make_study(db_url, conversations=4)  # 12 items x k=2 / 6 per rater = 4 slots
    store = RatingStore.open(db)
    try:
        got: list[int] = []
        full = []

        def join() -> None:
            try:
                _, tok, _ = store.register_rater()
                r = store.rater_for_session(tok)
                assert r is not None
                got.append(r.bundle_id)
            except StudyFull:
                full.append(1)

        threads = [threading.Thread(target=join) for _ in range(10)]
        for th in threads:
            th.start()
        for th in threads:
            th.join()
        assert sorted(got) == [0, 1, 2, 3] and len(full) == 6
    finally:
        store.close()


def test_export_has_the_contract_columns_and_no_identifiers(
        db_url: str, make_study: Callable[..., tuple[str, str]], tmp_path: object) -> None:
    import pandas as pd

    from tidekit.rating import simulate_ratings

    db, _ = make_study(db_url)
    store = RatingStore.open(db)
    try:
        _, tok, _ = store.register_rater(pid="5f1a2b3c4d5e6f7a8b9c0d1e", prolific_study="STUDY1", prolific_session="SESS1")
        summary = simulate_ratings(store, raters=3, seed=1)
        assert summary.raters == 3 and summary.ratings == 21
    finally:
        store.close()
    out = tmp_path / "export" / "ratings.parquet"  # type: ignore[operator]
    result = export_ratings(db, out)
    frame = pd.read_parquet(out)
    assert tuple(frame.columns) == EXPORT_COLUMNS and result.rows == len(frame) == 21
    assert frame["simulated"].all() and frame["rating_id"].is_unique
    assert set(frame.loc[frame.is_attention_check, "system"]) == {"attention_check"}
    assert set(frame.loc[~frame.is_attention_check, "condition"]) <= {"zero_shot", "fine_tuned", "reference"}
    text = out.read_bytes() + (out.parent / "manifest.json").read_bytes()
    for secret in (b"5f1a2b3c4d5e6f7a8b9c0d1e", b"SESS1", tok.encode()):
        assert secret not in text
    csv = export_ratings(db, tmp_path / "export" / "ratings.csv")  # type: ignore[operator]
    assert csv.rows == 21 and pd.read_csv(csv.path).shape == frame.shape


def test_concurrent_registrations_from_one_browser_make_one_rater(
        db_url: str, make_study: Callable[..., tuple[str, str]]) -> None:
    db, _ = make_study(db_url)
    store = RatingStore.open(db)
    try:
        results: list[tuple[str, str, bool]] = []
        threads = [threading.Thread(target=lambda: results.append(store.register_rater(
            pid="P1", prolific_session="S1", pre="same-pre-cookie", client="192.0.2.1"))) for _ in range(6)]
        for th in threads:
            th.start()
        for th in threads:
            th.join()
        assert len(results) == 6 and len({r[0] for r in results}) == 1
        assert len({r[1] for r in results}) == 6  # each answer got its own fresh session token
        assert all(store.rater_for_session(r[1]) is not None for r in results)
        assert study_status(store).bundles_claimed == 1
    finally:
        store.close()
