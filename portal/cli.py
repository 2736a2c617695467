"""`loyalty-portal`: serve, migrate, and create partners, applications and keys."""

from __future__ import annotations

import json
import sys
from datetime import timedelta

import click

from portal.config import ConfigError


def _app():
    """The app for a command, or a one-line error and exit status 2."""
    from portal import create_app

    try:
        return create_app()
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None


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
            hint = f" (see {exc.ctx.command_path} --help)" if exc.ctx is not None else ""
            click.echo(f"Error: {exc.format_message()}{hint}", err=True)
            sys.exit(exc.exit_code)
        except click.ClickException as exc:
            exc.show()
            sys.exit(exc.exit_code)
        except click.Abort:
            click.echo("Aborted.", err=True)
            sys.exit(1)
        sys.exit(result if isinstance(result, int) else 0)


@click.group(cls=_OneLineErrors, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="loyalty-portal")
def main():
    """The Loyalty Partner Platform: partner portal and signed loyalty API.

    Configuration comes from LOYALTY_* environment variables (and a .env file in the
    working folder); nothing is required for a first run.
    """


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=8000, show_default=True, type=click.IntRange(1, 65535), help="Port to listen on.")
@click.option("--workers", default=2, show_default=True, type=click.IntRange(1, 64), help="Worker processes.")
@click.option("--threads", default=4, show_default=True, type=click.IntRange(1, 64), help="Threads per worker.")
def serve(host, port, workers, threads):
    """Run the portal and API under gunicorn (a production WSGI server).

    Creates or upgrades the database first, so a fresh machine needs nothing else.
    The workers' counts for GET /metrics live in <data dir>/metrics, emptied at start.
    """
    from gunicorn.app.base import BaseApplication

    from portal import db, metrics
    from portal.config import load_settings

    try:
        # Before the app loads prometheus_client: every worker counts into this folder.
        metrics.prepare_multiprocess_dir(load_settings().data_dir)
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None
    except OSError as exc:
        _fail(f"cannot prepare the metrics folder in the data dir: {exc.strerror or exc}")
    app = _app()
    applied = _run_migrations(app)
    if applied:
        click.echo(f"Database migrated: {', '.join(applied)}")
    db.database.close()  # each worker opens its own connections after the fork
    _check_port_free(host, port)
    click.echo(f"Loyalty portal on http://{host}:{port}  (workers: {workers}, Ctrl+C stops)")

    class Server(BaseApplication):
        def load_config(self):
            self.cfg.set("bind", f"{host}:{port}")
            self.cfg.set("workers", workers)
            self.cfg.set("threads", threads)
            self.cfg.set("worker_class", "gthread" if threads > 1 else "sync")
            self.cfg.set("accesslog", None)  # the app logs each API request itself
            self.cfg.set("timeout", 60)
            # gunicorn's control socket is one file per user: a second server on the host
            # would take it over and delete it on exit. Nothing here uses it.
            self.cfg.set("control_socket_disable", True)
            self.cfg.set("graceful_timeout", 10)
            # A dead worker's files in the metrics folder stop counting as live.
            self.cfg.set("child_exit", lambda server, worker: metrics.mark_process_dead(worker.pid))

        def load(self):
            return app

    Server().run()


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


def _one_line(exc: Exception) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else exc.__class__.__name__


@main.command()
def migrate():
    """Create or upgrade the database schema (safe to run twice)."""
    applied = _run_migrations(_app())
    click.echo(f"Applied {len(applied)} migration(s): {', '.join(applied)}" if applied else "Database is up to date.")


