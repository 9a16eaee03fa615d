"""Chaos: SIGKILL the real agent at random moments and inject faults, then compare both systems
record by record with a twin world that was never hurt.

Two scenarios, each on a pair of worlds (a world: a sandbox in its own process, the default
mapping, a SQLite store, the agent run as `stagesync sync once`; see bench/chaos_world.py).
Both worlds of a pair are seeded alike and receive the identical injected changes between
runs: edits of Leads, Contacts, Accounts and Opportunities in Salesforce and of contacts,
companies and deals in HubSpot, and new records on both sides (Leads with and without email,
HubSpot contacts at marketingqualifiedlead with and without email, ...).

1. Kills: in each round the chaos world's cycle is SIGKILLed after a random delay (seeded)
   within the twin's measured run of the same cycle, counted from the run's first API request
   (a kill while Python still imports tests nothing); two or three times in a row, first syncs
   and incremental cycles alike; then rerun to completion (bounded) and settled with two more
   cycles. The twin runs the same cycles uninterrupted. A world has settled when a cycle
   writes nothing and the store holds no pending create.
2. Faults: the chaos world runs with about 20% of API requests faulted (429, 500, 503, TCP
   resets, responses slower than the client's timeout, expired Salesforce sessions); failed
   cycles are rerun until one succeeds (bounded).

Figures (bar 0 each, but kills):
- chaos_duplicates: records sharing what must be unique -- a carried Salesforce id on HubSpot
  (salesforceleadid, salesforcecontactid, salesforceaccountid, salesforceopportunityid), a
  non-empty email on Salesforce Leads or Contacts, a (person, subject) Task -- beyond what the
  twin has; or records of one identity beyond the twin's count, whichever is larger.
- chaos_lost_updates: injected changes whose value is not, at the end, on the system it was
  made on and on the other one (where the mapping syncs that field that way and the record
  has a counterpart).
- chaos_fields_differing: synced fields that differ from the twin's, record by record (ids
  left out; records the twin has and the chaos world lacks count with all their fields).
- chaos_unrecovered_runs: reruns still failing (not from a kill) after the retry bound, and
  worlds whose cycles still write after settling.
- chaos_kills: SIGKILLs that hit a running agent (bar 30).

The sandboxes run with HubSpot's search lagging writes by 3 s (CHAOS_SEARCH_LAG), as the
live API does, and no rate limits; the bench waits out the lag after injecting changes, so
both worlds read the same. The agent runs with pacing off and a 15 s HubSpot search lookback
(default 300 s; CHAOS_SEARCH_LOOKBACK): that is also how long it holds a create it cannot
tell landed, so a held create is decided within a round. The product's packages are copied
once at the start and every process runs that copy, so the engine cannot change between the
twin's runs and the chaos world's (the copy's digest is printed).

`python -m bench.bench_chaos [--quick] [--self-check] [--seed N] [--keep]`; CHAOS_KILLS and
CHAOS_RECORDS override the sizes. `--self-check` runs both scenarios with no kill and no
fault: every figure must then be 0, or the comparison (or the engine's determinism) is wrong.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import os
import random
import shutil
import sys
import tempfile
import time
import traceback
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from bench.chaos_world import (
    SEARCH_LOOKBACK,
    AgentRun,
    Change,
    Comparison,
    Lost,
    Snapshot,
    World,
    apply_changes,
    by_identity,
    compare,
    describe,
    duplicate_groups,
    freeze_code,
    plan_round,
    settle_ids,
    verify,
)
from bench.report import report

RERUNS = 4  # attempts to complete a cycle after a kill (or a failed cycle) before giving up
FAULT_RERUNS = 8  # the same under faults
SETTLE = 2  # uninterrupted cycles after each completed one
EXTRA_SETTLE = 3  # more, if the last settling cycle still wrote or a create is pending
# About 20% of the API requests of each system faulted (the rules chain: 1 - prod(1 - rate)).
FAULTS = ";".join([
    "salesforce.*=429@0.04", "salesforce.*=500@0.04", "salesforce.*=503@0.03",
    "salesforce.*=reset@0.04", "salesforce.*=slow:4@0.02",
    "salesforce.query*=expired@0.05", "salesforce.composite=expired@0.05",
    "salesforce.collections.*=expired@0.05",
    "salesforce.describe=expired@0.05",
    "hubspot.*=429@0.06", "hubspot.*=500@0.04", "hubspot.*=503@0.04", "hubspot.*=reset@0.05",
    "hubspot.*=slow:4@0.03"])
# Client timeouts below the slow faults' delay: the request lands, the answer is lost.
FAULT_ENV = {"STAGESYNC_SALESFORCE__TIMEOUT_SECONDS": "3",
             "STAGESYNC_HUBSPOT__TIMEOUT_SECONDS": "3"}


def log(text: str) -> None:
    print(f"# {text}", flush=True)


@dataclass
class Event:
    """Something that happened to the chaos world, for the diagnosis."""

    round: int
    what: str
    run: AgentRun | None = None
    new_duplicates: list[str] = field(default_factory=list)


@dataclass
class Outcome:
    name: str
    comparison: Comparison | None = None
    lost: list[Lost] = field(default_factory=list)
    twin_lost: list[Lost] = field(default_factory=list)
    changes: int = 0
    kills: list[Event] = field(default_factory=list)
    events: list[Event] = field(default_factory=list)
    unrecovered: list[str] = field(default_factory=list)
    twin_problems: list[str] = field(default_factory=list)
    round_diffs: list[tuple[int, list[str]]] = field(default_factory=list)
    runs: int = 0
    faults_served: int = 0  # answers under faults that were not 2xx (or a reset)
    requests_served: int = 0  # requests served while the faults were on
    statuses: Counter[str] = field(default_factory=Counter)
    rounds: int = 0
    seconds: float = 0.0
    identity_surplus: int = 0

    @property
    def duplicates(self) -> int:
        if self.comparison is None:
            return 0
        return max(self.comparison.duplicate_excess, self.identity_surplus)


@dataclass
class Setup:
    """What every scenario shares: where the worlds live, the frozen code, the sizes."""

    root: Path
    code: Path
    seed: int
    records: int
    search_lag: float

    def world(self, name: str) -> World:
        return World(name, self.root, self.seed, self.records, self.search_lag, self.code)


class Harness:
    """Runs one scenario on a chaos world and its twin."""

    def __init__(self, outcome: Outcome, chaos: World, twin: World, rng: random.Random,
                 search_lag: float) -> None:
        self.outcome = outcome
        self.chaos = chaos
        self.twin = twin
        self.rng = rng
        self.search_lag = search_lag
        self.changes: list[Change] = []
        self.dup_keys: set[tuple[str, str]] = set()
        self.diff_keys: set[tuple[str, ...]] = set()
        self.snaps: dict[str, Snapshot] = {}
        self.rerun_work: float | None = None  # how long a rerun after a kill works, lately

    # -- running cycles ---------------------------------------------------------------------
    def complete(self, world: World, rnd: int, what: str, bound: int,
                 env: dict[str, str] | None = None, watch: bool = False) -> AgentRun | None:
        """Run cycles until one exits 0, at most ``bound`` times; None if none did."""
        for attempt in range(1, bound + 1):
            run = world.run_agent(env=env, watch=watch)
            if world is self.chaos:
                self.note(rnd, f"{what} (attempt {attempt})", run)
            if run.rc == 0:
                return run
            problem = (f"round {rnd}: {world.name} {what} attempt {attempt} exited {run.rc}: "
                       f"{run.tail(3)[-400:]}")
            log(problem)
            if world is self.twin:
                self.outcome.twin_problems.append(problem)
            time.sleep(1.0)
        return None

    def settle(self, world: World, rnd: int, env: dict[str, str] | None = None,
               bound: int = RERUNS) -> bool:
        """SETTLE more cycles (each completed within the bound). The last must write nothing
        and leave no create pending; up to EXTRA_SETTLE more are allowed for that, spaced so
        that a held create's hold (SEARCH_LOOKBACK) runs out. False: the world did not
        settle."""
        last: AgentRun | None = None
        for n in range(SETTLE + EXTRA_SETTLE):
            if n >= SETTLE and world.pending_creates():
                time.sleep(min(SEARCH_LOOKBACK / 2, 10.0))
            last = self.complete(world, rnd, f"settling cycle {n + 1}", bound, env)
            if last is None:
                return False
            if n + 1 >= SETTLE and not last.writes and not world.pending_creates():
                return True
        pending = world.pending_creates()
        log(f"round {rnd}: {world.name} has not settled: the last cycle wrote "
            f"{dict(last.writes) if last else '?'}, {pending} create(s) pending")
        return False

    def note(self, rnd: int, what: str, run: AgentRun | None) -> Event:
        """Record a chaos-world run, with the duplicate groups that appeared after it."""
        event = Event(rnd, what, run)
        self.outcome.events.append(event)
        if run is not None:
            self.outcome.runs += 1
            if self.chaos.fault_spec:
                self.outcome.faults_served += run.faults
                self.outcome.requests_served += sum(run.calls.values())
                for served, n in run.statuses.items():
                    self.outcome.statuses[served.rsplit(" ", 1)[-1]] += n
            if not run.writes:
                return event  # a run that wrote nothing made no duplicate
        snap = self.chaos.snapshot()
        groups = duplicate_groups(snap)
        baseline = duplicate_groups(self.snaps["twin"]) if "twin" in self.snaps else {}
        for key, recs in groups.items():
            if key in self.dup_keys or len(recs) <= len(baseline.get(key, [])):
                continue
            self.dup_keys.add(key)
            obj = key[0].rsplit(".", 1)[0]  # "hs.contacts.salesforceleadid" -> hs.contacts
            event.new_duplicates.append(f"{key[0]}={key[1]}: {describe(obj, recs)}")
        return event

    # -- one round ---------------------------------------------------------------------------
    def inject(self, rnd: int, scale: int = 1) -> None:
        changes = plan_round(self.rng, rnd, self.snaps["twin"], self.snaps["chaos"], scale)
        apply_changes(self.twin, self.snaps["twin"], changes)
        apply_changes(self.chaos, self.snaps["chaos"], changes)
        settle_ids(changes)
        self.changes += changes
        self.outcome.changes += len(changes)
        # Both worlds' first read comes after HubSpot's search index shows the changes: a
        # read inside the lag would see the old values in one world and not in the other.
        time.sleep(self.search_lag + 1.0)

    def finish_round(self, rnd: int) -> None:
        self.snaps = {"chaos": self.chaos.snapshot(), "twin": self.twin.snapshot()}
        comparison = compare(self.snaps["chaos"], self.snaps["twin"])
        keys = [d.key() for d in comparison.fields]
        keys += [("only in chaos:", obj, ident, f"x{n}") for obj, ident, n in comparison.surplus]
        keys += [("only in twin:", obj, ident, f"x{n}") for obj, ident, n in comparison.missing]
        found = [" ".join(k) for k in keys if k not in self.diff_keys]
        self.diff_keys |= set(keys)
        if found:
            self.outcome.round_diffs.append((rnd, found))
        self.outcome.rounds = rnd + 1

    def final(self) -> None:
        chaos, twin = self.snaps["chaos"], self.snaps["twin"]
        comparison = compare(chaos, twin)
        self.outcome.comparison = comparison
        self.outcome.identity_surplus = sum(
            n for obj, ident, n in comparison.surplus
            if len(by_identity(chaos)[obj].get(ident, [])) > 1)
        self.outcome.lost = verify(self.changes, chaos, twin)
        self.outcome.twin_lost = verify(self.changes, twin, chaos)


def start_worlds(*worlds: World) -> None:
    with concurrent.futures.ThreadPoolExecutor(len(worlds)) as pool:
        for future in [pool.submit(w.start) for w in worlds]:
            future.result()


def kill_scenario(setup: Setup, target: int, budget: float, rounds: int | None) -> Outcome:
    """``rounds`` None: kill until ``target`` kills (or the time budget); a number: that many
    rounds without a kill (the self-check)."""
    outcome = Outcome("kills")
    began = time.monotonic()
    rng = random.Random(setup.seed)
    chaos, twin = setup.world("kills-chaos"), setup.world("kills-twin")
    harness = Harness(outcome, chaos, twin, rng, setup.search_lag)
    kills_on = rounds is None
    try:
        start_worlds(chaos, twin)
        harness.snaps = {"chaos": chaos.snapshot(), "twin": twin.snapshot()}
        log(f"kills: target {target if kills_on else 0} kills, {setup.records} records")
        kills = 0
        for rnd in range(60 if rounds is None else rounds):
            if kills_on and rnd > 0 and (kills >= target or time.monotonic() - began > budget):
                break
            harness.inject(rnd)
            reference = harness.complete(twin, rnd, "cycle", RERUNS, watch=True)
            if reference is None:
                outcome.twin_problems.append(f"round {rnd}: the twin's cycle never completed")
                break
            duration = reference.work
            with concurrent.futures.ThreadPoolExecutor(1) as pool:
                twin_settled = pool.submit(harness.settle, twin, rnd)
                kills += kill_chain(harness, rnd, duration, target - kills, kills_on)
                if not twin_settled.result():
                    outcome.twin_problems.append(f"round {rnd}: the twin did not settle")
            harness.finish_round(rnd)
            first = "first sync" if rnd == 0 else "incremental"
            log(f"round {rnd} ({first}): {len(harness.changes)} changes so far, {kills} kills, "
                f"twin cycle {reference.seconds:.1f} s ({duration:.1f} s after its first "
                f"request), {time.monotonic() - began:.0f} s elapsed")
        harness.final()
    finally:
        for world in (chaos, twin):
            world.stop()
    outcome.seconds = time.monotonic() - began
    return outcome


def kill_chain(harness: Harness, rnd: int, duration: float, left: int, kills_on: bool) -> int:
    """The chaos world's part of a round: up to three SIGKILLs in a row, each after a random
    delay within the twin's run of the same cycle (counted from the first API request), a
    rerun to completion, settling. Returns the kills that hit a running agent."""
    chaos, rng, outcome = harness.chaos, harness.rng, harness.outcome
    planned = (3 if rnd == 0 else rng.choice([2, 3, 3])) if kills_on else 0
    planned = min(planned, max(left, 1 if kills_on else 0))
    kills = 0
    completed = False
    for n in range(planned):
        # The first kill falls within the twin's run of this cycle; later ones hit reruns,
        # which have less to do: within the last rerun's run. Both counted from the first
        # request; the last tenth of a run is mostly printing after the commit.
        span = duration if n == 0 or harness.rerun_work is None else harness.rerun_work
        delay = rng.uniform(0.0, 0.9 * max(span, 0.2))
        if n > 0 and chaos.pending_creates() and rng.random() < 0.5:
            # Let the hold on the creates the killed cycle planned run out, so this killed
            # rerun sends them again (the window a duplicate needs: a create re-sent after
            # its hold, killed before its commit).
            time.sleep(SEARCH_LOOKBACK + 0.5)
            what = "after the hold on its pending creates ran out"
        else:
            what = ""
        kind = "incremental cycle" if chaos.completed_runs() else "first sync"
        run = chaos.run_agent(kill_after=delay)
        if not run.killed:
            event = harness.note(rnd, f"kill {n + 1} planned at {delay:.2f} s: the {kind} "
                                      f"ended first (rc {run.rc})", run)
            if run.rc == 0:
                completed = True
                break
            continue
        kills += 1
        event = harness.note(rnd, f"SIGKILL {n + 1} of the round {delay:.2f} s into "
                                  f"~{span:.1f} s of work, {kind}{', ' if what else ''}{what}, "
                                  f"{run.phase()}", run)
        outcome.kills.append(event)
    if not completed:
        rerun = harness.complete(chaos, rnd, "rerun after kill", RERUNS, watch=True)
        if rerun is None:
            outcome.unrecovered.append(f"round {rnd}: no rerun completed in {RERUNS} attempts")
            return kills
        harness.rerun_work = rerun.work
    if not harness.settle(chaos, rnd):
        outcome.unrecovered.append(f"round {rnd}: the chaos world did not settle")
    return kills


def fault_scenario(setup: Setup, rounds: int, spec: str) -> Outcome:
    outcome = Outcome("faults")
    began = time.monotonic()
    rng = random.Random(setup.seed + 1)
    chaos, twin = setup.world("faults-chaos"), setup.world("faults-twin")
    harness = Harness(outcome, chaos, twin, rng, setup.search_lag)
    env = dict(FAULT_ENV)
    try:
        start_worlds(chaos, twin)
        harness.snaps = {"chaos": chaos.snapshot(), "twin": twin.snapshot()}
        log(f"faults: {rounds} rounds, spec {spec or '(none)'}")
        for rnd in range(rounds):
            harness.inject(rnd)
            with concurrent.futures.ThreadPoolExecutor(1) as pool:
                twin_done = pool.submit(twin_round, harness, rnd, env)
                chaos.set_faults(spec)
                if harness.complete(chaos, rnd, "cycle under faults", FAULT_RERUNS,
                                    env) is None:
                    outcome.unrecovered.append(
                        f"round {rnd}: no cycle under faults completed in {FAULT_RERUNS}")
                elif not harness.settle(chaos, rnd, env, FAULT_RERUNS):
                    outcome.unrecovered.append(f"round {rnd}: no settling under faults")
                chaos.set_faults("")
                quiet = harness.complete(chaos, rnd, "quiet cycle, faults off", RERUNS, env)
                if quiet is None or quiet.writes or chaos.pending_creates():
                    outcome.unrecovered.append(
                        f"round {rnd}: with the faults off a cycle still wrote "
                        f"{dict(quiet.writes) if quiet else 'or failed'} or left "
                        f"{chaos.pending_creates()} create(s) pending")
                twin_done.result()
            harness.finish_round(rnd)
            log(f"round {rnd}: {len(harness.changes)} changes so far, "
                f"{outcome.faults_served} faulted answers of {outcome.requests_served} "
                f"requests under faults, {time.monotonic() - began:.0f} s elapsed")
        harness.final()
    finally:
        for world in (chaos, twin):
            world.stop()
    outcome.seconds = time.monotonic() - began
    return outcome


def twin_round(harness: Harness, rnd: int, env: dict[str, str]) -> None:
    if harness.complete(harness.twin, rnd, "cycle", RERUNS, env) is None:
        harness.outcome.twin_problems.append(f"round {rnd}: the twin's cycle never completed")
    elif not harness.settle(harness.twin, rnd, env):
        harness.outcome.twin_problems.append(f"round {rnd}: the twin did not settle")


# -- the report ------------------------------------------------------------------------
def summarize(outcome: Outcome, limit: int = 25) -> None:
    c = outcome.comparison
    log(f"== scenario {outcome.name}: {outcome.rounds} rounds, {outcome.changes} injected "
        f"changes, {outcome.runs} chaos-world runs, {len(outcome.kills)} kills, "
        f"{outcome.seconds:.0f} s")
    if outcome.faults_served:
        share = outcome.faults_served / max(1, outcome.requests_served)
        log(f"faulted answers: {outcome.faults_served} of {outcome.requests_served} requests "
            f"under faults ({share:.0%}; slow answers past the client timeout come on top); "
            f"statuses {dict(outcome.statuses.most_common())} (0: connection reset)")
    if c is None:
        log("no final comparison (the scenario stopped early)")
        for problem in outcome.unrecovered + outcome.twin_problems:
            log(f"problem: {problem}")
        return
    counts = ", ".join(f"{obj} {a}/{b}" for obj, (a, b) in c.counts.items())
    log(f"records chaos/twin: {counts}")
    phases = Counter(e.run.phase().split(" (")[0] for e in outcome.kills if e.run)
    if outcome.kills:
        log("kill points: " + "; ".join(f"{p}: {n}" for p, n in phases.most_common()))
        kinds = Counter("first sync" if "first sync" in e.what else "incremental"
                        for e in outcome.kills)
        log(f"kills in first syncs: {kinds['first sync']}, in incremental cycles: "
            f"{kinds['incremental']}")
        for event in outcome.kills:
            log(f"  round {event.round}: {event.what}")
    log(f"duplicates: {c.duplicate_excess} by shared key, {outcome.identity_surplus} by "
        f"identity count")
    for (kind, key), (a, b) in sorted(c.duplicates.items()):
        if a > max(b, 1):
            log(f"  duplicated {kind} {key}: {a} records in chaos, {b} in twin")
    excess = {f"{kind}={key}" for (kind, key), (a, b) in c.duplicates.items()
              if a > max(b, 1)}
    for event in outcome.events:
        lines = [line for line in event.new_duplicates if line.split(": ", 1)[0] in excess]
        if lines:
            log(f"  after round {event.round} {event.what}:")
            for line in lines[:limit]:
                log(f"    new duplicate group {line}")
    if outcome.lost:
        log(f"lost updates ({len(outcome.lost)}):")
        for item in outcome.lost[:limit]:
            log(f"  round {item.change.round} {item.change.label} {item.change.ident or ''} "
                f"-> {item.check.obj} {item.check.idents[0]} {item.check.field} "
                f"= {item.check.expected!r}: {item.found}")
    if outcome.twin_lost:
        log(f"the TWIN lost {len(outcome.twin_lost)} updates too (not the kills' doing):")
        for item in outcome.twin_lost[:limit]:
            log(f"  round {item.change.round} {item.change.label} {item.change.ident or ''} "
                f"-> {item.check.obj} {item.check.idents[0]} {item.check.field} "
                f"= {item.check.expected!r}: {item.found}")
    if c.fields or c.missing or c.surplus:
        log(f"fields differing: {len(c.fields)} in records on both, {c.missing_fields} in "
            f"records only in the twin")
        for obj, ident, n in c.surplus[:limit]:
            log(f"  only in chaos: {obj} {ident} x{n}")
        for obj, ident, n in c.missing[:limit]:
            log(f"  only in twin: {obj} {ident} x{n}")
        for d in c.fields[:limit]:
            log(f"  {d.obj} {d.ident} {d.field}: chaos {d.chaos!r}, twin {d.twin!r}")
        for rnd, found in outcome.round_diffs:
            log(f"  new after round {rnd}: {len(found)}: {'; '.join(found[:6])}")
    for problem in outcome.unrecovered:
        log(f"unrecovered: {problem}")
    for problem in outcome.twin_problems:
        log(f"twin problem: {problem}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.bench_chaos", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="a smoke run (~3 minutes)")
    parser.add_argument("--self-check", action="store_true",
                        help="no kills, no faults: every figure must be 0")
    parser.add_argument("--seed", type=int, default=int(os.environ.get("CHAOS_SEED", "11")))
    parser.add_argument("--keep", action="store_true", help="keep the worlds' folders")
    args = parser.parse_args(argv or [])
    quick = args.quick
    kills = int(os.environ.get("CHAOS_KILLS", "6" if quick else "30"))
    records = int(os.environ.get("CHAOS_RECORDS", "150" if quick else "300"))
    lag = float(os.environ.get("CHAOS_SEARCH_LAG", "3"))
    fault_rounds = 1 if quick else 2
    budget = 150.0 if quick else 660.0  # seconds of kill rounds before stopping early
    calm_rounds = (3 if quick else 10) if args.self_check else None
    began = time.monotonic()
    root = Path(tempfile.mkdtemp(prefix="stagesync-chaos-"))
    outcomes: list[Outcome] = []
    try:
        setup = Setup(root, root / "code", args.seed, records, lag)
        digest = freeze_code(Path(__file__).resolve().parents[1], setup.code)
        log(f"code under test: the work tree's packages as of the start, sha256 {digest}; "
            f"seed {args.seed}, {records} records, HubSpot search lag {lag:g} s")
        scenarios: list[tuple[str, Callable[[], Outcome]]] = [
            ("kills", lambda: kill_scenario(setup, kills, budget, calm_rounds)),
            ("faults", lambda: fault_scenario(setup, fault_rounds,
                                              "" if args.self_check else FAULTS))]
        for name, scenario in scenarios:
            try:
                outcomes.append(scenario())
            except Exception as exc:  # the figures still print, as failures
                traceback.print_exc(file=sys.stdout)
                outcomes.append(Outcome(name, unrecovered=[f"scenario aborted: {exc!r}"]))
            summarize(outcomes[-1])
    finally:
        if args.keep:
            log(f"worlds kept in {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)
    log(f"chaos bench: {time.monotonic() - began:.0f} s in all"
        f"{' (self-check: no kills, no faults)' if args.self_check else ''}")

    def total(figure: Callable[[Outcome], int]) -> int:
        return sum(figure(o) for o in outcomes)

    report("chaos_duplicates", total(lambda o: o.duplicates), "records", 0,
           higher_is_better=False)
    report("chaos_lost_updates", total(lambda o: len(o.lost)), "records", 0,
           higher_is_better=False)
    report("chaos_fields_differing",
           total(lambda o: o.comparison.fields_differing if o.comparison else 0), "fields", 0,
           higher_is_better=False)
    report("chaos_unrecovered_runs", total(lambda o: len(o.unrecovered)), "runs", 0,
           higher_is_better=False)
    report("chaos_kills", total(lambda o: len(o.kills)), "kills", 30)


if __name__ == "__main__":
    main(sys.argv[1:])
