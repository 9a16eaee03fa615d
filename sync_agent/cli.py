"""The ``stagesync`` command line.

Exit status: 0 done, 1 the work found errors (a mapping's, a system's, refused records),
2 a setting, file or store URL to fix first (one line naming it, from ``cli_inputs``),
3 another agent is mid-cycle on the store.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any, NoReturn, cast

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from connectors.contract import CheckReport
from connectors.errors import ConnectorError
from sync_agent import cli_inputs as inputs

app = typer.Typer(help="Keep Salesforce and HubSpot telling the same story about every lead.",
                  no_args_is_help=True)
sandbox_app = typer.Typer(help="Local emulators of the Salesforce and HubSpot APIs.",
                          no_args_is_help=True)
app.add_typer(sandbox_app, name="sandbox")
mapping_app = typer.Typer(help="The mapping file: validate, diff, schema.",
                          no_args_is_help=True)
app.add_typer(mapping_app, name="mapping")
sync_app = typer.Typer(help="Run sync cycles.", no_args_is_help=True)
app.add_typer(sync_app, name="sync")
console = Console(soft_wrap=True)  # a message is one line, whatever the width
DEFAULT_MAPPING = Path("stagesync.yaml")
SANDBOX_SETTINGS = Path(".stagesync/sandbox/sandbox.env")


def _version(value: bool) -> None:
    if value:
        from importlib.metadata import version

        typer.echo(f"stagesync {version('stagesync')}")
        raise typer.Exit()


@app.callback()
def main_options(
    version: Annotated[bool, typer.Option(
        "--version", callback=_version, is_eager=True,
        help="Print the version (from the installed package) and exit.")] = False,
) -> None:
    """Keep Salesforce and HubSpot telling the same story about every lead."""


EnvFile = Annotated[Path | None, typer.Option(
    "--env-file", help="Settings file (STAGESYNC_* lines); the sandbox writes one.",
    envvar="STAGESYNC_ENV_FILE")]


@sandbox_app.command("start")
def sandbox_start(
    seed: Annotated[int, typer.Option(help="Seed of the generated data (same seed, same data).")]
    = 7,
    records: Annotated[int, typer.Option(help="About how many records to seed in all.")] = 638,
    faults: Annotated[str, typer.Option(help="Fault spec, e.g. 'hubspot.*=429@0.05;"
                                             "salesforce.query=expired#1'.")] = "",
    rate_limit: Annotated[int, typer.Option(help="HubSpot requests per rolling 10 s (0: off).")]
    = 100,
    search_rate: Annotated[int, typer.Option(help="HubSpot searches per second (0: off).")] = 4,
    search_lag: Annotated[float, typer.Option(help="Seconds HubSpot search lags writes.")] = 3.0,
    duplicate_rule: Annotated[bool, typer.Option(
        help="Salesforce's standard Lead and Contact duplicate rules (on, as in a new org).")]
    = True,
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    salesforce_port: Annotated[int, typer.Option(help="0 picks a free port.")] = 8443,
    hubspot_port: Annotated[int, typer.Option(help="0 picks a free port.")] = 8080,
    state_dir: Annotated[Path, typer.Option(help="Where the CA, keys and settings go.")]
    = Path(".stagesync/sandbox"),
    lifecycle_stage: Annotated[list[str] | None, typer.Option(
        help="A lifecycle stage the portal defines itself, ID:LABEL:AFTER (after the stage "
             "AFTER), e.g. 1234567:Onboarding:customer. Repeatable.")] = None,
) -> None:
    """Start both emulators, seed them, and write the connection settings. Ctrl-C stops."""
    from sandbox.faults import FaultSpecError, parse_fault_spec
    from sandbox.seed import scaled
    from sandbox.server import SandboxConfig, SandboxServer

    try:
        parse_fault_spec(faults)
    except FaultSpecError as exc:
        raise typer.BadParameter(str(exc), param_hint="--faults") from None
    stages = []
    for spec in lifecycle_stage or []:
        parts = spec.split(":")
        if len(parts) != 3 or not all(p.strip() for p in parts):
            raise typer.BadParameter(f"{spec!r}: write ID:LABEL:AFTER, e.g. "
                                     "1234567:Onboarding:customer", param_hint="--lifecycle-stage")
        stages.append((parts[0].strip(), parts[1].strip(), parts[2].strip()))
    server = SandboxServer(SandboxConfig(
        host=host, salesforce_port=salesforce_port, hubspot_port=hubspot_port, seed=seed,
        sizes=scaled(records), faults=faults, hubspot_per_ten_seconds=rate_limit,
        hubspot_search_per_second=search_rate, search_lag_seconds=search_lag,
        duplicate_rule=duplicate_rule, state_dir=state_dir,
        custom_lifecycle_stages=tuple(stages)))
    info = server.info
    seeded = ", ".join(f"{n} {k}" for k, n in info.seeded.items())

    for notice in server.notices:
        inputs.warn(notice)

    def ready() -> None:
        console.print(f"Salesforce emulator: {info.salesforce_url}  (HTTPS, CA {info.ca_bundle})")
        console.print(f"HubSpot emulator:    {info.hubspot_url}")
        console.print(f"Seeded (seed {seed}): {seeded}")
        console.print(f"Connection settings written to {info.settings_file}")
        console.print(f"  try: stagesync check --env-file {info.settings_file}")
        console.print("sandbox ready; Ctrl-C stops it", highlight=False)
        sys.stdout.flush()

    server.run_forever(on_ready=ready)


def _print_report(report: CheckReport) -> None:
    table = Table(title=f"{report.system}: {report.endpoint} ({report.api_version})")
    table.add_column("object")
    table.add_column("label")
    table.add_column("records", justify="right")
    table.add_column("fields", justify="right")
    for obj in report.objects:
        table.add_row(obj.name, obj.label, str(obj.records), str(obj.fields))
    console.print(table)
    console.print(f"  signed in as: {report.identity}")
    if report.quota:
        console.print(f"  quota: {report.quota}")
    if report.permissions:
        console.print(f"  permissions: {report.permissions}")
    for missing in report.missing:
        console.print(f"  [red]missing: {escape(missing)}[/red]")


FieldsMapping = Annotated[Path | None, typer.Option(
    "--mapping", help="The mapping whose fields to look for (default: stagesync.yaml here, "
    "else the default mapping `stagesync init` writes).")]


@app.command()
def check(env_file: EnvFile = None, mapping: FieldsMapping = None) -> None:
    """Reach both systems through the real clients and print what was found, and the custom
    fields and properties the mapping needs that are missing."""
    from connectors.build import build_connectors

    settings = inputs.settings(env_file)
    failed = False
    connectors = build_connectors(settings)
    reached = 0
    for connector in connectors:
        try:
            report = connector.check()
            _print_report(report)
            failed = failed or bool(report.missing)
            reached += 1
        except ConnectorError as exc:
            console.print(f"[red]{escape(str(exc))}[/red]")
            failed = True
    if reached == len(connectors):
        failed = _check_fields(mapping, *connectors) or failed
    if failed:
        raise typer.Exit(1)


def _mapping_for_fields(mapping: Path | None) -> tuple[str, Any]:
    """The mapping ``check`` and ``init --create-fields`` look for fields of (its parts that
    parse, when it has errors), and how to name it."""
    from importlib.resources import files

    from mapping.loader import load_text
    from mapping.problems import Problem
    from mapping.validate import check_all

    if mapping is None and not DEFAULT_MAPPING.exists():
        name = "the default mapping"
        located = load_text(files("mapping").joinpath("default.yaml").read_text(
            encoding="utf-8"), name)
    else:
        path = mapping or DEFAULT_MAPPING
        name = str(path)
        loaded = inputs.load_mapping(path)
        if isinstance(loaded, Problem):
            typer.echo(str(loaded))
            return name, None
        located = loaded
    checked = check_all(located)
    errors = sum(1 for p in checked.problems if p.severity == "error")
    if errors:
        console.print(f"note: {escape(name)} has {errors} error(s) (stagesync mapping validate "
                      "lists them); the fields of the parts that parse are looked for")
    return name, checked.lenient


def _check_fields(mapping: Path | None, salesforce: Any, hubspot: Any) -> bool:
    """List the fields and properties the mapping needs that the org or portal lacks;
    whether any is missing."""
    from mapping.needs import Described, missing

    name, model = _mapping_for_fields(mapping)
    if model is None:
        return True
    try:
        gaps = missing(model, Described(salesforce.describe, hubspot.describe))
    except ConnectorError as exc:
        console.print(f"[red]{escape(str(exc))}[/red]")
        return True
    if not gaps:
        console.print(f"fields: every field and property {escape(name)} needs is there")
        return False
    console.print(f"[red]missing for {escape(name)}: {len(gaps)} field(s) and "
                  "property(ies)[/red] (system, object, name, type, needed by):")
    rows = [(g.system, g.object, g.name, g.type_label(), g.why) for g in gaps]
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    for row in rows:
        cells = "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=False))
        console.print(f"  {escape(cells)}  needed by: {escape(row[4])}", highlight=False)
    console.print("  fix: `stagesync init --create-fields` creates the HubSpot properties and "
                  "prints the Setup steps of the Salesforce fields (docs/connect.md)")
    return True


@app.command()
def init(
    mapping: Annotated[Path, typer.Option(help="Where to write the mapping file.")]
    = DEFAULT_MAPPING,
    force: Annotated[bool, typer.Option(help="Overwrite an existing file.")] = False,
    create_fields: Annotated[bool, typer.Option(
        "--create-fields", help="Also create the HubSpot properties the mapping needs that "
        "the portal lacks (the plan is shown first), and print the Setup steps of the "
        "Salesforce fields the org lacks. Uses an existing mapping file as it is.")] = False,
    yes: Annotated[bool, typer.Option(
        "--yes", help="With --create-fields: create without asking.")] = False,
    env_file: EnvFile = None,
) -> None:
    """Write the default mapping (standard objects and stages, commented) to start from."""
    from importlib.resources import files

    inputs.write_check(mapping, "mapping file")
    if mapping.exists() and not force:
        if not create_fields:
            console.print(f"[red]{mapping} exists[/red]; use --force to overwrite it")
            raise typer.Exit(1)
        console.print(f"{mapping} exists: creating the fields it needs")
    else:
        try:
            mapping.write_text(files("mapping").joinpath("default.yaml").read_text(
                encoding="utf-8"), encoding="utf-8")
        except OSError as exc:
            inputs.fail(f"{mapping}: cannot write it: {exc.strerror} (fix: give a path in a "
                        "folder you can write)")
        console.print(f"wrote {mapping}; check it with: stagesync mapping validate --live")
    if create_fields:
        _create_fields(mapping, env_file, yes)


def _create_fields(mapping: Path, env_file: Path | None, yes: bool) -> None:
    """Show what is missing, ask, create the HubSpot properties; print the Salesforce steps."""
    from connectors.build import build_connectors
    from connectors.hubspot import HubSpotConnector
    from connectors.hubspot_properties import create_property
    from mapping.field_setup import hubspot_property, salesforce_steps
    from mapping.needs import Described, missing
    from mapping.problems import Problem
    from mapping.validate import check_all

    located = inputs.load_mapping(mapping)
    if isinstance(located, Problem):
        _refuse(mapping, [located], "offline")
    checked = check_all(located)
    if checked.strict is None:
        _refuse(mapping, checked.problems, "offline")
    salesforce, hubspot = build_connectors(inputs.settings(_env_file(env_file)))
    try:
        gaps = missing(checked.strict, Described(salesforce.describe, hubspot.describe))
    except ConnectorError as exc:
        console.print(f"[red]{escape(str(exc))}[/red]")
        raise typer.Exit(1) from None
    properties = [g for g in gaps if g.system == "hubspot"]
    fields = [g for g in gaps if g.system == "salesforce"]
    if not gaps:
        console.print(f"nothing to create: every field and property {mapping} needs is there")
        return
    if properties:
        console.print(f"HubSpot: {len(properties)} property(ies) to create through the "
                      "properties API:")
        for need in properties:
            body = hubspot_property(need)
            console.print(f"  + {need.object}.{need.name}: {need.type_label()}, label "
                          f"{body['label']!r}, group {body['group_name']} (needed by: "
                          f"{need.why})", highlight=False, markup=False)
    if fields:
        console.print(f"Salesforce: {len(fields)} field(s) to add in Setup (stagesync does not "
                      "create Salesforce fields; docs/connect.md says why):")
        for need in fields:
            console.print(f"  {need.object}.{need.name} ({need.type_label()}; needed by: "
                          f"{need.why}): {salesforce_steps(need)}", highlight=False,
                          markup=False)
    failed = bool(fields)
    if properties:
        if not yes and not typer.confirm(f"Create the {len(properties)} HubSpot "
                                         "property(ies) now?", default=False):
            console.print("nothing was created")
            raise typer.Exit(1)
        for need in properties:
            try:
                made = create_property(cast(HubSpotConnector, hubspot), need.object,
                                       hubspot_property(need))
                console.print(f"  {made.outcome}: {made.object}.{made.name}", highlight=False)
            except ConnectorError as exc:
                failed = True
                console.print(f"[red]  not created: {need.object}.{need.name}: "
                              f"{escape(str(exc))}[/red]")
    console.print("then run: stagesync check (it lists what is still missing)")
    if failed:
        raise typer.Exit(1)


def _env_file(env_file: Path | None) -> Path | None:
    if env_file is None and SANDBOX_SETTINGS.exists():
        return SANDBOX_SETTINGS
    return env_file


@mapping_app.command("validate")
def mapping_validate(
    mapping: Annotated[Path, typer.Argument(help="The mapping file.")] = DEFAULT_MAPPING,
    live: Annotated[bool, typer.Option(help="Also check against both systems' schemas.")]
    = False,
    env_file: EnvFile = None,
) -> None:
    """Check a mapping file; every problem is listed with its line, offline and live ones
    together. Exit 1 on any error."""
    from mapping.checks import check_everything
    from mapping.problems import Problem

    located = inputs.load_mapping(mapping)
    if isinstance(located, Problem):
        typer.echo(str(located))
        raise typer.Exit(1)
    if live:
        from connectors.build import build_connectors

        settings = inputs.settings(_env_file(env_file))
        salesforce, hubspot = build_connectors(settings)
        try:
            report = check_everything(located, salesforce.describe, hubspot.describe,
                                      getattr(hubspot, "association_labels", None))
        except ConnectorError as exc:
            console.print(f"[red]{escape(str(exc))}[/red]")
            raise typer.Exit(1) from None
    else:
        report = check_everything(located)
    for problem in report.problems:
        typer.echo(str(problem))
    checked = "offline and live" if report.live else "offline"
    typer.echo(f"{mapping}: {report.errors} error(s), {report.warnings} warning(s) ({checked})")
    if report.errors:
        raise typer.Exit(1)


@mapping_app.command("schema")
def mapping_schema() -> None:
    """Print the mapping file's JSON Schema (for editor autocomplete and checks)."""
    import json

    from mapping.model import MappingFile

    schema = MappingFile.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "stagesync mapping file"
    sys.stdout.write(json.dumps(schema, indent=2) + "\n")


