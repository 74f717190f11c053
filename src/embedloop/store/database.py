"""Opening a database: engine, connection settings, migrations on open."""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import Engine, create_engine, event, inspect, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, OperationalError, SQLAlchemyError

from embedloop.errors import StorageError

if TYPE_CHECKING:
    from alembic.config import Config

logger = logging.getLogger(__name__)

MIGRATIONS = Path(__file__).parent / "migrations"
#: An arbitrary constant key for PostgreSQL advisory locks taken while migrating.
_PG_MIGRATION_LOCK = 0x656D6231


def open_engine(url: str) -> Engine:
    """Create an engine for ``url`` and bring its schema to the newest migration."""
    try:
        parsed = make_url(url)
    except ArgumentError as exc:
        raise StorageError(
            f"ADAPTIVE_LEARNING_DB={url!r} is not a database URL or file path: {exc}. "
            "Give a file path (SQLite) or a URL such as postgresql+psycopg://user@host/db."
        ) from None
    is_sqlite = parsed.get_backend_name() == "sqlite"
    if is_sqlite and parsed.database and parsed.database != ":memory:":
        folder = Path(parsed.database).parent
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StorageError(
                f"Cannot create the database folder {str(folder)!r}: {exc.strerror}. "
                "Point LEARNING_STORAGE_PATH or ADAPTIVE_LEARNING_DB at a writable place."
            ) from None
    try:
        if is_sqlite:
            engine = create_engine(url, connect_args={"timeout": 60, "check_same_thread": False})
            _configure_sqlite(engine)
        else:
            engine = create_engine(url, pool_pre_ping=True)
        migrate(engine)
    except ModuleNotFoundError as exc:
        raise StorageError(
            f"The database driver for {parsed.drivername!r} is not installed ({exc.name}). "
            "For PostgreSQL: pip install 'embedloop[postgres]'."
        ) from None
    except OperationalError as exc:
        raise StorageError(f"Cannot open the database {parsed.render_as_string()}: {exc.orig}") from None
    except SQLAlchemyError as exc:
        raise StorageError(f"Cannot prepare the database {parsed.render_as_string()}: {exc}") from None
    return engine


#: Execution option for a connection that only reads (SQLite: a deferred ``BEGIN``, no write lock).
READ_ONLY = "embedloop_read_only"


def _configure_sqlite(engine: Engine) -> None:
    """WAL, a generous busy timeout, and write transactions that lock up front.

    ``BEGIN IMMEDIATE`` takes the write lock at the start of every transaction,
    so concurrent writers queue on the busy timeout instead of failing with
    "database is locked" when a read lock cannot be upgraded.
    """

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.isolation_level = None  # we issue BEGIN ourselves
        cursor = dbapi_conn.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA busy_timeout=60000")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        # Long read-only reports (store/stats.py) ask for a plain BEGIN: they must not queue writers.
        conn.exec_driver_sql("BEGIN" if conn.get_execution_options().get(READ_ONLY) else "BEGIN IMMEDIATE")


def alembic_config() -> Config:
    """An Alembic config pointing at the packaged migrations."""
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    return cfg


def head_revision() -> str:
    """The newest migration's revision id."""
    from alembic.script import ScriptDirectory

    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert head is not None
    return head


_REVISION_LINE = re.compile(r"^(down_revision|revision)\s*(?::[^=]*)?=\s*(None|['\"]([^'\"]+)['\"])\s*$", re.M)


def _packaged_head() -> str | None:
    """The head revision read from the migration files without Alembic (``None`` if unclear)."""
    revisions: set[str] = set()
    parents: set[str] = set()
    for path in (MIGRATIONS / "versions").glob("*.py"):
        found = {m.group(1): m.group(3) for m in _REVISION_LINE.finditer(path.read_text(encoding="utf-8"))}
        if not found.get("revision"):
            return None
        revisions.add(found["revision"])
        if found.get("down_revision"):
            parents.add(found["down_revision"])
    heads = revisions - parents
    return heads.pop() if len(heads) == 1 else None


def _stored_revision(engine: Engine) -> str | None:
    with engine.connect() as conn:
        if not inspect(conn).has_table("alembic_version"):
            return None
        rows = list(conn.execute(text("SELECT version_num FROM alembic_version")))
    return str(rows[0][0]) if len(rows) == 1 else None


def migrate(engine: Engine) -> None:
    """Apply pending migrations, one process at a time.

    A database already at the packaged head is recognised without importing
    Alembic (it costs most of a CLI command's start-up); anything else goes
    through Alembic.
    """
    head = _packaged_head()
    if head is not None and _stored_revision(engine) == head:
        return
    from alembic import command
    from alembic.runtime.migration import MigrationContext

    head = head_revision()
    with engine.connect() as conn:
        if MigrationContext.configure(conn).get_current_revision() == head:
            return
    cfg = alembic_config()
    with engine.begin() as conn:  # SQLite: BEGIN IMMEDIATE serialises migrators
        if engine.dialect.name == "postgresql":
            conn.exec_driver_sql(f"SELECT pg_advisory_xact_lock({_PG_MIGRATION_LOCK})")
        cfg.attributes["connection"] = conn
        logger.info("Migrating the feedback store to revision %s", head)
        command.upgrade(cfg, "head")
