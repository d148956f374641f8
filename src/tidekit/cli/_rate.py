"""``tidekit rate``: create a blinded rating study, serve it to raters, watch it, export it."""

from __future__ import annotations

from pathlib import Path

import click

from tidekit.cli._common import echo_json, example, json_option, overrides_argument, stdout_console

__all__ = ["COMMANDS"]

_DB_HELP = "Study database: a SQLite file path (default) or postgresql://USER@HOST:PORT/DB."


@click.group("rate", **example("tidekit rate create study.yaml --dataset data/ --generations gens/ --db runs/ratings.db",
                               "tidekit rate serve --db runs/ratings.db --port 8000"))
def rate() -> None:
    """Human evaluation: blinded empathy ratings in a web app (consent, demographics, export)."""


@rate.command("create", **example(
    "tidekit rate create study.yaml --dataset data/ --generations gens/ --db runs/ratings.db",
    "tidekit rate create --dataset data/ --generations gens/ --db runs/ratings.db ratings_per_item=5 split=test"))
@click.argument("config", required=False, type=click.Path(path_type=Path))
@click.option("--dataset", required=True, type=click.Path(path_type=Path), help="The dataset the generations answer.")
@click.option("--generations", "generations", multiple=True, type=click.Path(path_type=Path),
              help="generations.jsonl file, its folder, or a folder of such folders (a study's generations/, one per "
                   "system); repeat for several. Reference replies come from the dataset.")
@click.option("--db", required=True, help=_DB_HELP)
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
@overrides_argument
def create_cmd(config: Path | None, dataset: Path, generations: tuple[Path, ...], db: str, as_json: bool,
               overrides: tuple[str, ...]) -> None:
    """Build a study: items (client message, a system's reply) with systems blinded behind random
    codes, k ratings per item balanced across raters, attention checks, per-rater seeded order.

    CONFIG is a YAML study config (see docs/rating.md); KEY=VALUE overrides any key. Rerunning
    with the same inputs is a no-op. The admin token is printed once: keep it.
    """
    from tidekit._config import load_config
    from tidekit.rating import RatingStudyConfig, create_study

    if config is not None and "=" in config.name and not config.exists():  # no CONFIG, only overrides
        config, overrides = None, (str(config), *overrides)
    cfg = load_config(RatingStudyConfig, config, overrides)
    summary = create_study(cfg, dataset, list(generations), db=db)
    if as_json:
        echo_json(summary)
        return
    console = stdout_console()
    verb = "created" if summary.created else "already exists (same inputs; nothing changed)"
    console.print(f"[bold]Study {verb}[/bold] in {summary.db}")
    console.print(f"{summary.items} items from {summary.conversations} conversations; "
                  f"{summary.ratings_per_item} ratings per item; {summary.items_per_rater} items per rater "
                  f"(attention checks included); {summary.raters_needed} raters needed")
    for system, n in summary.systems.items():
        console.print(f"  {system}: {n} items")
    for reason, n in summary.skipped.items():
        console.print(f"  [yellow]skipped {n}: {reason}[/yellow]")
    console.print(f"completion code: {summary.completion_code}")
    if summary.admin_token:
        console.print(f"[bold]admin token (shown once):[/bold] {summary.admin_token}")


@rate.command("serve", **example("tidekit rate serve --db runs/ratings.db --port 8000",
                                 "tidekit rate serve --db runs/ratings.db --host 127.0.0.1 secure_cookies=true "
                                 "trust_proxy=true require_prolific=true"))
@click.option("--db", required=True, help=_DB_HELP)
@click.option("--host", default="127.0.0.1", show_default=True, help="Interface to listen on.")
@click.option("--port", default=8000, show_default=True, type=click.IntRange(1, 65535), help="TCP port.")
@click.option("--root-path", default="", help="URL prefix when a proxy serves the app under a sub-path.")
@json_option("one line once the socket listens: {url, admin_url, host, port, pid}")
@overrides_argument
def serve_cmd(db: str, host: str, port: int, root_path: str, as_json: bool, overrides: tuple[str, ...]) -> None:
    """Serve the study to raters until Ctrl-C. Raters open http://HOST:PORT/ (Prolific: append
    ?PROLIFIC_PID={{%PROLIFIC_PID%}}&STUDY_ID={{%STUDY_ID%}}&SESSION_ID={{%SESSION_ID%}});
    the admin page is /admin; /healthz says whether the database can be written. KEY=VALUE
    overrides serving knobs (rate limits, require_prolific, max_unfinished_per_client,
    slot_timeout_min, secure_cookies, trust_proxy, trusted_proxies...; see docs/config.md). For
    real raters put it behind an HTTPS proxy and follow the launch checklist in docs/rating.md.
    """
    from tidekit._config import load_config
    from tidekit.rating import RatingServeConfig, serve

    cfg = load_config(RatingServeConfig, None, overrides)
    import json

    click.echo(f"serving on http://{host}:{port}{root_path}/  (admin: /admin; Ctrl-C to stop)", err=True)
    serve(db, host=host, port=port, config=cfg, root_path=root_path,
          on_ready=(lambda info: click.echo(json.dumps(info))) if as_json else None)


@rate.command("export", **example("tidekit rate export --db runs/ratings.db --out runs/ratings/ratings.parquet"))
@click.option("--db", required=True, help=_DB_HELP)
@click.option("--out", required=True, type=click.Path(path_type=Path), help="Output .csv or .parquet file.")
@click.option("--format", "fmt", type=click.Choice(["csv", "parquet"]), default=None,
              help="Format; default from the file suffix.")