@mapping_app.command("diff")
def mapping_diff(
    old: Annotated[Path, typer.Argument(help="The mapping in force.")],
    new: Annotated[Path, typer.Argument(help="The proposed mapping.")],
) -> None:
    """What changing OLD into NEW would do: rules changed, stages remapped, pairs added."""
    from mapping.diff import diff

    loaded = []
    for path in (old, new):
        parsed, problems = inputs.check_mapping(path)
        if parsed is None:  # no diff of a file that is not a mapping: a file to fix first
            for problem in problems:
                typer.echo(str(problem), err=True)
            errors = sum(1 for p in problems if p.severity == "error")
            inputs.fail(f"{path}: {errors} error(s); nothing to compare (fix: correct them; "
                        f"`stagesync mapping validate {path}` lists them)")
        loaded.append(parsed)
    changes = diff(loaded[0], loaded[1])
    for line in changes or ["no change in meaning"]:
        typer.echo(line)


Database = Annotated[str | None, typer.Option(
    "--db", help="State store URL (default: sqlite:///stagesync.db here).",
    envvar="STAGESYNC_DATABASE_URL")]


def _engine(mapping: Path, env_file: Path | None) -> tuple[Any, Any, Any]:
    """The mapping, checked offline and against both systems' schemas, and both connectors;
    or the problems and exit 2 (see ``_start``). A system that cannot be reached is left for
    the command to meet at its first call (after its store is opened), as it did before."""
    parsed, salesforce, hubspot, _ = _start(mapping, env_file, unreachable_is_fatal=False)
    return parsed, salesforce, hubspot


