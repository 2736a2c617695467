"""`loyalty-portal`: serve, migrate, and create partners, applications and keys."""

from __future__ import annotations

import json
import os
import shutil
import sys
from datetime import timedelta
from pathlib import Path

import click

from portal.config import ConfigError

INIT_HELP = ("Create what does not exist yet: the data dir, the server's generated secrets and "
             "the database's schema (a first run). Without it the command stops, creating nothing.")


def _init_option(command):
    return click.option("--init", is_flag=True, help=INIT_HELP)(command)


def _app(*, init: bool = False, first_run: bool = False):
    """The app for a command, after one line on stderr naming the database and data dir.

    Without `init` nothing is created: a missing data dir, a database that does not exist
    or was never migrated, or a server secret that would have to be generated stops the
    command with one line saying so. `first_run` (serve, migrate, demo) allows creating
    them when no location is configured at all and ./instance does not exist yet: the
    README's quick start on a fresh machine; it says so. Whatever a failing command
    created is removed again (_undo)."""
    from portal import create_app

    location = _announce()
    quick_start = first_run and not location.configured and not location.data_dir.exists()
    may_create = init or quick_start
    if not may_create:
        _refuse_fresh(location)
    elif quick_start:
        _say(f"First run: creating {location.data_dir} with a new SQLite database and server secrets "
             "(set LOYALTY_DATA_DIR or use --env-file to use an existing one).")
    _undo.note(location)
    try:
        return create_app(create=may_create)
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None


_server_log = None  # serve's logger, once serve has set up the log format


def _announce():
    """Where this command works, said first on stderr (every command does): the database
    and the data dir the settings name."""
    from portal.config import locate, masked_url

    location = locate()
    _say(f"Using database {masked_url(location.database_url)}, data dir {location.data_dir}")
    return location


def _say(message: str) -> None:
    """A note for the operator on stderr: a log line under serve (one format for every line
    of a server's output), a plain line for the other commands."""
    if _server_log is not None:
        _server_log.info("%s", message)
    else:
        click.echo(message, err=True)


def _refuse_fresh(location) -> None:
    """Stop (creating nothing) when the data dir or the database is not there yet."""
    from portal import db
    from portal.config import masked_url

    shown = masked_url(location.database_url)
    where = "LOYALTY_DATA_DIR / LOYALTY_DATABASE_URL (or --env-file)"
    if not location.data_dir.is_dir():
        _fail(f"data dir {location.data_dir} does not exist, so nothing was done. Check {where}, "
              f"or {_init_hint('create it')}")
    path = db.sqlite_path(location.database_url)
    if path is not None and not path.exists():
        _fail(f"database {shown} does not exist, so nothing was done. Check {where}, "
              f"or {_init_hint('create it')}")
    try:
        database = db.open_database(location.database_url)
    except ConfigError as exc:
        _fail(str(exc))
    try:
        applied, _, _ = db.schema_status(database)
    except Exception as exc:  # an unreachable database or a bad URL: one line, no traceback
        _fail(f"cannot reach the database: {_one_line(exc)}")
    finally:
        db.close_database(database)
    if not applied:
        _fail(f"database {shown} is empty (never migrated), so nothing was done. Check {where}, "
              f"or {_init_hint('create its schema')}")


def _init_hint(what: str) -> str:
    """How to let a command create what is missing: its own --init, or (a command without
    one: check, worker, backup, …) `migrate --init` first."""
    context = click.get_current_context(silent=True)
    if context is not None and any(param.name == "init" for param in context.command.params):
        return f"pass --init to {what}"
    return f"run `loyalty-portal migrate --init` first to {what}"


class _Undo:
    """What a command created in the data dir (the dir itself, generated secrets, a new
    SQLite file), removed again when the command fails: a failed command leaves nothing."""

    def __init__(self):
        self.paths: list[Path] = []
        self.made_dir: Path | None = None

    def note(self, location) -> None:
        from portal import db
        from portal.config import GENERATED_FILES

        self.made_dir = None if location.data_dir.exists() else location.data_dir
        candidates = [location.data_dir / name for name in GENERATED_FILES]
        sqlite = db.sqlite_path(location.database_url)
        if sqlite is not None:
            candidates += [Path(f"{sqlite}{suffix}") for suffix in db.SQLITE_COMPANIONS]
        self.paths = [path for path in candidates if not path.exists()]

    def done(self) -> None:
        """The command got past the point of failing: keep what it made."""
        self.paths, self.made_dir = [], None

    def run(self) -> None:
        from portal import db

        if not self.paths and self.made_dir is None:
            return
        db.close_all()
        for path in self.paths:
            try:
                path.unlink()
            except OSError:
                pass
        if self.made_dir is not None:
            shutil.rmtree(self.made_dir, ignore_errors=True)
        self.done()


