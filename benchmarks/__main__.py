"""``python -m benchmarks``: polystore vs the raw drivers vs peer libraries, one run."""

from __future__ import annotations

import argparse
import asyncio
import json
import shlex
import sys
from collections.abc import Sequence

from benchmarks.replicated import REPLICATED, run_replicated
from benchmarks.report import as_json, machine, render, versions
from benchmarks.servers import SERVER_NAMES, Servers, bench_env
from benchmarks.sharded import SHARDED, run_sharded
from benchmarks.suite import BACKENDS, MIXED, run_suite
from polystore import redact_url


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks",
        description="Benchmark polystore against the raw drivers and peer libraries, "
        "interleaved round by round on the same servers.",
    )
    parser.add_argument(
        "--backend", choices=[*BACKENDS, MIXED, SHARDED, REPLICATED, "all"], action="append",
        help="section to run (repeatable; default: all). 'mixed' is the routed workload; it "
        "uses the servers of the other chosen backends (all of them when none is chosen)",
    )  # fmt: skip
    parser.add_argument("--smoke", action="store_true", help="a few ops per workload, 2 rounds")
    parser.add_argument(
        "--rounds", type=int, default=None, help="measured rounds (default 41; smoke: 2)"
    )
    parser.add_argument(
        "--seconds", type=float, default=0.1,
        help="aimed duration of the slowest library's run of one workload (default 0.1)",
    )  # fmt: skip
    parser.add_argument("--json", metavar="FILE", help="also write every figure as JSON")
    for name in SERVER_NAMES:
        parser.add_argument(
            f"--{name}-url", metavar="URL",
            help=f"use this server (else ${bench_env(name)}, else a private server)",
        )  # fmt: skip
    return parser.parse_args(argv)


def _command_line(argv: Sequence[str]) -> str:
    """The command as run, with any password in a URL replaced by ``***``."""
    shown = []
    for arg in argv:
        flag, sep, value = arg.partition("=") if arg.startswith("--") else ("", "", arg)
        shown.append(flag + sep + redact_url(value) if "://" in value else arg)
    return " ".join([".venv/bin/python -m benchmarks", *map(shlex.quote, shown)])


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    chosen = args.backend or ["all"]
    extra = (MIXED, SHARDED, REPLICATED)
    wanted = [*BACKENDS, *extra] if "all" in chosen else list(dict.fromkeys(chosen))
    rounds = args.rounds if args.rounds is not None else (2 if args.smoke else 41)
    meta = {
        "command": _command_line(sys.argv[1:] if argv is None else argv),
        "machine": machine(),
        "versions": versions(),
        "rounds": rounds,
        "smoke": args.smoke,
    }
    urls = {name: getattr(args, f"{name}_url") for name in SERVER_NAMES}

    def log(text: str) -> None:
        print(text, file=sys.stderr, flush=True)

    with Servers(urls) as servers:
        sections = asyncio.run(
            run_suite(
                [name for name in wanted if name not in extra],
                servers,
                smoke=args.smoke,
                rounds=rounds,
                seconds=args.seconds,
                mixed=MIXED in wanted,
                log=log,
            )
        )
    sharded = None
    if SHARDED in wanted:
        seconds = None if args.smoke else args.seconds
        sharded = asyncio.run(
            run_sharded(smoke=args.smoke, rounds=rounds, seconds=seconds, log=log)
        )
    replicated = None
    if REPLICATED in wanted:
        seconds = None if args.smoke else args.seconds
        replicated = asyncio.run(
            run_replicated(smoke=args.smoke, rounds=rounds, seconds=seconds, log=log)
        )
    print(render(sections, meta))
    if sharded is not None:
        print("\n".join(sharded.lines()))
    if replicated is not None:
        print("\n".join(replicated.lines()))
    if args.json:
        figures = as_json(sections, meta)
        if sharded is not None:
            figures["sections"].append(sharded.as_json())
        if replicated is not None:
            figures["sections"].append(replicated.as_json())
        with open(args.json, "w", encoding="utf-8") as out:
            json.dump(figures, out, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