@main.command("create-user")
@click.option("--email", required=True, help="Log-in email of the partner's owner.")
@click.option("--business", required=True, help="The partner's business name.")
@click.option("--password-stdin", is_flag=True, required=True, help="Read the password from standard input.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def create_user(email, business, password_stdin, as_json):
    """Create a partner account (organisation and owner user)."""
    from portal.domain import DomainError
    from portal.domain.accounts import create_partner_account

    password = sys.stdin.readline().rstrip("\r\n")
    app = _app()
    _run_migrations(app)
    with app.app_context():
        try:
            user = create_partner_account(business, email, password, via="cli")
        except DomainError as exc:
            _fail(exc.message)
        _emit({"email": user.email, "business": user.partner.name}, as_json,
              [f"Created {user.email} for {user.partner.name}."])


@main.command("create-operator")
@click.option("--email", required=True, help="Log-in email of the operator.")
@click.option("--password-stdin", is_flag=True, required=True, help="Read the password from standard input.")
def create_operator_command(email, password_stdin):
    """Create an operator: someone who runs the platform, not a partner.

    Operators log in at /login and use the Operator area (/admin): the partners, approving
    sign-ups (LOYALTY_SIGNUP=approval), suspending and reactivating partners, each
    partner's audit log. They never see App Secrets or keys.
    """
    from portal.domain import DomainError
    from portal.domain.operators import create_operator

    password = sys.stdin.readline().rstrip("\r\n")
    app = _app()
    _run_migrations(app)
    with app.app_context():
        try:
            user = create_operator(email, password)
        except DomainError as exc:
            _fail(exc.message)
    click.echo(f"Created operator {user.email}: log in at /login and open Operator.")


@main.command()
@click.argument("email")
def invite(email):
    """Allow EMAIL to sign up (a new partner) while LOYALTY_SIGNUP=invite.

    Teammates of an existing partner are invited from the portal's Team page instead.
    """
    from portal.domain import DomainError
    from portal.domain.accounts import invite_email

    app = _app()
    _run_migrations(app)
    with app.app_context():
        try:
            created = invite_email(email)
        except DomainError as exc:
            _fail(exc.message)
    click.echo(f"Invited {created.email}: they can sign up at /signup.")


@main.command("turn-off-two-factor")
@click.argument("email")
def turn_off_two_factor(email):
    """Turn off two-factor authentication for EMAIL (lost phone and recovery codes).

    Check who is asking first: this lets the password alone sign in again. The user's
    sessions end; the audit log records it. Passwords need no command: /forgot-password
    sends a reset link (to the server console when no mail is configured).
    """
    from portal.domain.two_factor import reset_two_factor
    from portal.models import User

    app = _app()
    _run_migrations(app)
    with app.app_context():
        user = User.get_or_none(User.email == email.strip().lower())
        if user is None:
            _fail(f"no user with email {email}")
        changed = reset_two_factor(user)
    click.echo(f"Two-factor authentication turned off for {user.email}." if changed
               else f"Two-factor authentication was already off for {user.email}.")


@main.command("create-app")
@click.option("--owner", required=True, help="Email of an existing partner user.")
@click.option("--name", required=True, help="Application name.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON: app_id, app_secret.")
def create_app_command(owner, name, as_json):
    """Create an application; prints its App ID and App Secret (shown once)."""
    from portal.domain import DomainError
    from portal.domain.applications import create_application
    from portal.models import User

    app = _app()
    _run_migrations(app)
    with app.app_context():
        user = User.get_or_none(User.email == owner.strip().lower())
        if user is None:
            _fail(f"no user with email {owner}")
        if user.is_operator:
            _fail(f"{user.email} is an operator, not a partner's user")
        try:
            application, secret = create_application(user.partner, name, by=user)
        except DomainError as exc:
            _fail(exc.message)
        _emit({"app_id": application.app_id, "app_secret": secret}, as_json,
              [f"App ID:     {application.app_id}", f"App Secret: {secret}",
               "The App Secret is shown once; store it now."])


@main.command("create-key")
@click.option("--app", "app_id", required=True, help="App ID the key belongs to.")
@click.option("--mode", required=True, type=click.Choice(["test", "prod"]), help="Key mode.")
@click.option("--scope", "scopes", multiple=True, required=True, help="A scope; repeat for more.")
@click.option("--name", default="CLI key", show_default=True, help="Key name.")
@click.option("--expires-in-days", type=click.IntRange(1, 3650), default=None, help="Expire after D days (default never).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON: api_key, mode, scopes.")
def create_key(app_id, mode, scopes, name, expires_in_days, as_json):
    """Create an API key; prints it once."""
    from portal.domain import DomainError
    from portal.domain.applications import issue_api_key
    from portal.models import Application

    app = _app()
    _run_migrations(app)
    with app.app_context():
        application = Application.get_or_none(Application.app_id == app_id)
        if application is None:
            _fail(f"no application with App ID {app_id}")
        expires = timedelta(days=expires_in_days) if expires_in_days else None
        try:
            key, plaintext = issue_api_key(application, name=name, mode=mode, scopes=scopes, expires_in=expires)
        except DomainError as exc:
            _fail(exc.message)
        _emit({"api_key": plaintext, "mode": key.mode, "scopes": key.scope_list}, as_json,
              [f"API key: {plaintext}", f"Mode:    {key.mode}", f"Scopes:  {' '.join(key.scope_list)}",
               "The key is shown once; store it now."])


@main.command("rotate-encryption-key")
def rotate_encryption_key():
    """Re-encrypt stored App Secrets and two-factor secrets under the first LOYALTY_ENCRYPTION_KEY.

    Rotation: put the new key first (LOYALTY_ENCRYPTION_KEY=NEW,OLD) on every instance and
    restart, run this once, then drop OLD.
    """
    from portal.domain.applications import reencrypt_app_secrets
    from portal.domain.two_factor import reencrypt_totp_secrets

    app = _app()
    _run_migrations(app)
    with app.app_context():
        try:
            count = reencrypt_app_secrets()
            totp_count = reencrypt_totp_secrets()
        except ValueError as exc:
            _fail(f"{exc}; nothing was changed (is the old key still in the list?)")
    click.echo(f"Re-encrypted {count} App Secret(s) and {totp_count} two-factor secret(s) "
               "under the first encryption key.")


@main.command()
@click.argument("file", type=click.Path(dir_okay=False))
def backup(file):
    """Back up the database and the data dir's keys into FILE (a new tar.gz, 0600).

    Safe while the server runs: on SQLite a consistent online copy. On PostgreSQL the
    database is not included (use pg_dump; the command says how) and FILE holds the keys.
    """
    from portal.backup import BackupError, create_backup
    from portal.config import load_settings

    try:
        settings = load_settings()
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
    from portal.config import where_data_lives

    data_dir, database_url = where_data_lives()
    try:
        manifest, notes = restore_backup(file, data_dir=data_dir, database_url=database_url)
    except BackupError as exc:
        _fail(str(exc))
    what = "the database and " if manifest["engine"] == "sqlite" else ""
    click.echo(f"Restored {what}the keys ({', '.join(manifest.get('keys', [])) or 'none'}) from the backup of "
               f"{manifest['created_at']} into {data_dir}.")
    for note in notes:
        click.echo(note, err=True)


@main.command()
@click.option("--json", "as_json", is_flag=True, help="Print JSON: email, password, app_id, app_secret, test_key, prod_key.")
def demo(as_json):
    """Create a demo partner with a program, an application and a test and a prod key."""
    from portal.domain.demo import create_demo

    app = _app()
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


if __name__ == "__main__":  # pragma: no cover
    main()