_undo = _Undo()


def _fail(message: str):
    raise click.ClickException(message)


def _emit(data: dict, as_json: bool, lines: list[str]) -> None:
    if as_json:
        click.echo(json.dumps(data, indent=2))
    else:
        for line in lines:
            click.echo(line)


def _unstorable_argument(args) -> str | None:
    """Arguments reach the database as they are: one that is not valid UTF-8 (Python
    hands its bytes over as lone surrogates) is refused before any command runs."""
    from portal.inputs import unstorable

    for position, arg in enumerate(args, 1):
        reason = unstorable(arg) if isinstance(arg, str) else None
        if reason is not None:
            return (f"argument {position} holds {reason}, which cannot be stored "
                    "(was it written in an encoding other than UTF-8?); nothing was done")
    return None


class _OneLineErrors(click.Group):
    """A group whose usage errors (a bad --mode, a missing option) are one line, like its
    other errors, instead of the usage text followed by the error."""

    def main(self, args=None, prog_name=None, complete_var=None, standalone_mode=True, **extra):
        if not standalone_mode:
            return super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        refusal = _unstorable_argument(sys.argv[1:] if args is None else args)
        if refusal:
            click.echo(f"Error: {refusal}", err=True)
            sys.exit(2)
        try:
            result = super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        except click.UsageError as exc:
            _undo.run()
            hint = f" (see {exc.ctx.command_path} --help)" if exc.ctx is not None else ""
            click.echo(f"Error: {exc.format_message()}{hint}", err=True)
            sys.exit(exc.exit_code)
        except click.ClickException as exc:
            _undo.run()
            exc.show()
            sys.exit(exc.exit_code)
        except click.Abort:
            _undo.run()
            click.echo("Aborted.", err=True)
            sys.exit(1)
        except Exception:
            _undo.run()
            raise
        _undo.done()
        sys.exit(result if isinstance(result, int) else 0)


@click.group(cls=_OneLineErrors, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="loyalty-portal")
@click.option("--env-file", type=click.Path(dir_okay=False), metavar="PATH",
              help="Read settings from this KEY=VALUE file first, the way systemd's EnvironmentFile= "
                   "does (no shell: & $ and spaces are taken literally); its values win over the environment.")
