#!/usr/bin/env python3
"""Times one view of the web dashboard as the page loads it: the requests app.js sends for the
"Last 30 days" view (top-line metrics, the chart, ten tables, visitors now), four at a time,
against a running Hourglass. Prints each run's wall time and the median, and each request's
median, so a first view (empty caches, hours not rolled up yet) can be set against later ones.

    python3 benches/scripts/dashboard-view.py --url http://127.0.0.1:8080 --token hgr_... --runs 5

Standard library only.
"""
import argparse
import json
import statistics
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor

PANELS = [
    ("event:page", ["visitors", "pageviews"]),
    ("visit:entry_page", ["visits", "bounce_rate"]),
    ("visit:exit_page", ["visits"]),
    ("visit:source", ["visitors"]),
    ("visit:channel", ["visitors"]),
    ("visit:utm_campaign", ["visitors"]),
    ("visit:country", ["visitors"]),
    ("visit:device", ["visitors"]),
    ("visit:browser", ["visitors"]),
    ("visit:os", ["visitors"]),
]


def requests_of_a_view(period):
    """(name, path, body) of every request of one dashboard view, in the page's order."""
    out = [
        ("totals", "/api/v1/report",
         {"date_range": period, "metrics": ["visitors", "visits", "pageviews", "bounce_rate", "visit_duration"]}),
        ("chart", "/api/v1/report",
         {"date_range": period, "metrics": ["visitors"], "dimensions": ["time:day"],
          "include": {"totals": False, "time_labels": True}, "limit": 10000}),
    ]
    for dim, metrics in PANELS:
        body = {"date_range": period, "metrics": metrics, "dimensions": [dim], "limit": 10,
                "include": {"totals": False, "total_rows": True}}
        if dim == "visit:utm_campaign":
            body["filters"] = [["is_not", dim, ["(not set)"]]]
        out.append((dim, "/api/v1/report", body))
    out.append(("realtime", "/api/v1/report/realtime", {"metrics": ["current_visitors"]}))
    return out


def post(url, token, path, body):
    request = urllib.request.Request(
        url + path, data=json.dumps(body).encode(), method="POST",
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"})
    started = time.perf_counter()
    with urllib.request.urlopen(request, timeout=600) as response:
        answer = json.load(response)
    return time.perf_counter() - started, answer


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", required=True)
    parser.add_argument("--token", required=True)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--period", default="30d")
    parser.add_argument("--parallel", type=int, default=4, help="requests at once (the page sends 4)")
    args = parser.parse_args()

    view = requests_of_a_view(args.period)
    walls, per_request = [], {name: [] for name, _, _ in view}
    for run in range(args.runs):
        started = time.perf_counter()
        # The page asks for the totals first (the chart needs their comparison range).
        took, _ = post(args.url, args.token, view[0][1], view[0][2])
        per_request["totals"].append(took)
        with ThreadPoolExecutor(max_workers=args.parallel) as pool:
            results = list(pool.map(lambda r: (r[0], post(args.url, args.token, r[1], r[2])), view[1:]))
        wall = time.perf_counter() - started
        walls.append(wall)
        paths = set()
        for name, (took, answer) in results:
            per_request[name].append(took)
            paths.add(answer.get("meta", {}).get("path", "?").split(",")[0].split(":")[0])
        print(f"run {run + 1}: view {wall * 1000:.0f} ms ({len(view)} requests; answered from {sorted(paths)})")
    print(f"median view: {statistics.median(walls) * 1000:.0f} ms over {args.runs} runs")
    for name, times in per_request.items():
        print(f"  {name:20} median {statistics.median(times) * 1000:8.1f} ms  first {times[0] * 1000:8.1f} ms")


if __name__ == "__main__":
    main()
