"""The `uninote` command line (click). Every command is a thin shell over a plain function.

Failures of services (database, broker, Qdrant, encoder unreachable) end any command with one line naming
the service, its URL (password masked) and `uninote healthcheck`, and exit status 1
(app.service_errors.service_failure); `uninote --debug ...` shows the traceback instead.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click
from pydantic import ValidationError

from app.notes import ImagePathError, Note, describe_validation_error
from app.settings import get_settings

ALLOW_OUTSIDE_HELP = ("Read image paths that resolve outside the notes file's folder (absolute, ../, symlinks): "
                      "only for a trusted local run.")


def _open_library():
    from app.library import Library

    return Library.open(get_settings())


class _Commands(click.Group):
    """The command group: a service failure or a records-configuration error becomes one line and exit 1."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except (click.ClickException, click.exceptions.Exit, click.Abort):
            raise
        except Exception as e:
            if ctx.params.get("debug"):
                raise
            from app.records.errors import MigrationPermissionError
            from app.service_errors import service_failure
            from app.store_types import StoreLockedError, StoreOpenError, StoreWriteError

            own = (MigrationPermissionError, StoreOpenError, StoreLockedError, StoreWriteError)
            failure = e if isinstance(e, own) else service_failure(e, get_settings())
            if failure is None:
                raise
            click.echo(f"error: {failure}", err=True)
            ctx.exit(1)


@click.group(cls=_Commands)
@click.option("-v", "--verbose", is_flag=True, help="Log at INFO level.")
@click.option("--debug", is_flag=True, help="Show the traceback of a failure instead of one line.")
def main(verbose: bool, debug: bool) -> None:
    """UniNote: find near-duplicate and infringing notes."""
    import logging

    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s")


@main.command()
@click.argument("path", type=click.Path(exists=True, path_type=Path))
@click.option("--batch-size", default=32, show_default=True, help="Notes encoded per batch.")
@click.option("--force", is_flag=True, help="Re-index notes whose content did not change.")
@click.option("--allow-outside", is_flag=True, help=ALLOW_OUTSIDE_HELP)
def ingest(path: Path, batch_size: int, force: bool, allow_outside: bool) -> None:
    """Validate and index the notes in PATH (a folder with notes.jsonl, or a .jsonl file)."""
    from app.library import IndexResult
    from app.notes import load_notes

    notes, bad = load_notes(path, allow_outside=allow_outside)
    for b in bad:
        click.echo(f"bad record: {b}", err=True)
    lib = _open_library()
    result = IndexResult()
    with click.progressbar(range(0, len(notes), batch_size), label="indexing") as bar:
        for start in bar:
            result.merge(lib.index(notes[start:start + batch_size], source=str(path.resolve()), force=force))
    for nid, why in result.failed.items():
        click.echo(f"failed: {why}", err=True)
    click.echo(f"indexed {len(result.indexed)}, unchanged {len(result.skipped)}, "
               f"failed {len(result.failed) + len(bad)}")
    lib.close()


def _read_note(arg: str, allow_outside: bool) -> Note:
    """The note of a JSON file, image paths against its folder (inside it unless allow_outside)."""
    path = Path(arg)
    try:
        data = path.read_bytes()
        raw = json.loads(data.decode("utf-8"))
    except UnicodeDecodeError as e:
        raise click.ClickException(f"{arg}: not UTF-8: byte 0x{data[e.start]:02x} at offset {e.start} "
                                   f"({e.reason})") from None
    except json.JSONDecodeError as e:
        raise click.ClickException(f"{arg}: not JSON: {e.msg} (line {e.lineno})") from None
    except OSError as e:
        raise click.ClickException(f"{arg}: cannot read it ({e.strerror or e})") from None
    try:
        return Note.model_validate(raw).resolve_images(path.parent, allow_outside=allow_outside)
    except ValidationError as e:
        raise click.ClickException(f"{arg}: {describe_validation_error(e)}") from None
    except ImagePathError as e:
        raise click.ClickException(f"{arg}: note {e.note_id!r}: {e}") from None