def main(env_file):
    """The Loyalty Partner Platform: partner portal and signed loyalty API.

    Configuration comes from LOYALTY_* environment variables (and a .env file in the
    working folder, or --env-file). Every command first says, on stderr, which database
    and data dir it uses.

    Nothing is created behind your back: a command pointed at a data dir or database that
    does not exist yet (or was never migrated) stops with exit status 1 unless given
    --init. One exception keeps the quick start one command: serve, migrate and demo
    create ./instance by themselves when it does not exist and neither LOYALTY_DATA_DIR
    nor LOYALTY_DATABASE_URL is set anywhere, and say so.
    """
    if env_file:
        from portal.config import read_env_file

        try:
            os.environ.update(read_env_file(env_file))
        except ConfigError as exc:
            raise click.ClickException(str(exc)) from None


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=8000, show_default=True, type=click.IntRange(1, 65535), help="Port to listen on.")
@click.option("--workers", default=2, show_default=True, type=click.IntRange(1, 64), help="Worker processes.")
@click.option("--threads", default=4, show_default=True, type=click.IntRange(1, 64), help="Threads per worker.")
@click.option("--no-worker", is_flag=True, help="Leave out the webhook delivery worker (run `loyalty-portal worker` elsewhere).")
@_init_option
def serve(host, port, workers, threads, no_worker, init):
    """Run the portal and API under gunicorn (a production WSGI server).

    Upgrades the database's schema first. On a fresh machine with nothing configured it
    creates ./instance by itself (the quick start); any other data dir or database that
    does not exist yet, or was never migrated, needs --init once. The webhook delivery
    worker runs beside it as a child process, unless --no-worker. The workers' counts for
    GET /metrics live in <data dir>/metrics, emptied at start.
    """
    from gunicorn.app.base import BaseApplication
    from gunicorn.glogging import Logger

    from portal import db, metrics
    from portal.config import current_settings

    # Before anything logs: every line of the server's output, gunicorn's too, in one format.
    log_config = _log_like_a_server()
    app = _migrated_server_app(init=init, first_run=True)
    db.database.close()  # each worker opens its own connections after the fork
    _check_port_free(host, port)
    _undo.done()  # from here on the server runs: what it set up stays
    try:
        # Before any worker loads prometheus_client: each counts into this folder.
        metrics.prepare_multiprocess_dir(current_settings().data_dir)
    except OSError as exc:
        _fail(f"cannot prepare the metrics folder in the data dir: {exc.strerror or exc}")
    _say(f"Loyalty portal on http://{host}:{port}  (workers: {workers}, Ctrl+C stops)")

    class QuietAccessLogger(Logger):
        """gunicorn's logger without its access line, which the app writes itself (with its
        request id, key and client). With a log config set, gunicorn's own builds the line's
        fields for every request even with no access log: 5% of a signed read's CPU."""

        def access(self, resp, req, environ, request_time):
            return None

    class Server(BaseApplication):
        def load_config(self):
            self.cfg.set("bind", f"{host}:{port}")
            self.cfg.set("workers", workers)
            self.cfg.set("threads", threads)
            self.cfg.set("worker_class", "gthread" if threads > 1 else "sync")
            self.cfg.set("accesslog", None)  # the app logs each request itself, with its client
            self.cfg.set("logconfig_dict", log_config)  # gunicorn's own lines in the same format
            self.cfg.set("logger_class", QuietAccessLogger)
            self.cfg.set("timeout", 60)
            # gunicorn's control socket is one file per user: a second server on the host
            # would take it over and delete it on exit. Nothing here uses it.
            self.cfg.set("control_socket_disable", True)
            self.cfg.set("graceful_timeout", 10)
            # A dead worker's files in the metrics folder stop counting as live.
            self.cfg.set("child_exit", lambda server, worker: metrics.mark_process_dead(worker.pid))

        def load(self):
            return app

    delivery = None
    if not no_worker:
        from portal.webhooks_worker import ChildWorker

        delivery = ChildWorker()
        delivery.start()
    try:
        Server().run()
    finally:
        if delivery is not None:
            delivery.stop()


def _check_port_free(host: str, port: int) -> None:
    """Fail with one line, before announcing the URL, when the address is taken."""
    import socket

    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror:
        _fail(f"cannot listen on {host}: no such address")
    family, kind, proto, _, address = infos[0]
    with socket.socket(family, kind, proto) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(address)
        except OSError as exc:
            _fail(f"cannot listen on {host}:{port}: {exc.strerror or exc} (use --port to pick another)")


def _run_migrations(app) -> list[str]:
    from portal import db

    try:
        with app.app_context():
            return db.migrate()
    except Exception as exc:  # an unreachable database or a bad URL: one line, no traceback
        _fail(f"cannot migrate the database: {_one_line(exc)}")


def _log_like_a_server() -> dict:
    """`serve` and `worker`: their lines (and gunicorn's) in LOYALTY_LOG_FORMAT, the CLI's
    own among them; returns the logging config for gunicorn. A bad format is a one-line
    failure before anything logs."""
    global _server_log
    from portal import logs

    try:
        config = logs.logging_config()
    except ConfigError as exc:
        _fail(str(exc))
    logs.configure()
    _server_log = logs.get_logger("portal.cli")
    return config


def _migrated_server_app(*, init: bool = False, first_run: bool = False):
    """The app of `serve` or `worker`, its schema upgraded first (said when it was)."""
    app = _app(init=init, first_run=first_run)
    applied = _run_migrations(app)
    if applied:
        _say(f"Database migrated: {', '.join(applied)}")
    return app


def _domain_command(action, *, init: bool = False, migrate: bool = True):
    """What a command that is one domain call does around it: the app (migrated first,
    unless the command only reads), then `action()` in its context; a DomainError (bad
    input, a conflict) is the command's one-line failure. Returns what `action` returned."""
    from portal.domain import DomainError

    app = _app(init=init)
    if migrate:
        _run_migrations(app)
    with app.app_context():
        try:
            return action()
        except DomainError as exc:
            _fail(exc.message)


def _one_line(exc: Exception) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else exc.__class__.__name__


