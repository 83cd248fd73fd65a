"""The ``ibhq`` command: serve, worker and migrate."""

import argparse
import asyncio
import logging
import sys
from collections.abc import Sequence

import uvicorn

from db.engine import is_sqlite
from db.migrate import current_revision, head_revision, upgrade_to_head
from ibhq.logs import configure_logging
from ibhq.settings import Settings, SettingsError, load_settings

logger = logging.getLogger("ibhq")


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        settings = load_settings()
        configure_logging(settings.log_level, settings.log_format)
        result: int = args.run(settings, args)
    except SettingsError as error:
        print(f"ibhq: {error}", file=sys.stderr)
        return 2
    except SchemaBehind as error:
        print(f"ibhq: {error}", file=sys.stderr)
        return 3
    return result


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ibhq",
        description="IBHQ backend. Settings come from IBHQ_* environment variables; "
        "see the README.",
    )
    commands = parser.add_subparsers(required=True, metavar="COMMAND")

    serve = commands.add_parser(
        "serve",
        help="run the API (and, unless --no-workers, the workers)",
        description="Run the HTTP API. On SQLite the database is migrated to the "
        "latest schema first; on PostgreSQL a schema that is behind stops the "
        "start, so run `ibhq migrate` first.",
    )
    serve.add_argument(
        "--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)"
    )
    serve.add_argument(
        "--port", type=int, default=8000, help="TCP port to listen on (default 8000)"
    )
    serve.add_argument(
        "--no-workers",
        action="store_true",
        help="serve the API only; run the workers elsewhere with `ibhq worker`",
    )
    serve.set_defaults(run=_serve)

    worker = commands.add_parser(
        "worker",
        help="run the background workers only",
        description="Run the background workers without the HTTP API.",
    )
    worker.set_defaults(run=_worker)

    migrate = commands.add_parser(
        "migrate",
        help="migrate the database to the latest schema",
        description="Apply every pending database migration, then exit.",
    )
    migrate.set_defaults(run=_migrate)
    return parser


class SchemaBehind(Exception):
    pass


def _prepare_database(settings: Settings) -> None:
    url = settings.resolved_database_url
    if is_sqlite(url):
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        upgrade_to_head(url)
        return
    current = asyncio.run(current_revision(url))
    head = head_revision()
    if current != head:
        raise SchemaBehind(
            f"the database schema is at revision {current or 'none'} but this "
            f"version needs {head}: run `ibhq migrate` first"
        )


def _serve(settings: Settings, args: argparse.Namespace) -> int:
    from ibhq.app import create_app

    _prepare_database(settings)
    app = create_app(settings, workers=not args.no_workers)
    logger.info("serving on http://%s:%d", args.host, args.port)
    uvicorn.run(
        app,
        host=args.host,
        port=args.port,
        log_config=None,
        proxy_headers=True,
        forwarded_allow_ips=settings.forwarded_allow_ips,
    )
    return 0


def _worker(settings: Settings, args: argparse.Namespace) -> int:
    from workers.runner import WorkerConfig, run_standalone

    _prepare_database(settings)
    config = WorkerConfig(login_window=settings.login_window)
    try:
        asyncio.run(run_standalone(settings.resolved_database_url, config))
    except KeyboardInterrupt:
        logger.info("worker interrupted")
    return 0


def _migrate(settings: Settings, args: argparse.Namespace) -> int:
    url = settings.resolved_database_url
    if is_sqlite(url):
        settings.data_dir.mkdir(parents=True, exist_ok=True)
    upgrade_to_head(url)
    logger.info("database migrated to revision %s", head_revision())
    return 0