def _start(mapping: Path, env_file: Path | None, db: str | None = None, *,
           with_store: bool = False, on_warning: inputs.Warn = inputs.warn,
           unreachable_is_fatal: bool = True) -> tuple[Any, Any, Any, Any]:
    """What a command that writes needs before it starts: the mapping, both connectors and
    (``with_store``) the state store. The mapping is checked offline, then against both
    systems' schemas (the describes the store caches, confirmed live before a refusal): a
    mapping with any error is never run, since each record it touches would become a dead
    letter. Its problems are printed and the exit status is 2, with nothing read or written;
    a system that cannot be reached is its one line and exit 1."""
    from connectors.build import build_connectors
    from mapping.checks import check_everything
    from mapping.problems import Problem
    from sync_agent.schema_cache import use_schema_cache

    located = inputs.load_mapping(mapping)
    if isinstance(located, Problem):
        _refuse(mapping, [located], "offline")
    offline = check_everything(located)
    if offline.errors:
        _refuse(mapping, offline.problems, "offline")
    settings = inputs.settings(_env_file(env_file), on_warning=on_warning)
    salesforce, hubspot = build_connectors(settings)
    store = inputs.store(db, on_warning=on_warning) if with_store else None
    if store is not None:
        use_schema_cache(store, (salesforce, hubspot), refresh=False)

    def refresh() -> None:
        for connector in (salesforce, hubspot):
            connector.clear_cache()

    try:
        report = check_everything(located, salesforce.describe, hubspot.describe,
                                  getattr(hubspot, "association_labels", None), refresh)
    except ConnectorError as exc:
        if not unreachable_is_fatal:
            on_warning(f"{mapping}: not checked against the live schemas: {exc}")
            return offline.mapping, salesforce, hubspot, store
        console.print(f"[red]{escape(str(exc))}[/red]")
        raise typer.Exit(1) from None
    if report.errors:
        _refuse(mapping, report.problems, "against the live schemas")
    return report.mapping, salesforce, hubspot, store


