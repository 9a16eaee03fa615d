"""The ``stagesync`` command line.

Exit status: 0 done, 1 the work found errors (a mapping's, a system's, refused records),
2 a setting, file or store URL to fix first (one line naming it, from ``cli_inputs``),
3 another agent is mid-cycle on the store.
"""

from __future__ import annotations

import os
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

    began = dt.datetime.now(dt.UTC)  # the run's time spans its mapping check and sign-in too
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
        report = run_cycle(store, parsed, salesforce, hubspot, dry_run=dry_run, started=began)
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
        min=0, max=65535, help="Port for /healthz, /metrics and the console.")] = 9464,
    health_host: Annotated[str, typer.Option(
        help="Address to serve them on; any but loopback needs STAGESYNC_CONSOLE_TOKEN (or "
             "STAGESYNC_CONSOLE_TOKEN_FILE), then required on every request.",
        envvar="STAGESYNC_HEALTH_HOST")] = "127.0.0.1",
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
    """Run the agent as a service: a cycle every INTERVAL seconds until SIGTERM or Ctrl-C, with
    /healthz, /metrics and the operator's console on --health-host:--health-port."""
    from sync_agent.console.app import Console
    from sync_agent.console.retry import Retrier
    from sync_agent.service import Agent, json_logging, log, run_forever

    json_logging()
    env_file = _env_file(env_file)
    token = _console_token("--health-host", health_host, env_file)
    # a service starts even while a system is down (its cycles fail and /healthz says so)
    parsed, salesforce, hubspot, store = _start(mapping, env_file, db, with_store=True,
                                                on_warning=log.warning,
                                                unreachable_is_fatal=False)
    settings = inputs.settings(env_file, on_warning=lambda _: None)  # warned once by _start
    agent = Agent(store, parsed, salesforce, hubspot, interval, lock_ttl=lock_ttl,
                  unhealthy_after=unhealthy_after, quota_recheck=quota_recheck)
    console_app = Console(store, mapping, token, in_force=parsed,
                          retrier=Retrier(store, lambda: (salesforce, hubspot), lambda: parsed),
                          stop_share=settings.salesforce.quota_stop_share)
    try:
        run_forever(agent, health_port, health_host, console_app)
    except OSError as exc:  # the health port is taken (or not ours to bind)
        inputs.fail(f"--health-port {health_port}: cannot serve /healthz and /metrics on "
                    f"{health_host}:{health_port}: {exc.strerror or exc} (fix: stop what "
                    "listens there, or give another --health-port; 0 picks a free one)")


def _console_token(option: str, host: str, env_file: Path | None) -> Any:
    """The console's token (None: none set), or one line and exit 2 when the bind needs one
    or the token setting is wrong."""
    from sync_agent.console.access import ConsoleAccessError, check_bind, load_token

    try:
        token = load_token(env_file)
        check_bind(host, token, option)
    except ConsoleAccessError as exc:
        inputs.fail(str(exc))
    return token


