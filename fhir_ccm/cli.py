"""The command line: ``python -m fhir_ccm`` (also installed as ``fhir-ccm``).

    fhir-ccm serve --host H --port P --database FILE --workers N
    fhir-ccm load [--database FILE] FILE_OR_DIR...
    fhir-ccm init-db --database FILE
    fhir-ccm reindex [--database FILE] [--type TYPE]
    fhir-ccm reconcile [--database FILE] --patient ID [--persist] [--json]
    fhir-ccm validate [--profile URL_OR_FILE]... [--definitions FILE_OR_DIR]... [--json] FILE...
    fhir-ccm audit [--database FILE] [--html FILE] [--json FILE] [--definitions FILE_OR_DIR]...

Each option has an environment variable of the same meaning
(``FHIR_CCM_DATABASE``, ``FHIR_CCM_HOST``, ``FHIR_CCM_PORT``, ``FHIR_CCM_WORKERS``...);
an option given on the command line wins.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from dataclasses import fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fhir_ccm.config import Config

if TYPE_CHECKING:
    from fhir_ccm.errors import Issue
    from fhir_ccm.interactions.validate import Source

CONFIG_FIELDS = frozenset(field.name for field in fields(Config))
USAGE_ERROR = 2


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

    validate = commands.add_parser(
        "validate",
        help="validate JSON, XML, Bundle and ndjson files against base R4 and profiles",
        description="Exit status: 0 no errors, 1 errors, 2 usage errors.",
    )
    validate.add_argument(
        "--profile",
        action="append",
        default=[],
        metavar="URL_OR_FILE",
        help="also validate each resource of the profile's type against it (a canonical url or a JSON file)",
    )
    _profile_options(validate)
    validate.add_argument("--json", action="store_true", help="print OperationOutcome JSON instead of a table")
    validate.add_argument("--quiet", action="store_true", help="list only the resources with errors")
    validate.add_argument("files", nargs="+", metavar="FILE", help="files or folders (.json, .xml, .ndjson)")

    audit = commands.add_parser(
        "audit",
        help="validate every stored resource against its claimed and required profiles; write a report",
        description="Exit status: 0 every resource valid, 1 some invalid, 2 usage errors.",
    )
    audit.add_argument("--database", help="SQLite file (FHIR_CCM_DATABASE, default fhir-ccm.db)")
    audit.add_argument("--html", metavar="FILE", help="write the report as an HTML page")
    audit.add_argument("--json", dest="json_file", metavar="FILE", help="write the JSON report here (default: stdout)")
    _profile_options(audit)
    return parser


def _profile_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--definitions",
        dest="extra_definitions",
        action="append",
        default=[],
        metavar="FILE_OR_DIR",
        help="extra StructureDefinitions, ValueSets and CodeSystems (JSON, XML, Bundles, ndjson)",
    )
    parser.add_argument(
        "--unknown-profiles",
        choices=("reject", "warn"),
        help="a claimed profile nobody defined: an error or a warning (FHIR_CCM_UNKNOWN_PROFILES, default reject)",
    )
    parser.add_argument(
        "--required-profiles",
        metavar="TYPE=URL,...",
        help="profiles every resource of a type must meet (FHIR_CCM_REQUIRED_PROFILES)",
    )


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    overrides = {k: v for k, v in vars(args).items() if k in CONFIG_FIELDS}
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
    if args.command == "validate":
        return run_validate(config, args.files, args.profile, args.extra_definitions, args.json, args.quiet)
    from fhir_ccm.store.sqlite import SQLiteStore

    if args.command == "audit":
        return run_audit(config, args.extra_definitions, args.html, args.json_file)
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
    from fhir_ccm.interactions.validate import ProfilePolicy, use_policy
    from fhir_ccm.loader import load_paths

    store = SQLiteStore(config.database)
    try:
        with use_policy(ProfilePolicy.from_config(config, store)):  # the server's profile checks on every write
            report = load_paths(store, args.paths)
    except ValueError as error:
        print(f"load: {error}", file=sys.stderr)
        return USAGE_ERROR
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


def run_validate(
    config: Config,
    paths: Sequence[str],
    profiles: Sequence[str],
    definitions: Sequence[str],
    as_json: bool,
    quiet: bool,
) -> int:
    """``validate``: 0 when no resource has an error, 1 when one has, 2 on a usage error."""
    from fhir_ccm.errors import Issue
    from fhir_ccm.formats.json_format import dump_json
    from fhir_ccm.interactions.validate import ProfilePolicy, read_definitions, read_sources, validation_issues
    from fhir_ccm.reports.issues import Validated, label, render

    missing = [path for path in [*paths, *definitions] if not Path(path).exists()]
    if missing:
        return _usage("validate", f"no such file or folder: {', '.join(missing)}")
    profile_files = [profile for profile in profiles if Path(profile).is_file()]
    try:
        urls = [profile for profile in profiles if profile not in profile_files]
        urls += [str(sd.get("url")) for sd in read_definitions(profile_files) if "url" in sd]
        policy = ProfilePolicy.from_config(config, extra=[*definitions, *profile_files])
    except ValueError as error:
        return _usage("validate", str(error))
    registry = policy.registry()
    types = {}
    for url in dict.fromkeys(urls):
        profile = registry.profile(url)
        if profile is None:
            why = registry.problem(url) or "give its StructureDefinition with --definitions"
            return _usage("validate", f"the profile {url} is not known ({why})")
        types[url] = profile.type
    results = []
    outcomes = []
    for source in read_sources(paths):
        if source.resource is None:
            issues = [Issue("fatal", "structure", source.problem or "unreadable")]
        else:
            resource_type = source.resource.get("resourceType")
            asked = [url for url, profile_type in types.items() if profile_type == resource_type]
            issues = validation_issues(policy, source.resource, asked)
        results.append(Validated(source.where, label(source.resource), tuple(issues)))
        outcomes.append((source, issues))
    if not results:
        return _usage("validate", "no .json, .xml or .ndjson file found")
    print(dump_json(_outcomes_json(outcomes), pretty=True) if as_json else render(results, quiet))
    return 1 if any(result.errors for result in results) else 0


def _outcomes_json(outcomes: Sequence[tuple[Source, list[Issue]]]) -> dict[str, Any]:
    """One OperationOutcome, or a collection Bundle of them (``fullUrl`` names each file and line)."""
    from fhir_ccm.interactions.validate import outcome

    if len(outcomes) == 1:
        return outcome(outcomes[0][1])
    entries = [
        {
            "fullUrl": Path(source.path).resolve().as_uri() + (f"#L{source.line}" if source.line is not None else ""),
            "resource": outcome(issues),
        }
        for source, issues in outcomes
    ]
    return {"resourceType": "Bundle", "type": "collection", "total": len(entries), "entry": entries}


def run_audit(config: Config, definitions: Sequence[str], html_file: str | None, json_file: str | None) -> int:
    """``audit``: 0 when every stored resource is valid, 1 when some are not, 2 on a usage error."""
    import json

    from fhir_ccm.audit import audit_store
    from fhir_ccm.interactions.validate import ProfilePolicy
    from fhir_ccm.reports.audit import render
    from fhir_ccm.store.sqlite import SQLiteStore

    if not Path(config.database).is_file():
        return _usage("audit", f"no database at {config.database}")
    missing = [path for path in definitions if not Path(path).exists()]
    if missing:
        return _usage("audit", f"no such file or folder: {', '.join(missing)}")
    store = SQLiteStore(config.database)
    try:
        policy = ProfilePolicy.from_config(config, store, extra=definitions)
        report = audit_store(store, policy, source=config.database)
    except ValueError as error:
        return _usage("audit", str(error))
    finally:
        store.close()
    text = json.dumps(report, indent=2, ensure_ascii=False, default=str)
    summary = report["summary"]
    line = (
        f"audited {summary['resources']} resources in {config.database}: {summary['valid']} valid,"
        f" {summary['invalid']} invalid ({summary['profiled']} profile checks)"
    )
    if json_file:
        Path(json_file).write_text(text + "\n", encoding="utf-8")
    else:
        print(text)
    if html_file:
        Path(html_file).write_text(render(report), encoding="utf-8")
    print(line, file=sys.stdout if json_file else sys.stderr)
    return 1 if summary["invalid"] else 0


def _usage(command: str, message: str) -> int:
    print(f"fhir-ccm {command}: {message}", file=sys.stderr)
    return USAGE_ERROR


if __name__ == "__main__":
    sys.exit(main())
