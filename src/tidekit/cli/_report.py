"""``tidekit report``: a self-contained HTML report (plus figures and tables) of a run folder."""

from __future__ import annotations

from pathlib import Path

import click

from tidekit.cli._common import echo_json, example, json_option, stdout_console, stdout_to_stderr

__all__ = ["COMMANDS"]


@click.command("report", **example("tidekit report runs/study",
                                   "tidekit report runs/study --out /tmp/study-report --screenshot"))
@click.argument("run_dir", type=click.Path(path_type=Path))
@click.option("--out", type=click.Path(path_type=Path), default=None, help="Output folder [RUN_DIR/report].")
@click.option("--title", default=None, help="Report title.")
@click.option("--analyze/--no-analyze", default=True, show_default=True,
              help="Analyse exported ratings first when the run has no analysis yet.")
@click.option("--screenshot", is_flag=True, help="Also save screenshot.png rendered by headless Chromium.")
@json_option("the ReportResult (html, figures, tables, missing parts, simulated)")
def report_cmd(run_dir: Path, out: Path | None, title: str | None, analyze: bool, screenshot: bool,
               as_json: bool) -> None:
    """Write RUN_DIR/report/report.html (no CDN: opens offline), figures/*.png|svg and
    tables/*.csv|md|tex, from whatever stages the run holds; absent parts are listed."""
    from tidekit.reporting import ReportConfig, report

    config = ReportConfig(run=str(run_dir), title=title, analyze=analyze, screenshot=screenshot)
    with stdout_to_stderr(as_json):
        result = report(config, out=out)
    if as_json:
        echo_json(result)
        return
    console = stdout_console()
    if result.simulated:
        console.print("[bold yellow]the ratings in this run are SIMULATED; the report says so[/bold yellow]")
    for m in result.missing:
        console.print(f"[dim]missing: {m}[/dim]")
    console.print(f"{len(result.figures)} figures, {len(result.tables)} tables")
    if result.screenshot:
        console.print(f"screenshot: {result.screenshot}")
    click.echo(f"wrote {result.html}")


COMMANDS = [report_cmd]
