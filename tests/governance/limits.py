"""Triggers every query limit of a running Hourglass through all three SQL interfaces: HTTP
(urllib), Arrow Flight SQL (the ADBC driver) and the PostgreSQL wire (psycopg 3), and checks
that each limit answers with its own error: status, gRPC code or SQLSTATE, and message.

The server must run with:
  --query-timeout 10s --query-memory-per-query 16MiB --query-max-result-rows 1000
  --max-concurrent-queries-per-tenant 1 --max-queued-queries-per-tenant 1

usage: limits.py HTTP_URL GRPC_URI PG_ADDR ADMIN_TOKEN READ_TOKEN_A READ_TOKEN_B READ_TOKEN_C
Exits non-zero, with the reason, on the first failed expectation; prints "all checks passed".
"""

import json
import sys
import threading
import time
import urllib.error
import urllib.request
import warnings

import adbc_driver_flightsql.dbapi as flightsql
import adbc_driver_manager
import psycopg

# The ADBC DB-API wrapper warns that Flight SQL has no transactions; that is expected.
warnings.filterwarnings("ignore", message="Cannot disable autocommit")

# Queries that trip one limit each under the flags above.
TOO_MANY_ROWS = "SELECT value FROM range(5000)"
# A hash join's build side cannot spill.
TOO_MUCH_MEMORY = "SELECT count(*) FROM range(3000000) a JOIN range(3000000) b ON a.value = b.value"
# A sort larger than the memory limit spills and succeeds.
SPILLING_SORT = "SELECT sum(r) AS s FROM (SELECT value, row_number() OVER (ORDER BY value DESC) AS r FROM range(2000000))"
SPILLING_SORT_ANSWER = 2000001000000
# Streams for hours with no memory: stopped by the timeout or a cancel.
RUNS_FOREVER = "SELECT count(*) AS n FROM range(1000000000000)"


def expect(condition, message):
    if not condition:
        print(f"FAILED: {message}", file=sys.stderr)
        sys.exit(1)


class Server:
    def __init__(self, http_url, grpc_uri, pg_addr, admin_token):
        self.http_url, self.grpc_uri, self.admin_token = http_url, grpc_uri, admin_token
        self.pg_host, self.pg_port = pg_addr.rsplit(":", 1)

    def http(self, token, sql):
        """(status, body) of POST /api/v1/query."""
        request = urllib.request.Request(
            f"{self.http_url}/api/v1/query",
            data=json.dumps({"sql": sql}).encode(),
            headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
        )
        try:
            with urllib.request.urlopen(request, timeout=120) as response:
                return response.status, json.load(response)
        except urllib.error.HTTPError as e:
            return e.code, json.load(e)

    def http_error(self, token, sql, status, code):
        got_status, body = self.http(token, sql)
        expect(got_status == status, f"HTTP {sql!r}: status {got_status} != {status}: {body}")
        expect(body["error"]["code"] == code, f"HTTP {sql!r}: code {body['error']['code']} != {code}")
        return body["error"]["message"]

    def admin(self, method, path):
        request = urllib.request.Request(
            f"{self.http_url}{path}", method=method, headers={"Authorization": f"Bearer {self.admin_token}"}
        )
        with urllib.request.urlopen(request, timeout=30) as response:
            return json.load(response)

    def flight(self, token):
        return flightsql.connect(self.grpc_uri, db_kwargs={"adbc.flight.sql.authorization_header": f"Bearer {token}"})

    def flight_query(self, token, sql):
        with self.flight(token) as conn, conn.cursor() as cur:
            cur.execute(sql)
            return cur.fetchall()

    def flight_error(self, token, sql, grpc_code, text):
        # The driver reports the gRPC status code by name, for example "(ResourceExhausted; DoGet...".
        try:
            rows = self.flight_query(token, sql)
        except adbc_driver_manager.Error as e:
            message = str(e)
            expect(grpc_code in message, f"Flight SQL {sql!r}: {grpc_code} not in {message!r}")
            expect(text in message, f"Flight SQL {sql!r}: {text!r} not in {message!r}")
            return message
        expect(False, f"Flight SQL {sql!r} succeeded with {rows!r}")

    def pg(self, token):
        return psycopg.connect(
            host=self.pg_host, port=self.pg_port, user="analyst", dbname="hourglass", password=token, autocommit=True
        )

    def pg_query(self, token, sql):
        with self.pg(token) as conn:
            return conn.execute(sql).fetchall()

    def pg_error(self, token, sql, sqlstate, text):
        try:
            rows = self.pg_query(token, sql)
        except psycopg.Error as e:
            message = str(e)
            expect(e.sqlstate == sqlstate, f"psycopg {sql!r}: SQLSTATE {e.sqlstate} != {sqlstate}: {message}")
            expect(text in message, f"psycopg {sql!r}: {text!r} not in {message!r}")
            return message
        expect(False, f"psycopg {sql!r} succeeded with {rows!r}")

    def queries(self):
        return self.admin("GET", "/api/v1/admin/queries")["queries"]

    def wait_for_query(self, sql, state, interface):
        """The admin's view of a query once it is in `state`."""
        deadline = time.time() + 60
        while time.time() < deadline:
            for query in self.queries():
                if query["sql"] == sql and query["state"] == state and query["interface"] == interface:
                    return query
            time.sleep(0.05)
        expect(False, f"{sql!r} never showed as {state} over {interface}: {self.queries()}")