def _refuse(mapping: Path, problems: list[Any], checked: str) -> NoReturn:
    """A mapping's problems, one a line, then what to do; exit 2 (a file to fix first)."""
    for problem in problems:
        typer.echo(str(problem), err=True)
    errors = sum(1 for p in problems if p.severity == "error")
    inputs.fail(f"{mapping}: {errors} error(s) {checked}; no record was read or written (fix: "
                f"correct them; `stagesync mapping validate --live {mapping}` lists them)")


MappingOption = Annotated[Path, typer.Option("--mapping", help="The mapping file.")]


@sync_app.command("once")
def sync_once(
    mapping: Annotated[Path, typer.Option(help="The mapping file.")] = DEFAULT_MAPPING,
    dry_run: Annotated[bool, typer.Option(
        "--dry-run", help="Print the plan (record, field, old -> new, rule); write nothing.")]
    = False,
    env_file: EnvFile = None,
    db: Database = None,
) -> None:
    """Run one sync cycle now (not while an agent on the same store is mid-cycle)."""
    import datetime as dt
    import os
    import socket

    from sync_agent import state
    from sync_agent.cycle import describe_identity, describe_plan, run_cycle
    from sync_agent.service import LOCK

    parsed, salesforce, hubspot, store = _start(mapping, env_file, db, with_store=True)
    holder = f"{socket.gethostname()}:{os.getpid()}"
    ttl = dt.timedelta(minutes=30)
    if not state.acquire_lock(store, LOCK, holder, ttl) and not (
            state.take_over_dead_lock(store, LOCK, socket.gethostname())
            and state.acquire_lock(store, LOCK, holder, ttl)):
        console.print("[red]another agent is running a cycle on this store[/red]: try again "
                      "when it is done (stagesync status)")
        raise typer.Exit(3)
    try:
        report = run_cycle(store, parsed, salesforce, hubspot, dry_run=dry_run)
    except ConnectorError as exc:
        console.print(f"[red]{escape(str(exc))}[/red]")
        raise typer.Exit(1) from None
    finally:
        state.release_lock(store, LOCK, holder)
    if dry_run:
        for line in describe_identity(report):
            typer.echo(line)
        lines = list(describe_plan(report))
        for line in lines:
            typer.echo(line)
        creates = sum(1 for p in report.plan if p.create)
        typer.echo(f"dry run: {len(report.links)} link(s), {creates} create(s), "
                   f"{len(lines)} field change(s) planned, nothing written")
    table = Table(title="cycle" + (" (dry run)" if dry_run else ""))
    table.add_column("what")
    table.add_column("count", justify="right")
    for label, counts in (("read", report.read), ("written", report.written),
                          ("created", report.created), ("gaps", report.gaps)):
        for name, count in sorted(counts.items()):
            table.add_row(f"{label} {name}", str(count))
    table.add_row("linked", str(report.linked))
    table.add_row("already in sync", str(report.in_sync))
    table.add_row("refused (dead letters)", str(report.failed))
    table.add_row("API calls", str(sum(report.calls.values())))
    console.print(table)