@main.command()
@click.argument("note", metavar="NOTE_JSON_OR_ID")
@click.option("--limit", default=10, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@click.option("--allow-outside", is_flag=True, help=ALLOW_OUTSIDE_HELP)
def check(note: str, limit: int, as_json: bool, allow_outside: bool) -> None:
    """Audit a note (a JSON file, or the id of a stored note) against the library and its banks."""
    from app.client import UniNoteClient
    from encoder.types import InputError

    query = _read_note(note, allow_outside) if Path(note).is_file() else None  # bad input before any service
    lib = _open_library()
    try:
        # a file: UniNoteClient.check, the banks' check of the API and dashboard; an id: the look-back
        report = lib.check_stored(note, limit=limit) if query is None else UniNoteClient(lib).check(query, limit=limit)
    except (InputError, KeyError) as e:
        raise click.ClickException(e.args[0] if isinstance(e, KeyError) else str(e)) from None
    finally:
        lib.close()
    if as_json:
        click.echo(json.dumps(report.to_dict(), ensure_ascii=False, indent=2))
        return
    click.echo(f"verdict: {report.verdict}")
    if report.timings_ms:
        click.echo(f"time: {report.timings_line()}")
    for rank, m in enumerate(report.matches, start=1):
        click.echo(f"{rank:>3}. {m.note_id:<32} score {m.score:.3f}  {m.verdict}")
        for ev in m.evidence[:3]:
            pdq = f"  PDQ distance {ev.pdq_distance}" if ev.pdq_distance is not None else ""
            click.echo(f"       query {ev.query_kind}[{ev.query_index}] ~ {ev.matched_kind}[{ev.matched_index}]"
                       f"  cosine {ev.score:.3f}{pdq}")
        for ev in m.evidence:
            if ev.verified_score:  # a geometrically verified image pair: its region in both images
                click.echo(f"       verified: query image {ev.query_image_index} {_box(ev.verified_query_box)} ~ "
                           f"image {ev.matched_image_index} {_box(ev.verified_matched_box)}  {ev.inliers} inliers"
                           f" (score {ev.verified_score:.3f}{', mirrored' if ev.verified_mirrored else ''})")


def _box(box) -> str:
    """(x0, y0, x1, y1) fractions as `[0.10,0.20-0.80,0.90]`."""
    return "[-]" if box is None else f"[{box[0]:.2f},{box[1]:.2f}-{box[2]:.2f},{box[3]:.2f}]"


@main.command()
@click.option("--data", type=click.Path(exists=True, path_type=Path), default=None,
              help="Your own notes folder (notes.jsonl + images) instead of the built-in corpus.")
@click.option("--seed", default=0, show_default=True)
@click.option("--text-notes", default=150, show_default=True, help="Text-only notes in the built-in library.")
def demo(data: Path | None, seed: int, text_notes: int) -> None:
    """Build a real-data corpus with planted copies, index it, check every copy, print the table."""
    import shutil

    from app.demo import run_demo
    from app.library import Library

    base = get_settings()
    workdir = base.home / "demo"
    shutil.rmtree(workdir, ignore_errors=True)  # a fresh demo library each run
    settings = base.model_copy(update={"home": workdir, "qdrant_path": None, "database_url": None})
    lib = Library.open(settings)
    try:
        result = run_demo(lib, workdir, data, seed=seed, n_text_notes=text_notes, progress=click.echo)
    finally:
        lib.close()
    click.echo(result.table())


@main.command()
@click.argument("note_id")
def delete(note_id: str) -> None:
    """Delete a stored note (its global vector and every element)."""
    from app.records.errors import RecordNotFoundError

    lib = _open_library()
    try:
        lib.delete(note_id)
    except RecordNotFoundError:
        raise click.ClickException(f"no note {note_id!r} in the library (nothing deleted)") from None
    finally:
        lib.close()
    click.echo(f"deleted {note_id}")


@main.group()
def store() -> None:
    """The vector store (the embedded Qdrant Edge folder, or a Qdrant server)."""


@store.command("migrate")
def store_migrate() -> None:
    """Copy a store written by the old qdrant-client local mode (QDRANT_PATH) into Qdrant Edge, verify the
    counts, and keep the old folder beside it."""
    from app.store import StoreConfig
    from app.store_migration import MigrationError, migrate_local_store

    settings = get_settings()
    if settings.qdrant_url:
        raise click.ClickException("QDRANT_URL is set: a Qdrant server needs no migration (unset it to migrate "
                                   f"the embedded folder {settings.resolved_qdrant_path})")
    try:
        report = migrate_local_store(settings.resolved_qdrant_path, StoreConfig.from_settings(settings))
    except MigrationError as e:
        raise click.ClickException(str(e)) from None
    for line in report.lines():
        click.echo(line)


@main.command()
def migrate() -> None:
    """Create or upgrade the records database (Alembic upgrade head), as MIGRATION_DATABASE_URL's role when
    set; on PostgreSQL, DATABASE_URL's role is then made the application role (docs/scaling.md)."""
    from app.records.roles import migrate_with_roles

    for warning in migrate_with_roles(get_settings()):
        click.echo(f"warning: {warning}", err=True)
    click.echo("database is at the latest revision")


@main.command()
@click.option("--queues", default="index,backfill,audit", show_default=True, help="Comma-separated Celery queues.")
@click.option("--concurrency", default=1, show_default=True, help="Worker processes (>1 needs QDRANT_URL).")
@click.option("--pool", default="prefork", show_default=True, type=click.Choice(["prefork", "solo", "threads"]))
def worker(queues: str, concurrency: int, pool: str) -> None:
    """Run a Celery worker (needs CELERY_BROKER_URL)."""
    from app.store import StoreLockedError
    from workers.worker import NoBrokerError, start_worker

    try:
        start_worker([q.strip() for q in queues.split(",") if q.strip()], concurrency, pool=pool)
    except (NoBrokerError, StoreLockedError, ValueError) as e:
        raise click.ClickException(str(e)) from None


@main.command()
@click.argument("path", required=False, type=click.Path(exists=True, path_type=Path))
@click.option("--detach", is_flag=True, help="Queue the backfill and return at once (with CELERY_BROKER_URL).")
@click.option("--restart", is_flag=True, help="A new job from line 0 even if one is unfinished.")
@click.option("--batch-size", default=32, show_default=True)
@click.option("--allow-outside", is_flag=True, help=ALLOW_OUTSIDE_HELP)
@click.option("--status", "show_status", is_flag=True, help="List the recent jobs; stalled ones say how to resume.")
@click.option("--resume", "resume_id", type=int, default=None, metavar="ID",
              help="Set job ID running again and queue its batch at the stored cursor (a stalled, paused or "
                   "failed job).")
def backfill(path: Path | None, detach: bool, restart: bool, batch_size: int, allow_outside: bool,
             show_status: bool, resume_id: int | None) -> None:
    """Index a whole notes file as a resumable backfill job, with a progress bar; or list (--status) or
    resume (--resume ID) jobs."""
    from app.records.errors import RecordNotFoundError
    from workers.backfill import list_jobs, resume_backfill, run_backfill

    if sum((path is not None, show_status, resume_id is not None)) != 1:
        raise click.UsageError("give one of PATH, --status or --resume ID")
    if show_status:
        views = list_jobs()
        for view in views:
            click.echo(view.describe())
        if not views:
            click.echo("no backfill jobs yet")
        return
    with click.progressbar(length=0, label="backfill", show_pos=True) as bar:
        def progress(status) -> None:
            bar.length = status.total or bar.length
            bar.update(status.cursor - bar.pos)

        callback = None if detach else progress
        if resume_id is not None:
            try:
                status = resume_backfill(resume_id, detach=detach, progress_callback=callback)
            except RecordNotFoundError:
                raise click.ClickException(f"no backfill job {resume_id} (`uninote backfill --status` lists them)") from None
        else:
            status = run_backfill(path.resolve(), detach=detach, progress_callback=callback, batch_size=batch_size,
                                  restart=restart, allow_outside=allow_outside)
    click.echo(status.describe())
    for e in status.errors[:20]:
        click.echo(f"  line {e.line} {e.note_id or ''}: {e.error}", err=True)
    if status.status == "failed":
        sys.exit(1)


@main.group()
def audit() -> None:
    """The audit log."""


@audit.command("verify")
@click.option("--anchor", default=None, metavar="ID:HASH",
              help="An entry id and hash printed by an earlier verify: it must still be there, unchanged.")
def audit_verify(anchor: str | None) -> None:
    """Check the audit log's hash chain: exit 1 naming every deleted, edited or inserted entry."""
    from app.records.audit_log import verify_chain
    from app.records.db import make_engine, migrate, session_factory

    pinned = None
    if anchor is not None:
        entry_id, sep, digest = anchor.partition(":")
        if not (sep and entry_id.isdigit() and len(digest) == 64):
            raise click.BadParameter(f"{anchor!r}: expected ID:HASH (64 hex digits)", param_hint="--anchor")
        pinned = (int(entry_id), digest.lower())
    url = get_settings().resolved_database_url
    migrate(url)
    engine = make_engine(url)
    try:
        with session_factory(engine)() as s:
            report = verify_chain(s, anchor=pinned)
    finally:
        engine.dispose()
    for problem in report.problems:
        click.echo(f"tampered: {problem}", err=True)
    click.echo(report.describe())
    sys.exit(0 if report.ok else 1)


@main.command()
@click.option("--role", type=click.Choice(["worker", "dashboard", "api", "migrate"]), default="dashboard", show_default=True)
def healthcheck(role: str) -> None:
    """Exit 0 when the services this role depends on answer (no encoder is loaded)."""
    from app.health import check_role

    problems = check_role(get_settings(), role)
    for p in problems:
        click.echo(f"unhealthy: {p}", err=True)
    sys.exit(1 if problems else 0)


@main.command()
@click.argument("checkpoint", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.argument("out", type=click.Path(path_type=Path))
@click.option("--overwrite", is_flag=True, help="Replace a non-empty OUT folder.")
def export(checkpoint: Path, out: Path, overwrite: bool) -> None:
    """Export a Qwen3-VL UniNote checkpoint as an HF folder that vLLM serves as is."""
    from encoder.export import ExportError, export_checkpoint

    try:
        click.echo(f"exported to {export_checkpoint(checkpoint, out, overwrite=overwrite)}")
    except ExportError as e:
        raise click.ClickException(str(e)) from None


@main.command("serve-encoder")
@click.argument("checkpoint", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True)
@click.option("--max-model-len", default=8192, show_default=True)
@click.option("--dtype", default="auto", show_default=True)
@click.option("--python", "python", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
              help="Interpreter of the vLLM environment (default .venv-vllm/bin/python).")
def serve_encoder(checkpoint: Path, host: str, port: int, max_model_len: int, dtype: str, python: Path | None) -> None:
    """Serve a Qwen3-VL UniNote checkpoint (or export) with vLLM's pooling runner."""
    from encoder.vllm_server import VLLMServerConfig, serve_encoder as serve

    config = VLLMServerConfig(host=host, port=port, max_model_len=max_model_len, dtype=dtype, python=python)
    sys.exit(serve(checkpoint, host, port, config=config))


@main.command()
@click.option("--host", default=None, help="Default DASHBOARD_HOST.")
@click.option("--port", type=int, default=None, help="Default DASHBOARD_PORT.")
def dashboard(host: str | None, port: int | None) -> None:
    """Serve the moderator dashboard (accounts: `uninote user add`)."""
    from app.dashboard import serve_dashboard
    from app.secret_key import SecretKeyFileError, WeakSecretKeyError

    try:
        serve_dashboard(get_settings(), host, port)
    except (WeakSecretKeyError, SecretKeyFileError) as e:
        raise click.ClickException(str(e)) from None


@main.group()
def user() -> None:
    """Dashboard accounts."""


@user.command("add")
@click.option("--username", required=True)
@click.option("--role", type=click.Choice(["moderator", "admin"]), default="moderator", show_default=True)
@click.option("--password-stdin", is_flag=True, help="Read the password from the first line of stdin.")
def user_add(username: str, role: str, password_stdin: bool) -> None:
    """Create a dashboard account (audit-logged as 'cli')."""
    from app.dashboard import add_user

    password = (sys.stdin.readline().rstrip("\r\n") if password_stdin
                else click.prompt("Password", hide_input=True, confirmation_prompt=True))
    try:
        u = add_user(get_settings(), username, password, role)
    except ValueError as e:
        raise click.ClickException(str(e)) from None
    click.echo(f"added {u.username} ({u.role.value})")


@main.command()
@click.option("--host", default=None, help="Default API_HOST.")
@click.option("--port", type=int, default=None, help="Default API_PORT.")
def serve(host: str | None, port: int | None) -> None:
    """Serve the HTTP API (OpenAPI at /openapi.json; keys: `uninote key add`)."""
    from app.api.server import serve_api
    from app.store import StoreLockedError

    try:
        serve_api(get_settings(), host, port)
    except (StoreLockedError, ValueError) as e:
        raise click.ClickException(str(e)) from None


def _key_sessions():
    from app.records.db import make_engine, migrate as run_migrations, session_factory

    url = get_settings().resolved_database_url
    run_migrations(url)
    return session_factory(make_engine(url))


@main.group()
def key() -> None:
    """API keys of `uninote serve` (stored hashed; a new key is shown once)."""


@key.command("add")
@click.option("--name", required=True, help="Who or what uses the key.")
@click.option("--scopes", required=True, help="Comma-separated: check,index,decide,admin.")
def key_add(name: str, scopes: str) -> None:
    """Create a key and print it (once: only its hash is kept)."""
    from app.records import api_keys, audit_log
    from app.records.audit_log import Action
    from app.records.db import transaction

    try:
        with transaction(_key_sessions()) as s:
            k, token = api_keys.create_key(s, name, scopes)
            audit_log.append(s, "cli", Action.API_KEY, k.actor, {"change": "add", "name": k.name,
                                                                  "scopes": [x.value for x in k.scopes]})
    except ValueError as e:
        raise click.ClickException(str(e)) from None
    click.echo(f"key {k.key_id} ({','.join(x.value for x in k.scopes)}) for {k.name}:")
    click.echo(token)


@key.command("list")
def key_list() -> None:
    """Every key: id, name, scopes, created, revoked."""
    from app.records import api_keys

    with _key_sessions()() as s:
        for k in api_keys.list_keys(s):
            revoked = f"revoked {k.revoked_at:%Y-%m-%d %H:%M}" if k.revoked_at else "active"
            click.echo(f"{k.key_id}  {','.join(x.value for x in k.scopes):<24} {k.created_at:%Y-%m-%d %H:%M}  "
                       f"{revoked:<24} {k.name}")


@key.command("revoke")
@click.argument("key_id")
def key_revoke(key_id: str) -> None:
    """Revoke a key: every call with it is refused from now on."""
    from app.records import api_keys, audit_log
    from app.records.audit_log import Action
    from app.records.db import transaction
    from app.records.errors import RecordNotFoundError

    try:
        with transaction(_key_sessions()) as s:
            k = api_keys.revoke_key(s, key_id)
            audit_log.append(s, "cli", Action.API_KEY, k.actor, {"change": "revoke"})
    except RecordNotFoundError as e:
        raise click.ClickException(str(e)) from None
    click.echo(f"revoked {k.key_id} ({k.name})")


@main.group()
def bank() -> None:
    """Banks of known-bad notes and allow-lists (opens the library: stop `uninote serve` first with the
    embedded store, or use the API)."""


def _banks_client():
    from app.client import UniNoteClient

    return UniNoteClient.open(get_settings())


@bank.command("list")
def bank_list() -> None:
    with _banks_client() as client:
        for b in client.banks.list():
            state = "enabled" if b.enabled else "disabled"
            click.echo(f"{b.name:<24} {b.kind.value:<6} {b.action:<12} {state:<9} {b.entries:>7} entries "
                       f"{b.hits:>7} hits")


@bank.command("create")
@click.argument("name")
@click.option("--kind", type=click.Choice(["risk", "allow"]), default="risk", show_default=True)
@click.option("--action", default="review", show_default=True, help="Action label reported with its matches.")
@click.option("--duplicate-threshold", type=float, default=None)
@click.option("--infringement-threshold", type=float, default=None)
def bank_create(name: str, kind: str, action: str, duplicate_threshold: float | None,
                infringement_threshold: float | None) -> None:
    with _banks_client() as client:
        try:
            b = client.banks.create(name, kind, action, actor="cli", duplicate_threshold=duplicate_threshold,
                                    infringement_threshold=infringement_threshold)
        except ValueError as e:
            raise click.ClickException(str(e)) from None
    click.echo(f"created bank {b.name} ({b.kind.value}, action {b.action})")


@bank.command("export")
@click.argument("name")
@click.argument("out", type=click.Path(dir_okay=False, path_type=Path))
def bank_export(name: str, out: Path) -> None:
    """Write bank NAME as a UniNote bank file (vectors with their model version, PDQ hashes)."""
    from app.bank_exchange import export_bank
    from app.records.errors import RecordNotFoundError

    with _banks_client() as client:
        try:
            doc = export_bank(client.banks, name)
        except RecordNotFoundError as e:
            raise click.ClickException(str(e)) from None
    out.write_text(json.dumps(doc, ensure_ascii=False), encoding="utf-8")
    click.echo(f"exported {len(doc['entries'])} entries of {name} (model version {doc['model_version']}) to {out}")


@bank.command("import")
@click.argument("path", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--name", default=None, help="Bank to import into (default: the file's bank).")
@click.option("--pdq", "pdq_bank", default=None, metavar="BANK",
              help="PATH is a PDQ hash list (ThreatExchange / HMA formats): add its hashes to BANK.")
def bank_import(path: Path, name: str | None, pdq_bank: str | None) -> None:
    """Import a UniNote bank file, or (--pdq BANK) a PDQ hash list."""
    from app.bank_exchange import import_bank, import_pdq_list
    from app.records.errors import RecordNotFoundError

    text = path.read_text(encoding="utf-8")
    with _banks_client() as client:
        try:
            if pdq_bank:
                r = import_pdq_list(client.banks, pdq_bank, text, actor="cli")
            else:
                r = import_bank(client.banks, json.loads(text), actor="cli", name=name)
        except (ValueError, RecordNotFoundError) as e:  # ModelVersionMismatchError is a ValueError
            raise click.ClickException(str(e)) from None
    click.echo(f"bank {r.bank}: added {len(r.added)}, unchanged {len(r.unchanged)}, skipped {len(r.skipped)}")
    for why in r.skipped[:20]:
        click.echo(f"  skipped {why}", err=True)


@main.group()
def train() -> None:
    """Train UniNote (stage 1 SFT, stage 2 GRPO): the compact encoder, or Qwen3-VL when --init is one.

    Under `torchrun --nproc-per-node N -m app.cli train ...` every rank trains its share of each batch."""


@train.command("sft")
@click.option("--config", "config_path", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
              help="SFT TOML (training/configs/sft_compact.toml, sft_qwen3vl.toml; default: SFTConfig's values).")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), required=True, help="Run folder.")
@click.option("--steps", type=int, default=None, help="Override train.steps.")
@click.option("--trainable", multiple=True, help="Override train.trainable (repeat: --trainable image_head ...).")
@click.option("--init", type=click.Path(exists=True, file_okay=False, path_type=Path), default=None,
              help="Start from a compact checkpoint, or a Qwen3-VL folder (base weights or a UniNote Qwen3-VL "
                   "checkpoint) to train the paper's backbone (default: untrained compact heads, seed 0).")
def train_sft_cmd(config_path: Path | None, out: Path, steps: int | None, trainable: tuple[str, ...],
                  init: Path | None) -> None:
    """Stage 1: contrastive SFT with Matryoshka (InfoNCE + JS soft targets, rule and band negatives)."""
    from training.sft_train import train_sft

    try:
        click.echo(f"checkpoint {train_sft(config_path, out, steps=steps, trainable=trainable or None, init=init)}")
    except (FileNotFoundError, ValueError, ImportError) as e:  # CheckpointError is a ValueError
        raise click.ClickException(str(e)) from None


@train.command("rl")
@click.option("--init", "init", type=click.Path(exists=True, file_okay=False, path_type=Path), required=True,
              help="Stage-1 checkpoint, compact or Qwen3-VL (also the frozen reference policy).")
@click.option("--config", "config_path", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
              help="GRPO TOML (training/configs/grpo_compact.toml, grpo_qwen3vl.toml).")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), required=True, help="Output folder.")