@app.command("console")
def console_command(
    db: Database = None,
    mapping: MappingOption = DEFAULT_MAPPING,
    host: Annotated[str, typer.Option(
        help="Address to listen on; any but loopback needs STAGESYNC_CONSOLE_TOKEN (or "
             "STAGESYNC_CONSOLE_TOKEN_FILE), then required on every request.",
        envvar="STAGESYNC_CONSOLE_HOST")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=0, max=65535, help="Port; 0 picks a free one.")]
    = 9465,
    env_file: EnvFile = None,
) -> None:
    """The operator's web console on its own (stagesync run serves it too): health, gaps, the
    funnel and weekly review, a record's story, the mapping. Ctrl-C stops it."""
    import signal
    import threading

    from connectors.build import build_connectors
    from sync_agent.console.app import Console, build_app
    from sync_agent.console.retry import Retrier
    from sync_agent.console.server import serve_in_thread

    env_file = _env_file(env_file)
    token = _console_token("--host", host, env_file)
    inputs.load_mapping(mapping)  # a path that is no file is exit 2; a bad mapping is shown
    store = inputs.store(db)
    retrier, off, stop_share = None, None, None
    if env_file is None and not any(k.startswith(("STAGESYNC_SALESFORCE__",
                                                  "STAGESYNC_HUBSPOT__")) for k in os.environ):
        off = ("no connection settings were given (fix: start the console with --env-file, "
               "the file of STAGESYNC_* settings the agent uses)")
    else:
        settings = inputs.settings(env_file)
        stop_share = settings.salesforce.quota_stop_share
        built: list[Any] = []

        def connectors() -> tuple[Any, Any]:
            if not built:
                built.extend(build_connectors(settings))
            return built[0], built[1]

        retrier = Retrier(store, connectors, Console(store, mapping).mapping)
    app_ = build_app(Console(store, mapping, token, retrier=retrier, retry_off=off,
                             stop_share=stop_share))
    try:
        server = serve_in_thread(app_, host, port, name="stagesync-console")
    except OSError as exc:
        inputs.fail(f"--port {port}: cannot serve the console on {host}:{port}: "
                    f"{exc.strerror or exc} (fix: stop what listens there, or give another "
                    "--port; 0 picks a free one)")
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    signal.signal(signal.SIGINT, lambda *_: done.set())
    typer.echo(f"console at {server.url}  (Ctrl-C stops it)")
    if off:
        inputs.warn(f"Retry is off: {off}")
    sys.stdout.flush()
    try:
        done.wait()
    finally:
        server.shutdown()


gaps_app = typer.Typer(help="Open gaps, whole: cold leads first (the longest waiting first, with "
                            "their owner and when they reached the stage), duplicates one row "
                            "a group. 'gaps resolve ID --note ...' and 'gaps ignore ID --note "
                            "...' close one by your decision.")
app.add_typer(gaps_app, name="gaps")
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON (for scripts).")]


def _print_json(data: Any) -> None:
    import json

    sys.stdout.write(json.dumps(data, indent=2, ensure_ascii=False) + "\n")


OptionalMapping = Annotated[Path | None, typer.Option(
    help="The mapping file, to name each record's object (default: stagesync.yaml here, "
         "if it is there and valid).")]


def _optional_mapping(path: Path | None) -> Any:
    """The mapping given (checked: its problems and exit 1), else the default one if it is
    here and valid, else None: reading the store needs no mapping."""
    if path is not None:
        return inputs.mapping(path)
    if DEFAULT_MAPPING.is_file():
        return inputs.check_mapping(DEFAULT_MAPPING)[0]
    return None


@gaps_app.callback(invoke_without_command=True)
def gaps(ctx: typer.Context,
         db: Database = None,
         kind: Annotated[str | None, typer.Option(help="Only this kind of gap.")] = None,
         owner: Annotated[str | None, typer.Option(
             help="Only gaps on records this person owns (name, email or id, either side).")]
         = None,
         older_than: Annotated[str | None, typer.Option(
             help="Only gaps older than this (a cold lead: its time at the stage), e.g. 2h, "
                  "3d, 1w.")] = None,
         limit: Annotated[int, typer.Option(help="Rows to show per kind (0: all).")] = 10,
         mapping: OptionalMapping = None,
         as_json: JsonOption = False) -> None:
    """Open gaps, whole: cold leads first (the longest waiting first, with when they reached
    the stage and their owner), duplicates one row per group, every other kind after."""
    if ctx.invoked_subcommand is not None:
        return
    import datetime as dt

    from sync_agent import cli_views
    from sync_agent.gap_list import gaps_json, list_gaps

    span = None
    if older_than is not None:
        span = cli_views.parse_span(older_than)
        if span is None:
            inputs.fail(f"--older-than {older_than!r}: write a number and a unit, e.g. 90m, "
                        "2h, 3d or 1w")
    parsed = _optional_mapping(mapping)
    store = inputs.store(db)
    now = dt.datetime.now(dt.UTC)
    with store.session() as session:
        views = list_gaps(session, parsed, kind=kind, owner=owner, older_than=span, now=now)
    if as_json:
        _print_json(gaps_json(views))
        return
    screen = cli_views.screen()
    if not views:
        wanted = " ".join(f"{name} {value}" for name, value in (
            ("of kind", kind), ("owned by", owner), ("older than", older_than)) if value)
        screen.print(f"no open gaps{(' ' + escape(wanted)) if wanted else ''}")
        return
    cli_views.print_gaps(screen, views, limit)


