"""The one line format every benchmark figure is printed in."""

from __future__ import annotations


def bench_line(name: str, value: float, unit: str, bar: float, higher_is_better: bool) -> str:
    ok = value >= bar if higher_is_better else value <= bar
    return f"BENCH {name} {value:.2f} {unit} bar={bar:g} {'ok' if ok else 'SHORT'}"


def report(name: str, value: float, unit: str, bar: float, higher_is_better: bool = True) -> None:
    print(bench_line(name, value, unit, bar, higher_is_better), flush=True)
