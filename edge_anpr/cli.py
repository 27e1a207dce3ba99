"""The command line: the only place that parses arguments.

Each sub-command validates its arguments here and calls one function of the module that owns
the work, importing it lazily so ``edge-anpr send`` on a camera box never loads the models.
Exit codes: 0 success, 1 runtime failure, 2 bad usage or bad configuration.
"""

from __future__ import annotations

import argparse
import logging
import math
import sys
from pathlib import Path

from edge_anpr import __version__
from edge_anpr.config import (
    Config,
    config_reference_markdown,
    config_warnings,
    load_config,
    log_level_name,
)
from edge_anpr.errors import ConfigError, EdgeAnprError
from edge_anpr.logs import setup_logging
from edge_anpr.system.signals import held_stop_signals

log = logging.getLogger(__name__)


def _positive_int(text: str) -> int:
    value = int(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text}")
    return value


def _positive_float(text: str) -> float:
    value = float(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive number, got {text}")
    return value


def _positive_int_list(text: str) -> tuple[int, ...]:
    """``1,2``: distinct positive integers, in increasing order."""
    try:
        values = {_positive_int(part) for part in text.split(",")}
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated positive integers such as 1,2, got {text!r}"
        ) from None
    return tuple(sorted(values))


def _milliseconds_list(text: str) -> tuple[float, ...]:
    """``0,0.75,1.5``: distinct non-negative numbers, in increasing order."""
    try:
        values = {float(part) for part in text.split(",")}
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated milliseconds such as 0,1.5, got {text!r}"
        ) from None
    if any(not math.isfinite(v) or v < 0 for v in values):
        raise argparse.ArgumentTypeError(f"milliseconds must be finite and >= 0, got {text!r}")
    return tuple(sorted(values))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="edge-anpr",
        description="Licence plate recognition appliance: UDP frames in, plate events out.",
    )
    parser.add_argument("--version", action="version", version=f"edge-anpr {__version__}")
    parser.add_argument("--log-level", default=None, help="override device.log_level")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def with_config(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
        p.add_argument("--config", type=Path, default=None, help="TOML config file")
        return p

    serve = with_config(sub.add_parser("serve", help="run the appliance"))
    serve.add_argument(
        "--stdout", action="store_true", help="write frames/reads/stats as JSON lines to stdout"
    )
    serve.add_argument("--port", type=int, default=None, help="override ingest.port")
    serve.add_argument("--no-mqtt", action="store_true", help="do not publish to MQTT")
    serve.add_argument(
        "--processes", type=int, default=None, metavar="N",
        help="override workers.processes (0 = one per two cores)",
    )

    demo = with_config(sub.add_parser("demo", help="serve and send the bundled sample frames"))
    demo.add_argument("--port", type=int, default=None, help="UDP port (default: a free one)")
    demo.add_argument("--loop", action="store_true", help="keep sending until interrupted")

    send = sub.add_parser(
        "send", help="send images, a folder, a video, a camera stream or a webcam over UDP"
    )
    send.add_argument(
        "source", help="image file, folder of images, video file, webcam index, or a camera "
        "URL (rtsp://, rtsps://, http(s):// MJPEG, file://), reopened with backoff when it drops",
    )
    send.add_argument("--host", default="127.0.0.1")
    send.add_argument("--port", type=int, default=6112)
    send.add_argument("--format", choices=["legacy", "sequenced"], default="sequenced")
    send.add_argument("--camera", type=int, default=0, help="camera id (sequenced format)")
    send.add_argument(
        "--fps", type=_positive_float, default=None,
        help="frames per second (default: a video's own rate, a camera's own pace, 5 for images)",
    )
    send.add_argument("--key", default="", help="HMAC key (sequenced format)")
    send.add_argument(
        "--key-file", default="", metavar="PATH",
        help="read the HMAC key from this file (keeps it off the command line)",
    )
    send.add_argument("--loop", action="store_true", help="repeat the source until interrupted")
    send.add_argument("--count", type=int, default=0, help="stop after this many frames (0: all)")
    send.add_argument(
        "--no-gso", action="store_true",
        help="one system call per datagram (default: the kernel segments each frame, UDP GSO)",
    )

    read = with_config(sub.add_parser("read", help="read plate crops, print JSON"))
    read.add_argument("crops", nargs="+", type=Path)

    recognize = with_config(sub.add_parser("recognize", help="find and read plates in images"))
    recognize.add_argument("images", nargs="+", type=Path)
    recognize.add_argument(
        "--format", choices=["text", "json", "openalpr"], default=None,
        help="text (default), json (one object per image) or openalpr (alpr -j's shape)",
    )
    recognize.add_argument("--json", action="store_true", help="the same as --format json")

    evaluate = with_config(sub.add_parser("eval", help="evaluate on a scenes-layout folder"))
    evaluate.add_argument("directory", type=Path)
    evaluate.add_argument(
        "--split", choices=["val", "train", "all", "holdout"], default="val",
        help="holdout: the fifth of the training photographs kept for choosing settings",
    )
    evaluate.add_argument(
        "--negatives", action="store_true",
        help="the folder holds photographs without plates: count the false plates",
    )
    evaluate.add_argument(
        "--raw-labels", action="store_true",
        help="score against the label files as shipped, without the review in "
             "data/label-review/ (wrong texts, plates the labels lack)",
    )

    dscore = with_config(sub.add_parser(
        "calibrate-dscore", help="fit the HTTP answer's dscore to the scenes' training holdout"))
    dscore.add_argument("directory", type=Path)
    dscore.add_argument("--split", choices=["holdout", "val"], default="holdout",
                        help="holdout (fit there); val only to check a fit, never to fit")
    dscore.add_argument("--negatives", type=Path, default=None,
                        help="a folder of photographs without plates (adds false plates)")

    eval_crops = with_config(sub.add_parser("eval-crops", help="evaluate the reader on crops"))
    eval_crops.add_argument("directory", type=Path, nargs="?", default=None)
    eval_crops.add_argument("--split", choices=["val", "train", "all"], default="val")
    eval_crops.add_argument(
        "--failures-sheet", type=Path, default=None, help="write a PNG contact sheet of misreads"
    )
    eval_crops.add_argument(
        "--scenes", action="store_true",
        help="DIRECTORY is a scenes folder: cut each labelled box out (with --margin) and read it",
    )
    eval_crops.add_argument(
        "--margin", type=float, default=0.15,
        help="--scenes: share of the box's width and height added on every side (default 0.15)",
    )
    eval_crops.add_argument(
        "--labels", type=Path, default=None,
        help="labels file (file and plate columns) kept outside DIRECTORY (default: "
             "DIRECTORY/labels.csv)",
    )
    eval_crops.add_argument(
        "--raw-labels", action="store_true",
        help="score against the labels as shipped, without the review in data/label-review/",
    )
    eval_crops.add_argument(
        "--camera", default=None,
        help="read with this configured camera's regions (default: the folder's name, if a "
             "camera of that name is configured)",
    )
    eval_crops.add_argument(
        "--shrink-to", type=int, default=None, metavar="PX",
        help="read each plate wider than PX pixels shrunk to PX wide and JPEG-compressed, as a "
             "distant camera sees it",
    )

    bench = with_config(sub.add_parser("bench", help="measure speed (per-stage medians)"))
    bench.add_argument(
        "what", choices=["ingest", "read", "recognize", "scaling", "serve", "http"]
    )
    bench.add_argument("--frames", type=_positive_int, default=None,
                       help="frames (http: requests, default 200)")
    bench.add_argument("--concurrency", type=_positive_int, default=200,
                       help="http: requests in flight at once")
    bench.add_argument("--frame-bytes", type=_positive_int, default=200_000)
    bench.add_argument("--format", choices=["legacy", "sequenced"], default="sequenced")
    bench.add_argument("--workers", type=_positive_int, default=None,
                       help="worker threads (serve --processes: per process)")
    bench.add_argument(
        "--processes", type=_positive_int_list, default=None, metavar="P[,P...]",
        help="serve: run `serve` as these numbers of processes (interleaved rounds)",
    )
    bench.add_argument("--cameras", type=_positive_int, default=1,
                       help="serve --processes: cameras sending at once")
    bench.add_argument("--rounds", type=_positive_int, default=None,
                       help="scaling: interleaved rounds of passes (default 3)")
    bench.add_argument(
        "--added-python-ms", type=_milliseconds_list, default=(0.0,), metavar="MS[,MS...]",
        help="scaling: plain Python added per frame in every mode, e.g. 0,1.5 (what the GIL "
             "costs per ms)",
    )
    bench.add_argument(
        "--stand-in", action="store_true",
        help="serve: the workers run a GIL-free load of the real recognizer's CPU per frame "
             "(measured first) instead of it: the pipeline's own scaling ceiling",
    )

    cfg = sub.add_parser("config", help="check a config file or print the key reference")
    cfg.add_argument("file", type=Path, nargs="?", default=None)
    cfg.add_argument(
        "--markdown", action="store_true", help="print the key table of docs/configuration.md"
    )
    cfg.add_argument(
        "--root", default="/", metavar="DIR",
        help="look for the files the config names (TLS, models) under DIR, as in a system "
             "staged there before it is installed",
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)  # serve's copies run the same
    if args.command == "bench" and args.stand_in and args.what != "serve":
        parser.error("--stand-in is for `bench serve` only")
    if args.command == "bench" and args.processes and (args.what != "serve" or args.stand_in):
        parser.error("--processes is for `bench serve` without --stand-in")
    try:
        setup_logging(log_level_name(args.log_level, "--log-level") if args.log_level else "INFO")
        return _dispatch(args)
    except EdgeAnprError as exc:
        print(f"edge-anpr: error: {exc}", file=sys.stderr)
        return 2 if isinstance(exc, ConfigError) else 1
    except KeyboardInterrupt:
        return 130


def _load(args: argparse.Namespace) -> Config:
    cfg = load_config(getattr(args, "config", None))
    if args.log_level is None:
        setup_logging(cfg.device.log_level)
    return cfg


def _dispatch(args: argparse.Namespace) -> int:
    command: str = args.command
    if command == "config":
        if args.markdown:
            sys.stdout.write(config_reference_markdown())
            return 0
        checked = load_config(args.file, root=args.root)
        for warning in config_warnings(checked):
            print(f"edge-anpr: warning: {warning}", file=sys.stderr)
        print(f"{args.file or 'embedded defaults'}: ok")
        return 0
    if command == "send":
        from edge_anpr.commands.send import send_main

        return send_main(
            source=args.source, host=args.host, port=args.port, wire_format=args.format,
            camera=args.camera, fps=args.fps, key=args.key, loop=args.loop, count=args.count,
            gso=not args.no_gso, key_file=args.key_file,
        )
    if command in ("serve", "demo"):
        # Before the imports and model loading that take the first second or more: a stop
        # meanwhile is a stop, not a death by signal (edge_anpr.system.signals).
        with held_stop_signals() as early:
            cfg = _load(args)
            if command == "serve":
                from edge_anpr.commands.serve import serve_main

                return serve_main(
                    cfg, stdout_json=args.stdout, port=args.port, mqtt=not args.no_mqtt,
                    processes=args.processes, early=early.received, argv=args.argv,
                )
            from edge_anpr.commands.demo import demo_main

            return demo_main(cfg, port=args.port, loop=args.loop, early=early.received)
    cfg = _load(args)
    if command == "read":
        from edge_anpr.commands.read import read_main

        return read_main(cfg, args.crops)
    if command == "recognize":
        from edge_anpr.commands.recognize import recognize_main

        return recognize_main(
            cfg, args.images, output=args.format or ("json" if args.json else "text")
        )
    if command == "eval":
        from edge_anpr.lab.eval_scenes import eval_scenes_main

        return eval_scenes_main(cfg, args.directory, split=args.split, negatives=args.negatives,
                                 raw_labels=args.raw_labels)
    if command == "calibrate-dscore":
        from edge_anpr.lab.calibrate_dscore import calibrate_dscore_main

        return calibrate_dscore_main(cfg, args.directory, split=args.split,
                                     negatives=args.negatives)
    if command == "eval-crops":
        from edge_anpr.lab.eval_crops import eval_crops_main

        return eval_crops_main(
            cfg, args.directory, split=args.split, failures_sheet=args.failures_sheet,
            scenes=args.scenes, margin=args.margin, camera=args.camera,
            raw_labels=args.raw_labels, labels=args.labels, shrink_to=args.shrink_to,
        )
    if command == "bench":
        return _bench(cfg, args)
    raise AssertionError(f"unhandled command {command}")


def _bench(cfg: Config, args: argparse.Namespace) -> int:
    if args.what == "ingest":
        from edge_anpr.lab.bench_ingest import bench_ingest

        return bench_ingest(
            frames=args.frames or 5000, frame_bytes=args.frame_bytes, wire_format=args.format
        )
    if args.what == "read":
        from edge_anpr.lab.bench_vision import bench_read

        return bench_read(cfg, frames=args.frames or 300)
    if args.what == "recognize":
        from edge_anpr.lab.bench_vision import bench_recognize

        return bench_recognize(cfg, frames=args.frames or 100)
    if args.what == "scaling":
        from edge_anpr.lab.scaling import ROUNDS, bench_scaling

        return bench_scaling(
            cfg, getattr(args, "config", None), frames=args.frames or 200, workers=args.workers,
            added_python_ms=args.added_python_ms, rounds=args.rounds or ROUNDS,
        )
    if args.what == "http":
        from edge_anpr.lab.bench_http import bench_http

        return bench_http(
            cfg, requests=args.frames or 200, concurrency=args.concurrency, workers=args.workers
        )
    if args.processes:
        from edge_anpr.lab.bench_processes import ROUNDS as PROCESS_ROUNDS
        from edge_anpr.lab.bench_processes import bench_serve_processes

        return bench_serve_processes(
            cameras=args.cameras, processes=args.processes, workers=args.workers,
            rounds=args.rounds or PROCESS_ROUNDS,
        )
    from edge_anpr.lab.bench_serve import bench_serve

    return bench_serve(
        cfg, frames=args.frames or 300, workers=args.workers, stand_in=args.stand_in
    )


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
