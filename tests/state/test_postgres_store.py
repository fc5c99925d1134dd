"""What only the PostgreSQL store has: several runs in one database, the schema's version
check and migration, the password's path (libpq's environment or a file, never the URL,
never stored, never shown), read-only opens, a lost connection; and open_store's choice."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from bench.cluster import free_port
from purger.errors import InputError, LockedError, UnavailableError, UsageError
from purger.model import TargetKind
from purger.state.pgconnect import redact
from purger.state.pgschema import SCHEMA_VERSION
from purger.state.postgres import PostgresStore
from purger.state.sqlite import Failure, ShardProgress, StateStore
from purger.state.stores import open_store
from tests.pg import PgCluster
from tests.state.test_store_contract import make_record


def open_pg(postgres: PgCluster, url: str, run: str = "default") -> PostgresStore:
    return PostgresStore.open(url, run=run, password_file=postgres.password_file)


def purger_schema_exists(postgres: PgCluster, url: str) -> bool:
    with postgres.connect(url.rsplit("/", 1)[1]) as admin:
        row = admin.execute("SELECT count(*) FROM pg_namespace WHERE nspname = 'purger'")
        found = row.fetchone()
    return found is not None and found[0] == 1


def test_several_runs_live_in_one_database_by_name_or_id(postgres, pg_url):
    """Two runs, each under its name, with progress of its own; a run id opens its run."""
    with open_pg(postgres, pg_url, "nightly") as nightly, open_pg(postgres, pg_url, "b") as other:
        nightly.start_run(make_record())
        other.start_run(make_record(fingerprint="ab" * 32))
        nightly.commit([ShardProgress(shard_id=1, cursor="h", targets_done=4)])
        other.commit([], [Failure(target="k/x", kind=TargetKind.KEY, shard_id=0, reason="400")])
        run_id = nightly.run_id()
        assert run_id is not None
        assert run_id != other.run_id()
    with open_pg(postgres, pg_url, run_id) as by_id:
        assert by_id.name == "nightly"
        assert by_id.progress()[1] == ShardProgress(shard_id=1, cursor="h", targets_done=4)
        assert by_id.failures() == []
    with open_pg(postgres, pg_url, "b") as by_name:
        assert by_name.load_run() is not None
        assert by_name.load_run().fingerprint == "ab" * 32  # type: ignore[union-attr]
        assert by_name.progress()[1] == ShardProgress(shard_id=1)
        assert by_name.summary().failures == 1


def test_the_lock_is_per_run(postgres, pg_url):
    """One run locked does not lock another in the same database."""
    with open_pg(postgres, pg_url, "a"):
        with pytest.raises(LockedError, match=r"\(run a\) is in use"):
            open_pg(postgres, pg_url, "a")
        with open_pg(postgres, pg_url, "b") as other:
            other.start_run(make_record())


@pytest.mark.parametrize("name", ["", "-x", "a b", "x" * 101, "ü", "a/b"])
def test_a_bad_run_name_is_usage_error(postgres, pg_url, name):
    with pytest.raises(UsageError, match="run name"):
        open_pg(postgres, pg_url, name)


def test_runners_starting_together_create_the_schema_once(postgres, pg_url):
    """Six stores opening six runs at once on an empty database all succeed."""
    errors: list[BaseException] = []
    stores: list[PostgresStore] = []

    def open_one(i: int) -> None:
        try:
            stores.append(open_pg(postgres, pg_url, f"r{i}"))
        except BaseException as err:  # pragma: no cover - reported below
            errors.append(err)

    threads = [threading.Thread(target=open_one, args=(i,)) for i in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for store in stores:
        store.close()
    assert errors == []
    assert len(stores) == 6


def test_a_newer_schema_is_refused_in_one_line_and_untouched(postgres, pg_url):
    """A database migrated by a newer purger is refused by open and open_readonly alike."""
    open_pg(postgres, pg_url).close()
    database = pg_url.rsplit("/", 1)[1]
    with postgres.connect(database) as admin:
        tables = admin.execute("SELECT count(*) FROM pg_tables WHERE schemaname = 'purger'")
        before = tables.fetchone()
        admin.execute(
            "UPDATE purger.meta SET value = %s WHERE key = 'schema_version'",
            (str(SCHEMA_VERSION + 1),),
        )
    for opener in (PostgresStore.open, PostgresStore.open_readonly):
        with pytest.raises(InputError) as caught:
            opener(pg_url, password_file=postgres.password_file)
        assert str(caught.value) == (
            f"{pg_url}: state schema version {SCHEMA_VERSION + 1};"
            f" this purger reads version {SCHEMA_VERSION} (upgrade purger)"
        )
    with postgres.connect(database) as admin:
        version = admin.execute("SELECT value FROM purger.meta").fetchall()
        assert version == [(str(SCHEMA_VERSION + 1),)]
        tables = admin.execute("SELECT count(*) FROM pg_tables WHERE schemaname = 'purger'")
        assert tables.fetchone() == before


def test_a_foreign_purger_schema_is_refused_and_untouched(postgres, pg_url):
    """A schema named purger that another application made is not taken over."""
    database = pg_url.rsplit("/", 1)[1]
    with postgres.connect(database) as admin:
        admin.execute("CREATE SCHEMA purger")
        admin.execute("CREATE TABLE purger.users (name text)")
    with pytest.raises(InputError, match=r"not a purger state \(schema purger holds other"):
        open_pg(postgres, pg_url)
    with postgres.connect(database) as admin:
        tables = admin.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'purger'")
        assert tables.fetchall() == [("users",)]


def test_the_password_comes_from_pgpassword(postgres, pg_url, monkeypatch):
    monkeypatch.setenv("PGPASSWORD", postgres.password)
    with PostgresStore.open(pg_url) as store:
        store.start_run(make_record())


def test_the_password_comes_from_a_libpq_passfile(postgres, pg_url, monkeypatch, tmp_path):
    passfile = tmp_path / "pgpass"
    passfile.write_text(f"127.0.0.1:{postgres.port}:*:purger:{postgres.password}\n")
    passfile.chmod(0o600)
    monkeypatch.delenv("PGPASSWORD", raising=False)
    monkeypatch.setenv("PGPASSFILE", str(passfile))
    with PostgresStore.open(pg_url) as store:
        assert store.load_run() is None


@pytest.mark.parametrize("content", ["", "\n"])
def test_an_empty_password_file_is_input_error(pg_url, tmp_path, content):
    empty = tmp_path / "password"
    empty.write_text(content)
    with pytest.raises(InputError, match=rf"^{empty}: the password file is empty$"):
        PostgresStore.open(pg_url, password_file=empty)


def test_a_refused_password_is_one_line_without_it(postgres, pg_url, monkeypatch, tmp_path):
    """A wrong password: UnavailableError, one line naming the URL, no password in it."""
    wrong = tmp_path / "password"
    wrong.write_text("not-the-password-4f2a\n")
    monkeypatch.setenv("PGPASSWORD", "env-password-9c1e")
    with pytest.raises(UnavailableError) as caught:
        PostgresStore.open(pg_url, password_file=wrong)
    message = str(caught.value)
    assert message.startswith(f"cannot connect to state {pg_url}: ")
    assert "password authentication failed" in message
    assert "\n" not in message
    assert "not-the-password" not in message
    assert "env-password" not in message


def test_a_password_in_the_url_is_refused_redacted_before_connecting(postgres, pg_url):
    """user:PASSWORD@ or ?password= in the URL: refused, shown as ***, nothing created."""
    secret = postgres.password
    for url in (
        pg_url.replace("purger@", f"purger:{secret}@"),
        f"{pg_url}?password={secret}&sslmode=disable",
    ):
        with pytest.raises(UsageError) as caught:
            PostgresStore.open(url)
        message = str(caught.value)
        assert secret not in message
        assert "***" in message
        assert "the password goes in PGPASSWORD" in message
    assert not purger_schema_exists(postgres, pg_url)


def test_the_password_is_stored_nowhere(postgres, pg_url):
    """After a run with a password file, no row of the purger schema holds the password,
    nor does the session's application name."""
    with open_pg(postgres, pg_url) as store:
        store.start_run(make_record())
        store.commit([ShardProgress(shard_id=0, cursor="c")], status={"rate": "1"})
        with postgres.connect(pg_url.rsplit("/", 1)[1]) as admin:
            names = admin.execute("SELECT application_name FROM pg_stat_activity").fetchall()
            tables = admin.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'purger'")
            dump = [
                str(admin.execute(f"SELECT json_agg(t) FROM purger.{name} t").fetchone())  # noqa: S608
                for (name,) in tables.fetchall()
            ]
    assert any("purger pid" in str(name) for (name,) in names)
    assert postgres.password not in str(names)
    assert any("project/{name}" in text for text in dump)  # the record did reach the tables
    assert not any(postgres.password in text for text in dump)