@app.command()
def run(
    mapping: Annotated[Path, typer.Option(help="The mapping file.")] = DEFAULT_MAPPING,
    interval: Annotated[float, typer.Option(help="Seconds between cycles.")] = 60.0,
    health_port: Annotated[int, typer.Option(
        min=0, max=65535, help="Local port for /healthz and /metrics.")] = 9464,
    lock_ttl: Annotated[float | None, typer.Option(
        help="Seconds of the cycle lock's lease, renewed every third of it while a cycle "
             "runs (default: 5 x interval, at least 300).", envvar="STAGESYNC_LOCK_TTL")]
    = None,
    unhealthy_after: Annotated[int, typer.Option(
        min=1, help="/healthz answers 503 after this many failed cycles in a row.",
        envvar="STAGESYNC_UNHEALTHY_AFTER")] = 3,
    quota_recheck: Annotated[float, typer.Option(
        min=0.0, help="Seconds between Salesforce /limits checks while paused at the quota "
                      "stop.", envvar="STAGESYNC_QUOTA_RECHECK")] = 300.0,
    env_file: EnvFile = None,
    db: Database = None,
) -> None:
    """Run the agent as a service: a cycle every INTERVAL seconds until SIGTERM or Ctrl-C."""
    from sync_agent.service import Agent, json_logging, log, run_forever

    json_logging()
    # a service starts even while a system is down (its cycles fail and /healthz says so)
    parsed, salesforce, hubspot, store = _start(mapping, env_file, db, with_store=True,
                                                on_warning=log.warning,
                                                unreachable_is_fatal=False)
    agent = Agent(store, parsed, salesforce, hubspot, interval, lock_ttl=lock_ttl,
                  unhealthy_after=unhealthy_after, quota_recheck=quota_recheck)
    try:
        run_forever(agent, health_port)
    except OSError as exc:  # the health port is taken (or not ours to bind)
        inputs.fail(f"--health-port {health_port}: cannot serve /healthz and /metrics on "
                    f"127.0.0.1:{health_port}: {exc.strerror or exc} (fix: stop what listens "
                    "there, or give another --health-port; 0 picks a free one)")