class Background(threading.Thread):
    """Runs `work` in a thread and keeps its result or exception."""

    def __init__(self, work):
        super().__init__(daemon=True)
        self.work, self.result, self.error = work, None, None
        self.start()

    def run(self):
        try:
            self.result = self.work()
        except Exception as e:  # noqa: BLE001 - the caller inspects it
            self.error = e

    def outcome(self):
        self.join(timeout=120)
        expect(not self.is_alive(), "a background query never finished")
        return self.result, self.error


def result_limits(server, token):
    message = server.http_error(token, TOO_MANY_ROWS, 413, "too_many_rows")
    expect("more than 1000 rows" in message, message)
    server.flight_error(token, TOO_MANY_ROWS, "ResourceExhausted", "more than 1000 rows")
    server.pg_error(token, TOO_MANY_ROWS, "54000", "more than 1000 rows")
    # A LIMIT under the row limit is fine everywhere.
    expect(len(server.pg_query(token, "SELECT value FROM range(5000) LIMIT 1000")) == 1000, "LIMIT 1000 over pg")


def memory_limits(server, token):
    message = server.http_error(token, TOO_MUCH_MEMORY, 422, "query_memory_limit")
    expect("memory limit of 16777216 bytes" in message, message)
    server.flight_error(token, TOO_MUCH_MEMORY, "ResourceExhausted", "memory limit")
    server.pg_error(token, TOO_MUCH_MEMORY, "53200", "memory limit")
    # A sort past the same limit spills to disk instead and answers.
    status, body = server.http(token, SPILLING_SORT)
    expect(status == 200 and body == [{"s": SPILLING_SORT_ANSWER}], f"spilling sort over HTTP: {status} {body}")
    expect(server.flight_query(token, SPILLING_SORT) == [(SPILLING_SORT_ANSWER,)], "spilling sort over Flight SQL")
    expect(server.pg_query(token, SPILLING_SORT) == [(SPILLING_SORT_ANSWER,)], "spilling sort over pg")


def timeouts(server, tokens):
    # One tenant each, so that the three run at once rather than in one tenant's queue.
    http = Background(lambda: server.http_error(tokens[0], RUNS_FOREVER, 504, "query_timeout"))
    flight = Background(lambda: server.flight_error(tokens[1], RUNS_FOREVER, "DeadlineExceeded", "did not finish"))
    pg = Background(lambda: server.pg_error(tokens[2], RUNS_FOREVER, "57014", "statement timeout"))
    for name, background in [("HTTP", http), ("Flight SQL", flight), ("pg", pg)]:
        message, error = background.outcome()
        expect(error is None, f"timeout over {name}: {error!r}")
        expect("10 s" in message, f"timeout over {name} names the limit: {message}")


