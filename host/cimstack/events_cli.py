"""``cimstack events info FILE`` and ``cimstack events convert IN OUT`` (mounted by the
main CLI): event-camera files of every format of :mod:`.events.files`."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from .errors import ConfigError, OutputError
from .report.console import console, rich_table
from .events.files import FORMATS

events_app = typer.Typer(no_args_is_help=True, add_completion=False)

FORCE_FILE_HELP = ("replace OUT if it exists (a single file carries no mark of who wrote "
                   "it, so any existing OUT is kept without this flag)")


def parse_size(text: str, flag: str) -> tuple[int, int]:
    """``WxH`` -> (W, H), both positive."""
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise ConfigError(f"{flag} {text!r}: give the size as WIDTHxHEIGHT, "
                          "e.g. 34x34") from None
    if w < 1 or h < 1:
        raise ConfigError(f"{flag} {text!r}: width and height must be at least 1")
    return w, h


@events_app.command("info")
def info_command(
        path: Path = typer.Argument(..., help="event file (" + ", ".join(FORMATS) + ")"),
        json_out: Optional[Path] = typer.Option(None, "--json",
                                                help="write the figures as JSON")):
    """Format, resolution, event count, duration and event rate of an event file."""
    from .fileio import write_json_atomic
    from .events.files import read_event_file
    s = read_event_file(path).summary()
    rate = "-" if s["rate_events_per_s"] is None else f"{s['rate_events_per_s']:,.0f} ev/s"
    rows = [("format", f"{s['format_name']} ({s['format']})"),
            ("resolution", f"{s['width']}x{s['height']}"),
            ("events", f"{s['events']:,} ({s['on_events']:,} ON)"),
            ("time", f"{s['t_first_us']:,} .. {s['t_last_us']:,} us"),
            ("duration", f"{s['duration_us']:,} us ({s['duration_us'] * 1e-6:.6g} s)"),
            ("rate", rate)]
    console.print(rich_table(str(path), ["figure", "value"], rows, right=[False, True]))
    if json_out is not None:
        write_json_atomic(json_out, {"file": str(path), **s})


@events_app.command("convert")
def convert_command(
        src: Path = typer.Argument(..., metavar="IN", help="event file to read"),
        out: Path = typer.Argument(..., metavar="OUT", help="event file to write; its "
                                   "extension picks the format (.bin .aedat .aedat4 .raw "
                                   ".evt .dat .es)"),
        fmt: Optional[str] = typer.Option(None, "--format", help="write this format "
                                          "instead: " + ", ".join(FORMATS)),
        crop: Optional[str] = typer.Option(None, help="keep the centre WxH window"),
        downsample: Optional[str] = typer.Option(None, help="divide x, y by the largest "
                                                 "integer factor that still covers WxH, "
                                                 "then keep the centre WxH window"),
        force: bool = typer.Option(False, "--force", help=FORCE_FILE_HELP)):
    """Convert an event file to another format (optionally cropped or downsampled)."""
    from .fileio import check_output_file
    from .events.core import fit_sensor
    from .events.files import format_of_name, read_event_file, write_event_file
    if crop and downsample:
        raise ConfigError("--crop and --downsample: choose one")
    fmt = format_of_name(out, fmt)
    check_output_file(out)
    if out.exists() and not force:
        raise OutputError(f"{out} exists; pass --force to replace it, or choose another "
                          "file name")
    f = read_event_file(src)
    events, sensor = f.events, f.sensor
    if crop or downsample:
        size = parse_size(crop or downsample, "--crop" if crop else "--downsample")
        events = fit_sensor(events, sensor, size, "crop" if crop else "downsample")
        sensor = size
    write_event_file(out, events, sensor, fmt)
    console.print(f"{out}: {events.size:,} events, {sensor[0]}x{sensor[1]}, from "
                  f"{f.format} to {fmt}")
