#!/usr/bin/env python3
"""Runs every query of deploy/grafana/dashboards/hourglass-merchant.json against a running
Hourglass, as Grafana would send it, over both data sources the provisioning defines: the
PostgreSQL wire protocol (psycopg, as Grafana's PostgreSQL data source expands its macros) and
Arrow Flight SQL (the ADBC driver, with the FlightSQL plugin's expansion). Both must answer
every query with the same rows, and the panels that mirror the web dashboard must equal the
report API's answer for the same days and filter.

    check-dashboard-queries.py --http URL --pg HOST:PORT --flight grpc://HOST:PORT --token hgr_... \\
        --from 2026-11-07 --to 2026-12-06 --source Google

Prints "grafana queries ok" and exits 0 when everything agrees.
"""
import argparse
import datetime as dt
import decimal
import json
import re
import sys
import urllib.request
import warnings
from pathlib import Path

import adbc_driver_flightsql.dbapi as flightsql
import psycopg
from adbc_driver_flightsql import DatabaseOptions

ROOT = Path(__file__).resolve().parents[2]
DASHBOARD = ROOT / "deploy/grafana/dashboards/hourglass-merchant.json"


def expand(sql, flavour, start, end, variables):
    """The SQL Grafana sends: macros in the data source's form, then the dashboard variables."""
    iso = lambda t: t.strftime("%Y-%m-%dT%H:%M:%SZ")
    if flavour == "pg":
        sql = sql.replace("$__timeFrom()", f"'{iso(start)}'").replace("$__timeTo()", f"'{iso(end)}'")
    else:
        sql = sql.replace("$__timeFrom()", f"cast('{iso(start)}' as timestamp)")
        sql = sql.replace("$__timeTo()", f"cast('{iso(end)}' as timestamp)")
    for name, value in sorted(variables.items(), key=lambda kv: -len(kv[0])):
        sql = sql.replace("${" + name + "}", value).replace("$" + name, value)
    assert "$" not in re.sub(r"'[^']*'", "", sql), f"an unexpanded variable or macro in: {sql[:200]}"
    return sql


def plain(value):
    """A cell as both drivers can agree on it."""
    if isinstance(value, decimal.Decimal):
        return float(value)
    if isinstance(value, dt.datetime):
        return value.replace(tzinfo=None).isoformat() if value.tzinfo is None else value.astimezone(dt.timezone.utc).replace(tzinfo=None).isoformat()
    return value


def report(http, token, body):
    request = urllib.request.Request(
        f"{http}/api/v1/report", data=json.dumps(body).encode(), method="POST",
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=300) as response:
        return json.load(response)


def main():
    # ADBC warns that Flight SQL cannot turn autocommit off; these are read-only queries.
    warnings.filterwarnings("ignore", message="Cannot disable autocommit")
    parser = argparse.ArgumentParser()
    parser.add_argument("--http", required=True)
    parser.add_argument("--pg", required=True)
    parser.add_argument("--flight", required=True)
    parser.add_argument("--token", required=True)
    parser.add_argument("--from", dest="first", required=True, help="first day (UTC)")
    parser.add_argument("--to", dest="last", required=True, help="last day (UTC)")
    parser.add_argument("--source", required=True, help="a source to filter by")
    args = parser.parse_args()

    first = dt.datetime.fromisoformat(args.first)
    end = dt.datetime.fromisoformat(args.last) + dt.timedelta(days=1)
    dashboard = json.loads(DASHBOARD.read_text())
    host, port = args.pg.rsplit(":", 1)
    pg = psycopg.connect(host=host, port=int(port), user="grafana", dbname="hourglass", password=args.token,
                         sslmode="disable", autocommit=True)
    flight = flightsql.connect(args.flight, db_kwargs={DatabaseOptions.AUTHORIZATION_HEADER.value: f"Bearer {args.token}"})

    def run(sql, variables):
        answers = []
        for flavour in ("pg", "flight"):
            text = expand(sql, flavour, first, end, variables)
            cursor = pg.cursor() if flavour == "pg" else flight.cursor()
            try:
                cursor.execute(text)
                names = [d[0] for d in cursor.description]
                rows = [tuple(plain(v) for v in row) for row in cursor.fetchall()]
            except Exception as error:
                raise AssertionError(f"{flavour} refused a dashboard query: {error}\n{text}") from error
            finally:
                cursor.close()
            answers.append((names, rows))
        assert answers[0] == answers[1], f"PostgreSQL wire and Flight SQL differ:\n{answers[0]}\n{answers[1]}\n{sql[:300]}"
        return answers[0]

    everyone = {"bucket": "day", "timezone": "UTC", "source": "'__all'", "country": "'__all'"}
    filtered = dict(everyone, source="'" + args.source.replace("'", "''") + "'")
    variable_queries = [v["query"] for v in dashboard["templating"]["list"] if v["type"] == "query"]
    results = {}
    checked = 0
    for variables, label in ((everyone, "all"), (filtered, "filtered")):
        for sql in variable_queries:
            names, rows = run(sql, variables)
            assert rows, f"the variable query lists nothing: {sql}"
            checked += 1
        for panel in dashboard["panels"]:
            for target in panel.get("targets", []):
                results[(label, panel["title"])] = run(target["rawSql"], variables)
                checked += 1

    sources = [row[0] for row in run(variable_queries[0], everyone)[1]]
    assert args.source in sources, f"{args.source} is not among the sources the variable offers: {sources}"

    # The panels that mirror the web dashboard equal the report API for the same days.
    day_range = [args.first, args.last]
    for label, filters in (("all", []), ("filtered", [["is", "visit:source", [args.source]]])):
        body = {"date_range": day_range, "timezone": "UTC", "metrics": ["visitors", "visits", "bounce_rate", "visit_duration"]}
        if filters:
            body["filters"] = filters
        api = report(args.http, args.token, body)["totals"]["metrics"]
        names, rows = results[(label, "Summary")]
        summary = dict(zip(names, rows[0]))
        shown = [summary["visitors"], summary["visits"], summary["bounce_rate"], summary["visit_duration"]]
        assert [float(v) for v in shown] == [float(v) for v in api], f"{label} Summary {shown} != report API {api}"
        for title, dimension in (("Sources", "visit:source"), ("Channels", "visit:channel"), ("Devices", "visit:device")):
            body = {"date_range": day_range, "timezone": "UTC", "metrics": ["visitors"], "dimensions": [dimension], "limit": 10}
            if filters:
                body["filters"] = filters
            api_rows = [(r["dimensions"][0], r["metrics"][0]) for r in report(args.http, args.token, body)["rows"]]
            panel_rows = [tuple(r) for r in results[(label, title)][1]]
            assert panel_rows == api_rows, f"{label} {title}: panel {panel_rows} != report API {api_rows}"
            checked += 1
    everyone_visitors = results[("all", "Summary")][1][0][0]
    filtered_visitors = results[("filtered", "Summary")][1][0][0]
    assert 0 < filtered_visitors < everyone_visitors, f"the source filter keeps some visitors: {filtered_visitors} of {everyone_visitors}"
    print(f"grafana queries ok: {checked} checks, {everyone_visitors} visitors, {filtered_visitors} from {args.source}")


if __name__ == "__main__":
    try:
        main()
    except AssertionError as error:
        print(f"FAILED: {error}", file=sys.stderr)
        sys.exit(1)