def concurrency_and_cancel(server, tokens):
    busy, other = tokens[0], tokens[1]
    # The tenant's one slot: a query that runs until the admin cancels it.
    running = Background(lambda: server.pg_query(busy, RUNS_FOREVER))
    victim = server.wait_for_query(RUNS_FOREVER, "running", "postgres")
    expect(victim["tenant"] is not None, f"system.queries names the tenant: {victim}")
    # Its one queue place: a small query that waits for the slot.
    waiting = Background(lambda: server.flight_query(busy, "SELECT 42 AS answer"))
    server.wait_for_query("SELECT 42 AS answer", "queued", "flight_sql")
    # Past both, the tenant is refused at once, with the same meaning on every interface.
    message = server.http_error(busy, "SELECT 1", 429, "too_many_queries")
    expect("1 running, 1 waiting" in message, message)
    server.flight_error(busy, "SELECT 1", "ResourceExhausted", "too many concurrent queries")
    server.pg_error(busy, "SELECT 1", "53300", "too many concurrent queries")
    # Another tenant is not held up.
    status, body = server.http(other, "SELECT 7 AS n")
    expect(status == 200 and body == [{"n": 7}], f"another tenant's query: {status} {body}")
    # The admin sees both in system.queries over the PostgreSQL wire too, and cancels the runner.
    with server.pg(server.admin_token) as conn:
        states = conn.execute("SELECT state FROM system.queries WHERE tenant IS NOT NULL ORDER BY id").fetchall()
    expect(states == [("running",), ("queued",)], f"system.queries states: {states}")
    answer = server.admin("DELETE", f"/api/v1/admin/queries/{victim['id']}")
    expect(answer == {"id": victim["id"], "cancelled": True}, f"cancel answer: {answer}")
    _, error = running.outcome()
    expect(isinstance(error, psycopg.Error) and error.sqlstate == "57014", f"cancelled query: {error!r}")
    expect("by the admin" in str(error), f"cancelled query names who: {error}")
    rows, error = waiting.outcome()
    expect(error is None and rows == [(42,)], f"the queued query ran once the slot was free: {rows} {error!r}")
    try:
        server.admin("DELETE", f"/api/v1/admin/queries/{victim['id']}")
        expect(False, "cancelling a finished query succeeded")
    except urllib.error.HTTPError as e:
        expect(e.code == 404, f"cancelling a finished query: {e.code}")


def pg_cancel_request(server, token):
    """psycopg's cancel() sends a CancelRequest on a new connection with the backend key."""
    with server.pg(token) as conn:
        runner = Background(lambda: conn.execute(RUNS_FOREVER).fetchall())
        server.wait_for_query(RUNS_FOREVER, "running", "postgres")
        conn.cancel()
        _, error = runner.outcome()
        expect(isinstance(error, psycopg.errors.QueryCanceled), f"CancelRequest: {error!r}")
        expect("cancel request" in str(error), f"CancelRequest message: {error}")
        # The connection goes on serving.
        expect(conn.execute("SELECT 1").fetchall() == [(1,)], "the connection after a cancel")
    expect(not any(q["sql"] == RUNS_FOREVER for q in server.queries()), "the cancelled query left system.queries")


def main():
    http_url, grpc_uri, pg_addr, admin_token = sys.argv[1:5]
    tokens = sys.argv[5:8]
    server = Server(http_url, grpc_uri, pg_addr, admin_token)
    result_limits(server, tokens[0])
    print("result row limit: ok")
    memory_limits(server, tokens[0])
    print("memory limit and spilling: ok")
    timeouts(server, tokens)
    print("timeouts: ok")
    concurrency_and_cancel(server, tokens)
    print("concurrency limit, queueing and admin cancel: ok")
    pg_cancel_request(server, tokens[2])
    print("PostgreSQL cancel request: ok")
    print("all checks passed")


if __name__ == "__main__":
    main()
