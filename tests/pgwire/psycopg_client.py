"""Drives Hourglass's PostgreSQL wire protocol with psycopg 3 (libpq underneath), as an analyst's
script would. Every check raises on failure; the last line printed is "psycopg: ok".

usage: psycopg_client.py HOST PORT READ_TOKEN EVENTS OTHER_READ_TOKEN OTHER_EVENTS WRITE_KEY

The tenant of READ_TOKEN has EVENTS events, half pageviews with a screen width of at least 800
and props {"plan": "pro"}, half signups; the other tenant has OTHER_EVENTS.
"""

import datetime
import sys

import psycopg


def connect(host, port, password, **kwargs):
    return psycopg.connect(host=host, port=port, user="analyst", dbname="hourglass", password=password, **kwargs)


def expect_sqlstate(conn, sql, code, params=None):
    try:
        with conn.cursor() as cur:
            cur.execute(sql, params)
            cur.fetchall()
    except psycopg.Error as e:
        assert e.sqlstate == code, f"{sql!r}: expected SQLSTATE {code}, got {e.sqlstate}: {e}"
        conn.rollback()
        return str(e)
    raise AssertionError(f"{sql!r} should have failed with {code}")


def main():
    host, port, token, expected, other_token, other_expected, write_key = sys.argv[1:8]
    expected, other_expected = int(expected), int(other_expected)

    # Default psycopg connections are not autocommit: every statement runs after a BEGIN.
    with connect(host, port, token) as conn:
        with conn.cursor() as cur:
            cur.execute("SELECT count(*) FROM events")
            assert cur.fetchone()[0] == expected
            assert conn.info.transaction_status == psycopg.pq.TransactionStatus.INTRANS

            # Parameters travel through the extended protocol (Parse/Bind with $1...).
            cur.execute("SELECT count(*) FROM events WHERE name = %s AND screen_width >= %s", ("pageview", 800))
            assert cur.fetchone()[0] == expected // 2, "filtered count"
            since = datetime.datetime(2000, 1, 1, tzinfo=datetime.timezone.utc)
            cur.execute("SELECT count(*) FROM events WHERE timestamp > %s", (since,))
            assert cur.fetchone()[0] == expected

            # Typed values come back as Python types.
            cur.execute(
                "SELECT name, timestamp, screen_width, revenue, interactive, props "
                "FROM events WHERE name = 'pageview' ORDER BY event_id LIMIT 1"
            )
            name, ts, width, revenue, interactive, props = cur.fetchone()
            assert name == "pageview"
            assert isinstance(ts, datetime.datetime) and ts.tzinfo is not None, ts
            assert isinstance(width, int) and width >= 800, width
            assert isinstance(revenue, float), revenue
            assert interactive is True
            assert props == {"plan": "pro"}, props
            assert [d.name for d in cur.description] == [
                "name", "timestamp", "screen_width", "revenue", "interactive", "props"
            ]

            # Explicit server-side prepared statement, executed twice.
            for _ in range(2):
                cur.execute("SELECT count(*) FROM events WHERE name = %s", ("signup",), prepare=True)
                assert cur.fetchone()[0] == expected - expected // 2

            # Time-series SQL.
            cur.execute(
                "SELECT date_bin(INTERVAL '1 hour', timestamp) AS bucket, count(*) FROM events GROUP BY 1 ORDER BY 1"
            )
            assert sum(n for _, n in cur.fetchall()) == expected
        conn.commit()

    # Binary results for every column of events and raw_events.
    with connect(host, port, token, autocommit=True) as conn:
        for table in ("events", "raw_events"):
            with conn.cursor(binary=True) as cur:
                cur.execute(f"SELECT * FROM {table} ORDER BY event_id")
                rows = cur.fetchall()
                assert len(rows) == expected, (table, len(rows))
                columns = [d.name for d in cur.description]
                props = rows[0][columns.index("props")]
                assert props in ({"plan": "pro"}, None), props
        with conn.cursor(binary=True) as cur:
            cur.execute(
                "SELECT 1::smallint, 2::int, 3::bigint, 1.5::real, 2.5::double, true, 'x', "
                "DATE '2026-01-02', TIMESTAMP '2026-01-02 03:04:05', CAST(12.34 AS DECIMAL(10,2)), "
                "make_array(1, 2, 3), make_array('a', NULL)"
            )
            row = cur.fetchone()
            assert row[:7] == (1, 2, 3, 1.5, 2.5, True, "x"), row
            assert row[7] == datetime.date(2026, 1, 2), row[7]
            assert row[8] == datetime.datetime(2026, 1, 2, 3, 4, 5), row[8]
            assert str(row[9]) == "12.34", row[9]
            assert row[10] == [1, 2, 3] and row[11] == ["a", None], row[10:]

        # A large result streams through.
        with conn.cursor() as cur:
            cur.execute("SELECT value FROM generate_series(1, 200000) AS t(value)")
            assert len(cur.fetchall()) == 200000

        # Errors carry SQLSTATE codes.
        expect_sqlstate(conn, "SELECT * FROM no_such_table", "42P01")
        expect_sqlstate(conn, "SELECT no_such_column FROM events", "42703")
        expect_sqlstate(conn, "SELEC 1", "42601")
        expect_sqlstate(conn, "DROP TABLE events", "25006")
        expect_sqlstate(conn, "INSERT INTO events (name) VALUES ('x')", "25006")
        expect_sqlstate(conn, "SELECT * FROM system.nodes", "42P01")
        expect_sqlstate(conn, "SELECT * FROM events WHERE screen_width = %s", "22P02", ("wide",))
        expect_sqlstate(conn, "SHOW no_such_setting", "42704")

        # Catalog browsing sees this tenant's tables only.
        with conn.cursor() as cur:
            cur.execute(
                "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public' ORDER BY 1"
            )
            assert [r[0] for r in cur.fetchall()] == ["events", "raw_events", "rollups", "sessions"]
            # Column types by PostgreSQL's names, as Grafana's and Metabase's pickers read them.
            cur.execute(
                "SELECT column_name, data_type, is_nullable FROM information_schema.columns "
                "WHERE table_name = %s AND column_name IN ('timestamp', 'screen_width', 'props') ORDER BY 1",
                ("events",),
            )
            assert cur.fetchall() == [
                ("props", "json", "YES"),
                ("screen_width", "integer", "YES"),
                ("timestamp", "timestamp with time zone", "NO"),
            ]
            cur.execute("SELECT current_setting('search_path'), current_setting('server_version')")
            assert cur.fetchone() == ('"$user", public', "15.0")
            cur.execute(
                "SELECT c.relname, a.attname, format_type(a.atttypid, a.atttypmod) FROM pg_catalog.pg_class c "
                "JOIN pg_catalog.pg_attribute a ON a.attrelid = c.oid WHERE c.relname = 'events' "
                "AND a.attname = 'timestamp'"
            )
            assert cur.fetchall() == [("events", "timestamp", "timestamp with time zone")]

    # Another tenant's token sees its own rows only.
    with connect(host, port, other_token, autocommit=True) as conn:
        with conn.cursor() as cur:
            cur.execute("SELECT count(*) FROM events")
            assert cur.fetchone()[0] == other_expected

    # Refused credentials.
    for password, message in (("not-a-token", "password authentication failed"), (write_key, "write key cannot read")):
        try:
            connect(host, port, password).close()
        except psycopg.OperationalError as e:
            assert message in str(e).lower(), f"{message}: {e}"
        else:
            raise AssertionError(f"connecting with {password[:6]}... should fail")

    print("psycopg: ok")


if __name__ == "__main__":
    main()