def _decide(outcome: str, gap_id: int, note: str, by: str | None, db: str | None) -> None:
    import getpass
    import os

    from sync_agent.gap_list import GapDecisionError, set_gap_outcome

    who = by or os.environ.get("STAGESYNC_OPERATOR") or getpass.getuser()
    store = inputs.store(db)
    with store.session() as session:
        try:
            view = set_gap_outcome(session, gap_id, outcome, note, who)
        except GapDecisionError as exc:
            inputs.fail(str(exc))
        session.commit()
    which = (f"gaps {', '.join(str(i) for i in view.ids)} (one {view.kind} group: "
             f"{', '.join(view.records)})" if len(view.ids) > 1
             else f"gap {view.id} ({view.kind}, {view.key})")
    after = ("a cycle leaves it closed while nothing in it changes" if outcome == "ignored"
             else "a cycle that still finds its cause opens it again")
    console.print(f"{escape(which)} {outcome} by {escape(who)}: {escape(note.strip())} "
                  f"({after}; stagesync explain {escape(view.key)} shows it)")


GapId = Annotated[int, typer.Argument(help="The gap's id (stagesync gaps lists them).")]
Note = Annotated[str, typer.Option("--note", help="Why: kept with the gap's history.")]
By = Annotated[str | None, typer.Option(
    "--by", help="Who decided (default: STAGESYNC_OPERATOR, else your login name).")]


@gaps_app.command("resolve")
def gaps_resolve(gap_id: GapId, note: Note, by: By = None, db: Database = None) -> None:
    """Close a gap you fixed. A cycle that still finds its cause opens it again."""
    _decide("resolved", gap_id, note, by, db)


@gaps_app.command("ignore")
def gaps_ignore(gap_id: GapId, note: Note, by: By = None, db: Database = None) -> None:
    """Close a gap you decided to leave as it is: cycles leave it closed until what it says
    changes (a duplicate group gains a record, a refusal a new message)."""
    _decide("ignored", gap_id, note, by, db)


@app.command()
def explain(
    ref: Annotated[str, typer.Argument(
        help="A Salesforce id, a HubSpot id or an email (any case).")],
    system: Annotated[str | None, typer.Option(
        help="Which side the id is from: salesforce or hubspot.")] = None,
    mapping: OptionalMapping = None,
    as_json: JsonOption = False,
    db: Database = None,
) -> None:
    """Why a record holds what it holds: its links, stages, every write the agent made to it
    or because of it (with the rule and reason), its gaps and refused writes."""
    from sync_agent import cli_views
    from sync_agent.explain import explain as explain_record
    from sync_agent.explain import explanation_json

    if system is not None and system not in ("salesforce", "hubspot"):
        inputs.fail(f"--system {system!r}: use salesforce or hubspot")
    parsed = _optional_mapping(mapping)
    store = inputs.store(db)
    with store.session() as session:
        found = explain_record(session, parsed, ref, system)
    if found is None:
        side = f" on the {system} side" if system else ""
        inputs.fail(f"{ref!r}: no record with this id or email{side} in the state store "
                    "(fix: give a Salesforce id, a HubSpot id or an email that a cycle has "
                    "read; stagesync gaps lists records that wait)")
    if as_json:
        _print_json(explanation_json(found))
        return
    cli_views.print_explanation(cli_views.screen(), found)