@click.option("--no-resume", is_flag=True, help="Ignore trainer_state.pt in --out.")
def train_rl_cmd(init: Path, config_path: Path | None, out: Path, no_resume: bool) -> None:
    """Stage 2: GRPO ranking alignment on top of a stage-1 checkpoint."""
    from training.grpo_train import train_rl

    try:
        r = train_rl(init, config_path, out, resume=not no_resume)
    except (FileNotFoundError, ValueError, ImportError) as e:  # CheckpointError is a ValueError
        raise click.ClickException(str(e)) from None
    for b, a in zip(r.before, r.after):
        click.echo(f"dim {b.dim}: P@5 {b.p_at_5:.3f} -> {a.p_at_5:.3f}  NDCG@10 {b.ndcg_at_10:.3f} -> {a.ndcg_at_10:.3f}")
    click.echo(f"checkpoint {r.checkpoint} (version {r.model_version})")


@main.command()
@click.argument("checkpoint", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--config", "config_path", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
              help="SFT config whose [data] defines the held-out split.")
@click.option("--no-baselines", is_flag=True, help="Skip the untrained model and pHash/PDQ/MinHash rows.")
def evaluate(checkpoint: Path, config_path: Path | None, no_baselines: bool) -> None:
    """Held-out evaluation table: µAP, recall@P90, R@1, P@5 per task family at every Matryoshka dim."""
    from training.evaluation import evaluate as run_evaluation

    run_evaluation(checkpoint, config_path=config_path, baselines=not no_baselines, untrained=not no_baselines)


if __name__ == "__main__":
    sys.exit(main())