@main.command()
@click.option("--parent", type=int, hidden=True, help="Stop when this process (serve) ends.")
def worker(parent):
    """Deliver webhooks (the worker `serve` runs in the background), until Ctrl+C or SIGTERM.

    Run several, on one machine or many: each attempt is made by exactly one of them. The
    database must exist and be migrated (by `serve` or `migrate`).
    """
    from portal.webhooks_worker import run_forever

    _log_like_a_server()  # the server's log format (LOYALTY_LOG_FORMAT) for the worker's lines too
    app = _migrated_server_app()
    if not parent:
        _say("Webhook worker running (Ctrl+C stops)")
    with app.app_context():
        run_forever(parent_pid=parent)


@main.command()
@_init_option
def migrate(init):
    """Upgrade the database schema (safe to run twice); with --init, create it.

    A database that was never migrated (a new PostgreSQL database, a SQLite file that does
    not exist) needs --init, so a wrong LOYALTY_DATABASE_URL is not silently set up anew.
    """
    applied = _run_migrations(_app(init=init, first_run=True))
    click.echo(f"Applied {len(applied)} migration(s): {', '.join(applied)}" if applied else "Database is up to date.")


@main.command("create-user")
@click.option("--email", required=True, help="Log-in email of the partner's owner.")
@click.option("--business", required=True, help="The partner's business name.")
@click.option("--password-stdin", is_flag=True, required=True, help="Read the password from standard input.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@_init_option
def create_user(email, business, password_stdin, as_json, init):
    """Create a partner account (organisation and owner user)."""
    from portal.domain.accounts import create_partner_account

    password = sys.stdin.readline().rstrip("\r\n")

    def create():
        user = create_partner_account(business, email, password, via="cli")
        return user.email, user.partner.name

    created, partner = _domain_command(create, init=init)
    _emit({"email": created, "business": partner}, as_json, [f"Created {created} for {partner}."])


@main.command("create-operator")
@click.option("--email", required=True, help="Log-in email of the operator.")
@click.option("--password-stdin", is_flag=True, required=True, help="Read the password from standard input.")
@_init_option
def create_operator_command(email, password_stdin, init):
    """Create an operator: someone who runs the platform, not a partner.

    Operators log in at /login and use the Operator area (/admin): the partners, approving
    sign-ups (LOYALTY_SIGNUP=approval), suspending and reactivating partners, each
    partner's audit log. They never see App Secrets or keys.
    """
    from portal.domain.operators import create_operator

    password = sys.stdin.readline().rstrip("\r\n")
    user = _domain_command(lambda: create_operator(email, password), init=init)
    click.echo(f"Created operator {user.email}: log in at /login and open Operator.")


@main.command("list-operators")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of lines.")
def list_operators_command(as_json):
    """List the operators: email, when created, last log-in, two-factor on or off."""
    from portal.domain.operators import all_operators
    from portal.models import isoformat

    found = _domain_command(all_operators, migrate=False)
    rows = [{"email": user.email, "created_at": isoformat(user.created_at),
             "last_login_at": isoformat(user.last_login_at), "two_factor": user.has_two_factor} for user in found]
    lines = [f"{row['email']}  created {row['created_at'][:10]}  last log-in "
             f"{(row['last_login_at'] or 'never')[:10]}  two-factor {'on' if row['two_factor'] else 'off'}"
             for row in rows] or ["No operators yet: loyalty-portal create-operator --email E --password-stdin"]
    _emit({"operators": rows}, as_json, lines)


@main.command("remove-operator")
@click.option("--email", required=True, help="Log-in email of the operator.")
def remove_operator_command(email):
    """Remove an operator: they can no longer log in, and a browser signed in as them is
    signed out on its next request. Partners' users are removed from their Team page."""
    from portal.domain.operators import remove_operator

    user = _domain_command(lambda: remove_operator(email))
    click.echo(f"Removed operator {user.email}: their sessions have ended.")


@main.command()
@click.argument("email")
@_init_option
def invite(email, init):
    """Allow EMAIL to sign up (a new partner) while LOYALTY_SIGNUP=invite.

    Teammates of an existing partner are invited from the portal's Team page instead.
    """
    from portal.domain.accounts import invite_email

    created = _domain_command(lambda: invite_email(email), init=init)
    click.echo(f"Invited {created.email}: they can sign up at /signup.")


@main.command("turn-off-two-factor")
@click.argument("email")
@_init_option
def turn_off_two_factor(email, init):
    """Turn off two-factor authentication for EMAIL (lost phone and recovery codes).

    Check who is asking first: this lets the password alone sign in again. The user's
    sessions end; the audit log records it. Passwords need no command: /forgot-password
    sends a reset link (to the server console when no mail is configured).
    """
    from portal.domain.two_factor import reset_two_factor
    from portal.models import User

    def turn_off():
        user = User.get_or_none(User.email == email.strip().lower())
        if user is None:
            _fail(f"no user with email {email}")
        return user.email, reset_two_factor(user)

    address, changed = _domain_command(turn_off, init=init)
    click.echo(f"Two-factor authentication turned off for {address}." if changed
               else f"Two-factor authentication was already off for {address}.")


@main.command("create-app")
@click.option("--owner", required=True, help="Email of an existing partner user.")
@click.option("--name", required=True, help="Application name.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON: app_id, app_secret.")
@_init_option
def create_app_command(owner, name, as_json, init):
    """Create an application; prints its App ID and App Secret (shown once)."""
    from portal.domain.applications import create_application
    from portal.models import User

    def create():
        user = User.get_or_none(User.email == owner.strip().lower())
        if user is None:
            _fail(f"no user with email {owner}")
        if user.is_operator:
            _fail(f"{user.email} is an operator, not a partner's user")
        application, secret = create_application(user.partner, name, by=user)
        return application.app_id, secret

    created, secret = _domain_command(create, init=init)
    _emit({"app_id": created, "app_secret": secret}, as_json,
          [f"App ID:     {created}", f"App Secret: {secret}", "The App Secret is shown once; store it now."])


@main.command("create-key")
@click.option("--app", "app_id", required=True, help="App ID the key belongs to.")
@click.option("--mode", required=True, type=click.Choice(["test", "prod"]), help="Key mode.")
@click.option("--scope", "scopes", multiple=True, required=True, help="A scope; repeat for more.")
@click.option("--name", default="CLI key", show_default=True, help="Key name.")
@click.option("--expires-in-days", type=click.IntRange(1, 3650), default=None, help="Expire after D days (default never).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON: api_key, mode, scopes.")
@_init_option
def create_key(app_id, mode, scopes, name, expires_in_days, as_json, init):
    """Create an API key; prints it once."""
    from portal.domain.applications import api_key_json, issue_api_key
    from portal.domain.events import with_event
    from portal.models import Application

    def create():
        application = Application.get_or_none(Application.app_id == app_id)
        if application is None:
            _fail(f"no application with App ID {app_id}")
        expires = timedelta(days=expires_in_days) if expires_in_days else None
        (key, plaintext), _ = with_event(
            application, mode, "api_key.created",
            lambda: issue_api_key(application, name=name, mode=mode, scopes=scopes, expires_in=expires),
            lambda issued: api_key_json(issued[0], application.app_id))
        return key, plaintext

    key, plaintext = _domain_command(create, init=init)
    _emit({"api_key": plaintext, "mode": key.mode, "scopes": key.scope_list}, as_json,
          [f"API key: {plaintext}", f"Mode:    {key.mode}", f"Scopes:  {' '.join(key.scope_list)}",
           "The key is shown once; store it now."])


@main.command("rotate-encryption-key")
def rotate_encryption_key():
    """Re-encrypt stored App Secrets, two-factor and webhook signing secrets under the first LOYALTY_ENCRYPTION_KEY.

    Rotation: put the new key first (LOYALTY_ENCRYPTION_KEY=NEW,OLD) on every instance and
    restart, run this once, then drop OLD. Keep OLD in your records as long as backups made
    under it exist: a restored backup needs it (docs/production.md). A database holding no
    secret at all is an error (exit 1): it is most likely not the database you meant.
    """
    from portal.domain.applications import reencrypt_app_secrets
    from portal.domain.two_factor import reencrypt_totp_secrets
    from portal.domain.webhooks import reencrypt_endpoint_secrets
    from portal.selfcheck import secret_counts

    app = _app()
    _run_migrations(app)
    with app.app_context():
        if not any(secret_counts().values()):
            _fail("the database holds no App Secret, two-factor or webhook signing secret, so nothing was "
                  "re-encrypted. If it should, this is the wrong database: check LOYALTY_DATABASE_URL (or --env-file)")
        try:
            count = reencrypt_app_secrets()
            totp_count = reencrypt_totp_secrets()
            webhook_count = reencrypt_endpoint_secrets()
        except ValueError as exc:
            _fail(f"{exc}; nothing was changed (is the old key still in the list?)")
    click.echo(f"Re-encrypted {count} App Secret(s), {totp_count} two-factor secret(s) and "
               f"{webhook_count} webhook endpoint secret(s) under the first encryption key.")


@main.command()
@click.argument("file", type=click.Path(dir_okay=False))
def backup(file):
    """Back up the database and the data dir's keys into FILE (a new tar.gz, 0600).

    Safe while the server runs: on SQLite a consistent online copy. On PostgreSQL the
    database is not included (use pg_dump; the command says how) and FILE holds the keys.
    """
    from portal.backup import BackupError, create_backup
    from portal.config import load_settings

    _announce()
    try:
        settings = load_settings(create=False)  # a backup creates nothing in the data dir
    except ConfigError as exc:
        _fail(str(exc))
    shown = []

    def progress(line: str) -> None:
        shown.append(line)
        click.echo(f"\r{line}", err=True, nl=False)  # one line, rewritten in place

    try:
        report = create_backup(file, data_dir=settings.data_dir, database_url=settings.database_url,
                               progress=progress)
    except BackupError as exc:
        _fail(str(exc))
    finally:
        if shown:
            click.echo("", err=True)
    held = (f"the database ({report.database_bytes / 1e6:.1f} MB) and " if report.engine == "sqlite" else "") + \
        (f"the keys ({', '.join(report.keys)})" if report.keys else "no key files")
    click.echo(f"Backed up {held} into {report.path}.")
    for note in report.notes:
        click.echo(note, err=True)


@main.command()
@click.argument("file", type=click.Path(dir_okay=False))
def restore(file):
    """Restore a backup FILE into an empty (or new) data dir.

    Refuses a data dir that holds anything, and checks the whole archive before writing.
    Then start the server as usual: `serve` upgrades the schema if the backup is older.
    """
    from portal.backup import BackupError, restore_backup

    location = _announce()
    data_dir = location.data_dir
    try:
        manifest, notes = restore_backup(file, data_dir=data_dir, database_url=location.database_url)
    except BackupError as exc:
        _fail(str(exc))
    what = "the database and " if manifest["engine"] == "sqlite" else ""
    click.echo(f"Restored {what}the keys ({', '.join(manifest.get('keys', [])) or 'none'}) from the backup of "
               f"{manifest['created_at']} into {data_dir}.")
    for note in notes:
        click.echo(note, err=True)


@main.command()
@click.option("--json", "as_json", is_flag=True, help="Print JSON: email, password, app_id, app_secret, test_key, prod_key.")
@_init_option
def demo(as_json, init):
    """Create a demo partner with a program, an application and a test and a prod key.

    Like serve, it creates ./instance by itself when nothing is configured and it does not
    exist yet; any other data dir or database that does not exist yet needs --init.
    """
    from portal.domain.demo import create_demo

    app = _app(init=init, first_run=True)
    _run_migrations(app)
    with app.app_context():
        creds = create_demo()
    _emit(creds, as_json, [
        "Demo partner ready. Log in at /login with:",
        f"  Email:      {creds['email']}",
        f"  Password:   {creds['password']}",
        f"App ID:       {creds['app_id']}",
        f"App Secret:   {creds['app_secret']}",
        f"Test key:     {creds['test_key']}",
        f"Prod key:     {creds['prod_key']}",
    ])


@main.command("remind-expiring")
def remind_expiring():
    """Send the reminders for API keys that expire within 7 days (once per key).

    Each such key gets one api_key.expiring event, and the partner's owners and admins an
    email when LOYALTY_SMTP_URL is set. The delivery worker does this every 10 minutes; run
    it from cron where no worker runs. Running it twice, or on several machines at once,
    reminds each key once.
    """
    from portal.domain.guardrails import send_expiry_reminders

    app = _app()
    _run_migrations(app)
    with app.app_context():
        count = send_expiry_reminders()
    click.echo(f"Reminded {count} expiring API key(s).")


@main.command(short_help="Check the database, its schema and the encryption keys.")
def check():
    """Check that the settings point at a reachable database with the current schema and
    that the encryption keys decrypt every stored secret. Exit 0 with a one-line summary,
    1 with each problem on its own line. Creates and changes nothing."""
    from portal import db
    from portal.selfcheck import problems, secret_counts

    app = _app()
    with app.app_context():
        from portal.config import current_settings

        found = problems(current_settings())
        if found:
            for problem in found:
                click.echo(f"Problem: {problem}", err=True)
            _fail(f"{len(found)} problem(s): this deployment is not ready to serve")
        applied, _, _ = db.schema_status()
        counts = secret_counts()
    held = ", ".join(f"{count} {what}(s)" for what, count in counts.items() if count or what == "App Secret")
    click.echo(f"OK: database answers, schema current ({len(applied)} migrations), {held} decrypt.")


if __name__ == "__main__":  # pragma: no cover
    main()