@app.command()
def status(db: Database = None, as_json: JsonOption = False) -> None:
    """Recent runs, calls made, dead letters waiting, and how far each object has been read."""
    from sync_agent import cli_views
    from sync_agent.run_status import build_status, status_json

    store = inputs.store(db)
    with store.session() as session:
        view = build_status(session)
    if as_json:
        _print_json(status_json(view))
        return
    cli_views.print_status(cli_views.screen(), view)


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
    """Retry dead letters: each refused record is synced again as it is now. Lists what is
    waiting, when each is due and why; retries the due ones, and the ones whose record
    changed since it was refused."""
    from sync_agent import state
    from sync_agent.dead_letters import retry_dead_letters

    parsed, salesforce, hubspot = _engine(mapping, env_file)
    store = inputs.store(db)
    try:
        result = retry_dead_letters(store, parsed, salesforce, hubspot, everything,
                                    follow=True)
    except ConnectorError as exc:
        console.print(f"[red]{escape(str(exc))}[/red]")
        raise typer.Exit(1) from None
    typer.echo(f"dead letters waiting: {len(result.letters)}" if result.letters
               else "no dead letters waiting")
    now = state.now()
    shown = sorted(result.letters, key=lambda x: (x.outcome == "waiting", x.due_at, x.id))
    for letter in shown[:RETRY_LINES]:  # a line each: a table would wrap in a narrow terminal
        what = (f"  letter {letter.id}: {letter.system} {letter.object} {letter.record}, "
                f"refused {letter.code} ({letter.attempts}x)")
        if letter.outcome != "waiting":
            typer.echo(f"{what}; retried ({letter.reason}): {letter.outcome}")
        else:
            typer.echo(f"{what}; due in {_wait_text(letter.due_at - now)}, at "
                       f"{letter.due_at:%Y-%m-%d %H:%M} UTC ({letter.reason})")
    if len(shown) > RETRY_LINES:
        typer.echo(f"  ... and {len(shown) - RETRY_LINES} more (stagesync gaps --kind "
                   "sync_error lists the records)")
    console.print(f"retried {result.tried} dead letter(s): {result.resolved} resolved, "
                  f"{result.failed} refused again (backed off), {result.gone} whose record "
                  "no longer exists")
    if result.failed:
        raise typer.Exit(1)


RETRY_LINES = 50  # letters ``stagesync retry`` lists, retried ones first


def _wait_text(wait: Any) -> str:
    """``4 min``, ``1 h 25 min``: how long until a letter is due."""
    minutes = max(int(wait.total_seconds() + 59) // 60, 1)
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes} min" if hours else f"{minutes} min"


@app.command()
def report(
    mapping: MappingOption = DEFAULT_MAPPING,
    html: Annotated[Path | None, typer.Option(
        help="Also write the report with charts to this HTML file.")] = None,
    as_json: JsonOption = False,
    db: Database = None,
) -> None:
    """The funnel both tools share: records per stage on each side, conversion between
    stages, SLA compliance and cold leads by owner (from the state store; no API calls)."""
    from sync_agent.report import build_report, report_json, write_html

    parsed = inputs.mapping(mapping)
    if html is not None:
        inputs.write_check(html, "HTML report")
    with inputs.store(db).session() as session:
        found = build_report(session, parsed)
    if as_json:
        _print_json(report_json(found))

    def percent(value: float | None) -> str:
        return "-" if value is None else f"{value:.0%}"

    for funnel in [] if as_json else found.funnels:
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
    if found.funnels and not as_json:
        console.print("to next: of the records that reached a stage (seen there or at a later "
                      "one), the share that reached the next; the last stage is where records "
                      "leave, counted where a record was seen there", soft_wrap=False)
    for sla in [] if as_json else found.slas:
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
        if as_json:  # stdout is the JSON
            typer.echo(f"HTML report written to {html}", err=True)
        else:
            console.print(f"HTML report written to {html}")


def main() -> None:  # pragma: no cover - console script entry
    app()