@app.command()
def gaps(db: Database = None,
         kind: Annotated[str | None, typer.Option(help="Only this kind of gap.")] = None,
         limit: Annotated[int, typer.Option(help="Rows to show per kind.")] = 10) -> None:
    """Open gaps: records missing on one side, ambiguous matches, refused writes."""
    from collections import Counter

    from sync_agent import state

    store = inputs.store(db)
    with store.session() as session:
        found = [g for g in state.open_gaps(session) if kind is None or g.kind == kind]
    counts = Counter((g.kind, g.pair) for g in found)
    summary = Table(title="open gaps")
    for column in ("kind", "pair", "open"):
        summary.add_column(column)
    for (gap_kind, pair), count in sorted(counts.items()):
        summary.add_row(gap_kind, pair, str(count))
    console.print(summary)
    shown: Counter[str] = Counter()
    detail = Table(title=f"examples (up to {limit} per kind)")
    for column in ("kind", "pair", "record", "detail", "since"):
        detail.add_column(column)
    for gap in found:
        if shown[gap.kind] >= limit:
            continue
        shown[gap.kind] += 1
        text = ", ".join(f"{k}={v}" for k, v in gap.detail.items() if v not in (None, [], ""))
        detail.add_row(gap.kind, gap.pair, gap.key, text[:80],
                       state._aware(gap.opened_at).strftime("%Y-%m-%d %H:%M"))
    console.print(detail)


