"""The command line: ``python -m fhir_ccm`` (also installed as ``fhir-ccm``).

    fhir-ccm serve --host H --port P --database FILE --workers N
    fhir-ccm load [--database FILE] FILE_OR_DIR...
    fhir-ccm init-db --database FILE
    fhir-ccm reindex [--database FILE] [--type TYPE]
    fhir-ccm reconcile [--database FILE] --patient ID [--persist] [--json]

Each option has an environment variable of the same meaning
(``FHIR_CCM_DATABASE``, ``FHIR_CCM_HOST``, ``FHIR_CCM_PORT``, ``FHIR_CCM_WORKERS``...);
an option given on the command line wins.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from fhir_ccm.config import Config


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="fhir-ccm", description="FHIR R4 server for chronic care management")
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser("serve", help="serve the FHIR API with gunicorn")
    serve.add_argument("--host", help="address to listen on (FHIR_CCM_HOST, default 127.0.0.1)")
    serve.add_argument("--port", type=int, help="port to listen on (FHIR_CCM_PORT, default 8080)")
    serve.add_argument("--database", help="SQLite file (FHIR_CCM_DATABASE, default fhir-ccm.db)")
    serve.add_argument("--workers", type=int, help="worker processes (FHIR_CCM_WORKERS, default 2)")
    serve.add_argument("--base-url", help="public base URL (FHIR_CCM_BASE_URL, default from the request)")

    load = commands.add_parser("load", help="load resources, Bundles or ndjson files into the database")
    load.add_argument("--database", help="SQLite file (FHIR_CCM_DATABASE, default fhir-ccm.db)")
    load.add_argument("paths", nargs="+", metavar="FILE_OR_DIR")

    init_db = commands.add_parser("init-db", help="create an empty database")
    init_db.add_argument("--database", help="SQLite file (FHIR_CCM_DATABASE, default fhir-ccm.db)")

    reconcile = commands.add_parser("reconcile", help="reconcile what several providers say about one patient")
    reconcile.add_argument("--database", help="SQLite file (FHIR_CCM_DATABASE, default fhir-ccm.db)")
    reconcile.add_argument("--patient", required=True, help="the Patient id")
    reconcile.add_argument("--persist", action="store_true", help="store the unified plan, list, team and conflicts")
    reconcile.add_argument("--json", action="store_true", help="print the collection Bundle as JSON")

    reindex = commands.add_parser("reindex", help="rebuild the search index from the stored resources")
    reindex.add_argument("--database", help="SQLite file (FHIR_CCM_DATABASE, default fhir-ccm.db)")
    reindex.add_argument("--type", dest="resource_type", help="only resources of this type")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    overrides = {
        k: v
        for k, v in vars(args).items()
        if k not in ("command", "paths", "resource_type", "patient", "persist", "json")
    }
    config = Config.from_env(**overrides)
    if args.command == "serve":
        from fhir_ccm.server import serve

        serve(config)
        return 0
    if args.command == "init-db":
        from fhir_ccm.store.sqlite import initialize

        initialize(config.database)
        print(f"initialized {config.database}")
        return 0
    from fhir_ccm.store.sqlite import SQLiteStore

    if args.command == "reconcile":
        return run_reconcile(config, args.patient, args.persist, args.json)
    if args.command == "reindex":
        from fhir_ccm.reindex import reindex

        store = SQLiteStore(config.database)
        try:
            count = reindex(store, args.resource_type)
        finally:
            store.close()
        print(f"reindexed {count} resources in {config.database}")
        return 0
    from fhir_ccm.loader import load_paths

    store = SQLiteStore(config.database)
    try:
        report = load_paths(store, args.paths)
    finally:
        store.close()
    print(
        f"loaded into {config.database}: {report.created} created, {report.updated} updated,"
        f" {report.unchanged} unchanged, {len(report.failed or [])} failed"
    )
    for where, why in report.failed or []:
        print(f"  failed: {where}: {why}", file=sys.stderr)
    return 1 if report.failed else 0


def run_reconcile(config: Config, patient: str, persist: bool, as_json: bool) -> int:
    from fhir_ccm.errors import FhirError
    from fhir_ccm.formats.json_format import dump_json
    from fhir_ccm.interactions import Context
    from fhir_ccm.interactions.reconcile import reconcile_patient
    from fhir_ccm.reports.reconciliation import summarize
    from fhir_ccm.store.sqlite import SQLiteStore

    store = SQLiteStore(config.database)
    try:
        result = reconcile_patient(store, Context(base_url=config.base_url or Context().base_url), patient, persist)
    except FhirError as error:
        print(f"reconcile failed: {error.message}", file=sys.stderr)
        return 1
    finally:
        store.close()
    assert result.resource is not None
    print(dump_json(result.resource, pretty=True) if as_json else summarize(result.resource))
    return 0


if __name__ == "__main__":
    sys.exit(main())