@json_option("the export summary")
def export_cmd(db: str, out: Path, fmt: str | None, as_json: bool) -> None:
    """Write one row per rating with rater demographics joined and no raw identifiers (a
    manifest.json lands beside the file)."""
    from tidekit.rating import export_ratings

    summary = export_ratings(db, out, fmt)  # type: ignore[arg-type]
    if as_json:
        echo_json(summary)
        return
    stdout_console().print(f"wrote {summary.rows} ratings from {summary.raters} raters to {summary.path} "
                           f"({summary.attention_failed_raters} raters failed an attention check; "
                           f"{summary.simulated_rows} simulated rows)")


@rate.command("status", **example("tidekit rate status --db runs/ratings.db"))
@click.option("--db", required=True, help=_DB_HELP)
@click.option("--json", "as_json", is_flag=True, help="Print per-item and per-rater progress as JSON.")
def status_cmd(db: str, as_json: bool) -> None:
    """Progress: ratings per item against k, raters, attention-check failures."""
    from tidekit.rating import study_status

    s = study_status(db)
    if as_json:
        echo_json(s)
        return
    console = stdout_console()
    console.print(f"[bold]{s.title}[/bold]: {s.ratings}/{s.target_ratings} ratings; {s.items_complete}/{s.items} "
                  f"items have k={s.ratings_per_item} (min {s.item_ratings_min}, max {s.item_ratings_max})")
    console.print(f"raters: {s.raters_completed} completed, {s.raters_active} in progress, {s.raters_withdrawn} "
                  f"withdrew, {s.raters_failed_attention} failed attention; slots {s.bundles_claimed}/{s.bundles}")
    console.print(f"slots: {s.slots_free} free, {s.slots_unfinished} unfinished, {s.slots_idle} idle for "
                  f"{s.idle_after_min:g}+ min ({s.slots_idle_without_ratings} without ratings), "
                  f"{s.slots_released} released so far")


@rate.command("release", **example("tidekit rate release --db runs/ratings.db --idle-min 30",
                                   "tidekit rate release --db runs/ratings.db --idle-min 120 --with-ratings --dry-run"))
@click.option("--db", required=True, help=_DB_HELP)
@click.option("--idle-min", type=click.FloatRange(min=0), default=30.0, show_default=True,
              help="Free unfinished slots with no progress (consent, demographics, a rating) for this many minutes.")
@click.option("--with-ratings", is_flag=True,
              help="Also free slots that hold ratings; those partial ratings are deleted (the server never does this).")
@click.option("--dry-run", is_flag=True, help="Only list the slots that would be freed.")
@click.option("--json", "as_json", is_flag=True, help="Print the released rater ids as JSON.")
def release_cmd(db: str, idle_min: float, with_ratings: bool, dry_run: bool, as_json: bool) -> None:
    """Free abandoned rater slots so new raters can take them. A released rater's session ends
    (if they come back they start again); without --with-ratings, slots that hold ratings are
    kept. The server frees idle slots without ratings by itself when the study is full
    (slot_timeout_min); use this to do it by hand, e.g. after a Prolific time-out."""
    from tidekit.rating import RatingStore

    store = RatingStore.open(db)
    try:
        released = store.release_slots(idle_min * 60, with_ratings=with_ratings, dry_run=dry_run)
    finally:
        store.close()
    if as_json:
        echo_json({"released": released, "dry_run": dry_run})
        return
    verb = "would free" if dry_run else "freed"
    stdout_console().print(f"{verb} {len(released)} slot(s) idle for {idle_min:g}+ min"
                           + ("" if with_ratings else " (slots holding ratings kept)")
                           + (": " + ", ".join(released) if released else ""))


@rate.command("simulate", **example("tidekit rate simulate --db runs/ratings.db --seed 1",
                                    "tidekit rate simulate --db runs/ratings.db --raters 20 rater_sd=1.0"))
@click.option("--db", required=True, help=_DB_HELP)
@click.option("--raters", type=click.IntRange(min=1), default=None, help="Raters to add (default: fill the study).")
@click.option("--seed", default=0, show_default=True, help="Seed of the simulation.")
@click.option("--rater-model", "model_path", type=click.Path(path_type=Path), default=None,
              help="YAML rater model (see docs/rating.md); KEY=VALUE overrides its keys.")
@json_option("the simulation summary")
@overrides_argument
def simulate_cmd(db: str, raters: int | None, seed: int, model_path: Path | None, as_json: bool,
                 overrides: tuple[str, ...]) -> None:
    """Fill the study with simulated raters (rows labelled simulated=true) from a model with rater
    leniency, item effects, condition effects and planted demographic effects."""
    from tidekit._config import load_config
    from tidekit.rating import RaterModel, simulate_ratings

    model = load_config(RaterModel, model_path, overrides)
    s = simulate_ratings(db, raters=raters, model=model, seed=seed)
    if as_json:
        echo_json(s)
        return
    stdout_console().print(f"added {s.raters} simulated raters ({s.inattentive} inattentive), {s.ratings} ratings"
                           + ("; the study is now full" if s.full else ""))


@rate.command("token", **example("tidekit rate token --db runs/ratings.db"))
@click.option("--db", required=True, help=_DB_HELP)
@json_option("{admin_token}")
def token_cmd(db: str, as_json: bool) -> None:
    """Replace the admin token (the old one stops working) and print the new one."""
    from tidekit.rating import RatingStore
    from tidekit.rating._security import new_token

    store = RatingStore.open(db)
    try:
        token = new_token(24)
        store.set_admin_token(token)
    finally:
        store.close()
    if as_json:
        echo_json({"admin_token": token})
        return
    click.echo(token)


COMMANDS: list[click.Command] = [rate]