def test_no_server_is_unavailable_in_one_line(tmp_path):
    password = tmp_path / "password"
    password.write_text("x\n")
    url = f"postgresql://purger@127.0.0.1:{free_port()}/db"
    with pytest.raises(UnavailableError) as caught:
        PostgresStore.open(url, password_file=password)
    assert str(caught.value).startswith(f"cannot connect to state {url}: ")
    assert "\n" not in str(caught.value)


def test_a_lost_connection_fails_the_commit_in_one_line(postgres, pg_url):
    """The server ends the session mid-run: the next commit raises UnavailableError naming
    the URL (the run stops, resumable), and what was committed before is kept."""
    with open_pg(postgres, pg_url) as store:
        store.start_run(make_record())
        store.commit([ShardProgress(shard_id=0, cursor="a", targets_done=1)])
        with postgres.connect() as admin:
            admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                " WHERE application_name LIKE 'purger pid %'"
            )
        with pytest.raises(UnavailableError) as caught:
            store.commit([ShardProgress(shard_id=0, cursor="b", targets_done=2)])
        assert str(caught.value).startswith(f"cannot write state {pg_url} (run default): ")
        assert "\n" not in str(caught.value)
    with open_pg(postgres, pg_url) as again:
        assert again.progress()[0] == ShardProgress(shard_id=0, cursor="a", targets_done=1)