@app.command()
def status(db: Database = None) -> None:
    """Recent runs, calls made, dead letters waiting, and how far each object has been read."""
    from sqlalchemy import func, select

    from sync_agent import state
    from sync_agent.tables import DeadLetter, Run, WatermarkRow

    store = inputs.store(db)
    with store.session() as session:
        runs = list(session.scalars(select(Run).order_by(Run.id.desc()).limit(5)))
        waiting = session.scalar(select(func.count()).select_from(DeadLetter).where(
            DeadLetter.resolved_at.is_(None))) or 0
        marks = list(session.scalars(select(WatermarkRow).order_by(WatermarkRow.system,
                                                                   WatermarkRow.object)))
    table = Table(title="recent runs")
    for column in ("run", "started", "seconds", "status", "written", "refused", "calls"):
        table.add_column(column)
    for run in runs:
        seconds = ((state._aware(run.finished_at) - state._aware(run.started_at))
                   .total_seconds() if run.finished_at else None)
        written = sum(run.counts.get("written", {}).values())
        table.add_row(str(run.id), state._aware(run.started_at).strftime("%Y-%m-%d %H:%M:%S"),
                      f"{seconds:.1f}" if seconds is not None else "-", run.status,
                      str(written), str(run.counts.get("failed", 0)),
                      str(sum(run.calls.values())))
    console.print(table)
    lag = Table(title="read up to")
    for column in ("system", "object", "last change read", "behind now"):
        lag.add_column(column)
    now = state.now()
    for mark in marks:
        cursor = state._aware(mark.cursor)
        lag.add_row(mark.system, mark.object, cursor.strftime("%Y-%m-%d %H:%M:%S"),
                    str(now - cursor).split(".")[0])
    console.print(lag)
    quota = next((r.counts.get("salesforce_api") for r in runs
                  if r.counts.get("salesforce_api") and r.counts["salesforce_api"][1]), None)
    if quota:
        used, limit = quota
        console.print(f"Salesforce API requests today: {used:,} of {limit:,} "
                      f"({used / limit:.1%}), as of the last cycle")
    if runs and runs[0].status == "failed" and runs[0].error:  # why the agent is waiting
        console.print(f"last run failed: {escape(runs[0].error)}")
    console.print(f"dead letters waiting for retry: {waiting}")


@app.command()
def backfill(
    object_name: Annotated[str, typer.Option(
        "--object", help="The Salesforce object to bring across (Lead, Contact, ...).")],
    since: Annotated[str | None, typer.Option(
        help="Only records changed since this date (YYYY-MM-DD, UTC).")] = None,
    mapping: MappingOption = DEFAULT_MAPPING,
    page_size: Annotated[int, typer.Option(help="Records per page (one commit each).")]
    = 2000,
    env_file: EnvFile = None,
    db: Database = None,
) -> None:
    """Bring every record of one Salesforce object across through Bulk API 2.0. Resumable: run
    it again after a crash or Ctrl-C and it continues at the first unapplied page."""
    import datetime as dt

    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
    )

    from sync_agent.backfill import BackfillError, run_backfill

    start: dt.datetime | None = None
    if since is not None:
        try:
            start = dt.datetime.combine(dt.date.fromisoformat(since), dt.time(0), dt.UTC)
        except ValueError:
            console.print(f"[red]--since {since!r} is not a date[/red]: use YYYY-MM-DD")
            raise typer.Exit(2) from None
    parsed, salesforce, hubspot = _engine(mapping, env_file)
    store = inputs.store(db)
    began = [0.0, 0]
    with Progress(TextColumn(f"backfill {object_name}"), BarColumn(), MofNCompleteColumn(),
                  TextColumn("{task.fields[rate]} records/s"), TimeRemainingColumn(),
                  console=console) as bar:
        task = bar.add_task("backfill", total=None, rate="-")

        def progress(done: int, total: int | None) -> None:
            import time

            now = time.monotonic()
            if not began[0]:
                began[0], began[1] = now, done
            elapsed = now - began[0]
            rate = (done - began[1]) / elapsed if elapsed > 0 else 0.0
            bar.update(task, completed=done, total=total, rate=f"{rate:,.0f}")

        try:
            result = run_backfill(store, parsed, salesforce, hubspot, object_name, start,
                                  page_size, progress)
        except (BackfillError, ConnectorError) as exc:
            console.print(f"[red]{escape(str(exc))}[/red]")
            raise typer.Exit(1) from None
    report = result.report
    console.print(
        f"backfill of {object_name} {'resumed and ' if result.resumed else ''}finished: "
        f"{result.done} record(s) in {result.pages} page(s) this run, job {result.job_id}; "
        f"linked {report.linked}, created {sum(report.created.values())}, "
        f"written {sum(report.written.values())}, refused {report.failed}, "
        f"gaps {sum(report.gaps.values())}")


