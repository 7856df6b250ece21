"""The `descentlab` command line (its commands are listed in README.md, First run).

This module parses the command line and opens the windows (`gui`, `compare`, `playground`); the
headless commands' work lives in `engine.headless`, so the engine never imports the app. Qt is
imported only when a window opens: `descentlab run` and `descentlab list` start without it.

Exit codes: 0 success (a diverged run is a result, not a failure), 2 invalid input with a
message naming the problem, 1 internal failure. Ctrl-C stops the runs cleanly: the session is
closed with status `stopped` and exit code 130.
"""

from __future__ import annotations

import argparse
import os
import sys
import traceback
from collections.abc import Sequence
from pathlib import Path

from descentlab.engine import registry
from descentlab.engine.headless import (
    EXIT_INTERNAL,
    EXIT_INVALID,
    EXIT_OK,
    UserError,
    cmd_compare_table,
    cmd_export,
    cmd_fork,
    cmd_info,
    cmd_interpolate,
    cmd_list,
    cmd_run,
    default_spec_text,
    load_compared,
)
from descentlab.engine.session.reader import SessionError
from descentlab.engine.spec import SpecError


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="descentlab", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command")
    run = sub.add_parser("run", help="run an experiment headless and write a session")
    run.add_argument("spec", help="experiment spec (.toml)")
    run.add_argument(
        "-o", "--output", help="session file to write (.h5); default sessions/<name>-<time>.h5"
    )
    run.add_argument("--quiet", action="store_true", help="no progress bar")
    run.add_argument("--force", action="store_true", help="replace an existing session file")
    info = sub.add_parser("info", help="summarise a session file")
    info.add_argument("session")
    export = sub.add_parser("export", help="export a session's series to CSV")
    export.add_argument("session")
    export.add_argument("--csv", required=True, metavar="DIR", help="folder to write into")
    lst = sub.add_parser("list", help="list the optimizers, diagnostics or tasks")
    lst.add_argument("kind", choices=registry.KINDS)
    lst.add_argument(
        "--markdown", action="store_true", help="optimizers: print the catalogue page (docs)"
    )
    fork = sub.add_parser(
        "fork", help="continue a run of a session from one of its checkpoints, as a new run"
    )
    fork.add_argument("session", help="the session file (.h5); the fork is written into it")
    fork.add_argument("run", help="the parent run")
    fork.add_argument("step", type=int, help="a step with a checkpoint (see `descentlab info`)")
    fork.add_argument("name", help="name of the new run")
    fork.add_argument("--optimizer", metavar="ID", help="another optimizer (default: the parent's)")
    fork.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a hyperparameter of the fork's optimizer, e.g. --set lr=0.01 (repeatable)",
    )
    fork.add_argument("--steps", type=int, help="step to stop at (default: the spec's steps)")
    fork.add_argument("--quiet", action="store_true", help="no progress bar")
    line = sub.add_parser(
        "interpolate", help="losses on the line between two runs' parameters, with the barrier"
    )
    line.add_argument("a", metavar="SESSION:RUN", help="run A (t = 0)")
    line.add_argument("b", metavar="SESSION:RUN", help="run B (t = 1), same task")
    line.add_argument("--step-a", type=int, help="checkpoint step of A (default: its last)")
    line.add_argument("--step-b", type=int, help="checkpoint step of B (default: its last)")
    line.add_argument("--points", type=int, default=21, help="points on the line (default 21)")
    comp = sub.add_parser(
        "compare",
        help="compare the runs of several sessions (files, or folders of *.h5) in a window",
    )
    comp.add_argument("paths", nargs="+", metavar="PATH", help="session files or folders")
    comp.add_argument(
        "--table", action="store_true", help="print the runs table instead of opening a window"
    )
    comp.add_argument(
        "--sort",
        metavar="METRIC",
        help="--table: sort by a final metric (e.g. train/loss) or a setting (optimizer.lr)",
    )
    comp.add_argument("--descending", action="store_true", help="--table: largest first")
    comp.add_argument(
        "--all", action="store_true", help="--table: every setting, not only those that differ"
    )
    comp.add_argument(
        "--metric",
        action="append",
        metavar="SERIES",
        help="--table: final value of this scalar series as a column (repeatable; default "
        "train/loss, eval/loss, eval/accuracy where present)",
    )
    _screenshot_options(comp, after=1.0)
    comp.add_argument("--theme", choices=("light", "dark"), default="light")
    gui = sub.add_parser("gui", help="open the lab window (a spec or a session may be given)")
    gui.add_argument("path", nargs="?", help="a spec (.toml) or a session (.h5)")
    for p in (parser, gui):
        p.add_argument(
            "--screenshot",
            metavar="FILE",
            help="run, save a picture of the window to FILE after --after seconds, and exit",
        )
        p.add_argument("--after", type=float, default=5.0, metavar="SECONDS")
        p.add_argument("--theme", choices=("light", "dark"), help="colour theme (remembered)")
        p.add_argument(
            "--presentation",
            action="store_true",
            help="presentation mode: large fonts, high contrast, full screen (F11 leaves it)",
        )
    play = sub.add_parser(
        "playground", help="the 2-D playground: optimizers race on a test function, live"
    )
    play.add_argument(
        "--function", default="rosenbrock", help="the function2d function to start on"
    )
    _screenshot_options(play, after=2.0)
    play.add_argument("--presentation", action="store_true", help="high-contrast, thick lines")
    return parser