def test_a_read_only_store_reads_a_held_run_and_writes_nothing(postgres, pg_url):
    """open_readonly takes no lock (``purger status`` beside a run) and cannot write."""
    with open_pg(postgres, pg_url) as writer:
        writer.start_run(make_record())
        writer.commit([ShardProgress(shard_id=2, cursor="q", targets_done=3)])
        with PostgresStore.open_readonly(pg_url, password_file=postgres.password_file) as reader:
            assert reader.progress()[2] == ShardProgress(shard_id=2, cursor="q", targets_done=3)
            assert reader.run_id() == writer.run_id()
            with pytest.raises(UnavailableError, match="read-only transaction"):
                reader.commit([ShardProgress(shard_id=2, cursor="z")])
        writer.commit([ShardProgress(shard_id=1, cursor="k")])  # the writer goes on


def test_a_read_only_open_of_an_empty_database_creates_nothing(postgres, pg_url):
    with pytest.raises(InputError, match="no purger state in this database"):
        PostgresStore.open_readonly(pg_url, password_file=postgres.password_file)
    assert not purger_schema_exists(postgres, pg_url)


def test_reads_and_commits_from_several_threads_at_once(postgres, pg_url):
    """Each operation is its own transaction even when threads share the store."""
    errors: list[BaseException] = []
    with open_pg(postgres, pg_url) as store:
        store.start_run(make_record())

        def work(shard: int) -> None:
            try:
                for i in range(20):
                    store.commit([ShardProgress(shard_id=shard, cursor=f"c{i:02d}")])
                    store.progress()
                    store.summary()
            except BaseException as err:  # pragma: no cover - reported below
                errors.append(err)

        threads = [threading.Thread(target=work, args=(shard,)) for shard in range(3)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert errors == []
        assert {p.cursor for p in store.progress().values()} == {"c19"}


def test_open_store_picks_the_backend_from_the_spec(postgres, pg_url, tmp_path):
    with open_store(pg_url, run="x", password_file=postgres.password_file) as store:
        assert isinstance(store, PostgresStore)
        assert store.name == "x"
    with open_store(str(tmp_path / "s.sqlite")) as store:
        assert isinstance(store, StateStore)
    with open_store(tmp_path / "p.sqlite") as store:
        assert isinstance(store, StateStore)
    with open_store(pg_url, readonly=True, password_file=postgres.password_file) as store:
        assert isinstance(store, PostgresStore)


@pytest.mark.parametrize(
    ("options", "message"),
    [({"run": "x"}, "a run name or id needs"), ({"password_file": Path("p")}, "password file")],
)
def test_open_store_refuses_database_options_for_a_file(tmp_path, options, message):
    path = tmp_path / "s.sqlite"
    with pytest.raises(UsageError, match=message):
        open_store(path, **options)  # type: ignore[arg-type]
    assert not path.exists()


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("postgresql://u:pw@h:5432/db", "postgresql://u:***@h:5432/db"),
        ("postgresql://u@h/db?password=pw&sslmode=require", "postgresql://u@h/db?password=***&sslmode=require"),
        ("postgres://u:p%40w@h/db", "postgres://u:***@h/db"),
        ("postgresql://u:pw@h:notaport/db?password=pw", "postgresql://u:***@h:notaport/db?password=***"),
        ("postgresql://u:pw@[::1/db?password=pw", "postgresql://u:***@[::1/db"),
        ("postgresql://u@h/db", "postgresql://u@h/db"),
    ],
)  # fmt: skip
def test_redact_masks_every_password(url, shown):
    assert redact(url) == shown


def test_a_url_libpq_cannot_parse_is_usage_error():
    with pytest.raises(UsageError, match=r"^state URL postgresql://u@h/db\?bogus=1: "):
        PostgresStore.open("postgresql://u@h/db?bogus=1")


def test_server_side_errors_are_psycopg_free(postgres, pg_url):
    """No psycopg exception escapes the store: a write refused by the server (a dropped
    table) is UnavailableError."""
    with open_pg(postgres, pg_url) as store:
        store.start_run(make_record())
        with postgres.connect(pg_url.rsplit("/", 1)[1]) as admin:
            admin.execute("DROP TABLE purger.failure")
        failure = Failure(target="k", kind=TargetKind.KEY, shard_id=0, reason="r")
        with pytest.raises(UnavailableError, match="does not exist"):
            store.commit([ShardProgress(shard_id=0, cursor="z")], [failure])
        assert store.progress()[0] == ShardProgress(shard_id=0)