@app.command()
def retry(
    everything: Annotated[bool, typer.Option(
        "--all", help="Retry every waiting dead letter, not only those due.")] = False,
    mapping: MappingOption = DEFAULT_MAPPING,
    env_file: EnvFile = None,
    db: Database = None,
) -> None:
    """Retry dead letters: each refused record is synced again as it is now."""
    from sync_agent.dead_letters import retry_dead_letters

    parsed, salesforce, hubspot = _engine(mapping, env_file)
    store = inputs.store(db)
    try:
        result = retry_dead_letters(store, parsed, salesforce, hubspot, everything)
    except ConnectorError as exc:
        console.print(f"[red]{escape(str(exc))}[/red]")
        raise typer.Exit(1) from None
    console.print(f"retried {result.tried} dead letter(s): {result.resolved} resolved, "
                  f"{result.failed} refused again (backed off), {result.gone} whose record "
                  "no longer exists")
    if result.failed:
        raise typer.Exit(1)


@app.command()
def report(
    mapping: MappingOption = DEFAULT_MAPPING,
    html: Annotated[Path | None, typer.Option(
        help="Also write the report with charts to this HTML file.")] = None,
    db: Database = None,
) -> None:
    """The funnel both tools share: records per stage on each side, conversion between
    stages, SLA compliance and cold leads by owner (from the state store; no API calls)."""
    from sync_agent.report import build_report, write_html

    parsed = inputs.mapping(mapping)
    if html is not None:
        inputs.write_check(html, "HTML report")
    with inputs.store(db).session() as session:
        found = build_report(session, parsed)

    def percent(value: float | None) -> str:
        return "-" if value is None else f"{value:.0%}"

    for funnel in found.funnels:
        table = Table(title=f"funnel: {funnel.stage_map}")
        for column in ("stage (Salesforce / HubSpot)", "Salesforce", "HubSpot",
                       "to next (SF)", "to next (HS)"):
            table.add_column(column, justify="left" if column.startswith("stage") else "right")
        for row in funnel.rows:
            table.add_row(row.label, str(row.counts["salesforce"]), str(row.counts["hubspot"]),
                          percent(row.conversion["salesforce"]),
                          percent(row.conversion["hubspot"]))
        for side, values in funnel.unmapped.items():
            for value, count in values.most_common():
                table.add_row(f"(not in the map) {value}",
                              *((str(count), "") if side == "salesforce" else ("", str(count))),
                              "", "")
        console.print(table)
    for sla in found.slas:
        table = Table(title=f"SLA {sla.rule}: compliance {percent(sla.compliance)} "
                            f"({sla.reached} reached, {sla.breached} went cold, "
                            f"{sla.open_now} cold now)")
        table.add_column("owner")
        table.add_column("cold leads now", justify="right")
        for owner, count in sla.by_owner.most_common():
            table.add_row(owner, str(count))
        console.print(table)
    if html is not None:
        try:
            warning = write_html(found, html)
        except OSError as exc:
            inputs.fail(f"--html {html}: cannot write it: {exc.strerror} (fix: give a path in "
                        "a folder you can write)")
        if warning:
            inputs.warn(warning)
        console.print(f"HTML report written to {html}")


def main() -> None:  # pragma: no cover - console script entry
    app()