def _screenshot_options(parser: argparse.ArgumentParser, after: float) -> None:
    """`--screenshot FILE` and `--after SECONDS` of a tool that opens a window of its own."""
    parser.add_argument("--screenshot", metavar="FILE", help="save a picture of the window, exit")
    parser.add_argument("--after", type=float, default=after, metavar="SECONDS")


def _no_display() -> bool:
    """True on a Linux machine with no display (where Qt would abort instead of opening)."""
    return sys.platform.startswith("linux") and not any(
        os.environ.get(v) for v in ("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM")
    )


def cmd_compare(
    paths: list[str],
    table: bool,
    sort: str | None,
    descending: bool,
    all_settings: bool,
    metrics: list[str] | None,
    screenshot: str | None,
    after: float,
    theme: str,
) -> int:
    """Compare the runs of several sessions: a table on the terminal, or the comparison window."""
    comparison = load_compared(paths)
    if table:
        return cmd_compare_table(comparison, sort, descending, all_settings, metrics)
    if _no_display():
        raise UserError(
            "no display to open the window on (DISPLAY is not set). Print the comparison with "
            "`descentlab compare PATH... --table`, or set QT_QPA_PLATFORM=offscreen together "
            "with --screenshot FILE"
        )
    from descentlab.app.compare_window import run_compare_app  # Qt only for the window

    return run_compare_app(comparison, screenshot, after, theme)


def cmd_playground(function: str, screenshot: str | None, after: float, presentation: bool) -> int:
    """Open the 2-D playground window on `function`."""
    from descentlab.plugins.tasks.function2d import FUNCTIONS  # no Qt needed to check it

    if function not in FUNCTIONS:
        raise UserError(f"--function {function!r}: allowed: {', '.join(FUNCTIONS)}")
    if _no_display():
        raise UserError(
            "no display to open the playground on (DISPLAY is not set); set "
            "QT_QPA_PLATFORM=offscreen together with --screenshot FILE"
        )
    from descentlab.app.playground import run_playground  # Qt only for the window

    return run_playground(function, screenshot, after, presentation)


def cmd_gui(
    path: str | None,
    screenshot: str | None,
    after: float,
    theme: str | None,
    presentation: bool = False,
) -> int:
    """Open the window; a machine without a display gets a message instead of a Qt abort."""
    if _no_display():
        raise UserError(
            "no display to open the window on (DISPLAY is not set). Run "
            "experiments headless with `descentlab run SPEC.toml`, or set "
            "QT_QPA_PLATFORM=offscreen together with --screenshot FILE"
        )
    if path is not None and not Path(path).exists():
        raise UserError(f"{path}: no such file")
    from descentlab.app.main import run_app  # Qt is imported only for the window

    return run_app(path, default_spec_text(), screenshot, after, theme, presentation)


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        if args.command == "run":
            return cmd_run(args.spec, args.output, args.quiet, args.force)
        if args.command == "info":
            return cmd_info(args.session)
        if args.command == "export":
            return cmd_export(args.session, args.csv)
        if args.command == "list":
            return cmd_list(args.kind, args.markdown)
        if args.command == "interpolate":
            return cmd_interpolate(args.a, args.b, args.step_a, args.step_b, args.points)
        if args.command == "fork":
            return cmd_fork(
                args.session,
                args.run,
                args.step,
                args.name,
                args.optimizer,
                args.set,
                args.steps,
                args.quiet,
            )
        if args.command == "compare":
            return cmd_compare(
                args.paths,
                args.table,
                args.sort,
                args.descending,
                args.all,
                args.metric,
                args.screenshot,
                args.after,
                args.theme,
            )
        if args.command == "playground":
            return cmd_playground(args.function, args.screenshot, args.after, args.presentation)
        return cmd_gui(
            getattr(args, "path", None),
            args.screenshot,
            args.after,
            args.theme,
            args.presentation,
        )
    except (SpecError, SessionError, UserError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_INVALID
    except BrokenPipeError:  # `descentlab list optimizers | head`: the reader has had enough
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_OK
    except Exception:
        print("internal error (please report it with the traceback below):", file=sys.stderr)
        traceback.print_exc()
        return EXIT_INTERNAL


if __name__ == "__main__":
    sys.exit(main())
