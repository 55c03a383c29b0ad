#!/usr/bin/env python3
"""Runs parpulse's ClickHouse migrations and KPI read queries on chDB (the
ClickHouse 26 engine, in-process) and compares every query's result with the
ClickHouse server's (18.16 in the project's tests) on the same data.

Usage: compare.py --url http://127.0.0.1:8123 --database DB --group G --topic T
The server database must hold data (the e2e test fills it through the pipeline).
Exit status 0 when every query returns the same rows on both engines.
"""
import argparse
import datetime
import glob
import os
import sys
import tempfile
import urllib.parse
import urllib.request

from chdb import session as chdb_session

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
TABLES = ["dossier_day", "day_count", "checkpoints", "dossier_state", "budget_event", "staffing_event", "procedure_day"]


def statements(sql):
    """Statements end with ';' at a line end (as parpulse_clickhouse::migrate splits them)."""
    out, current = [], []
    for line in sql.splitlines():
        current.append(line)
        if line.rstrip().endswith(";"):
            out.append("\n".join(current))
            current = []
    out.append("\n".join(current))
    code = lambda s: any(l.strip() and not l.strip().startswith("--") for l in s.splitlines())
    return [s.strip().rstrip(";") for s in out if code(s)]


def server(url, database, sql):
    query = urllib.parse.urlencode({"database": database})
    request = urllib.request.Request(f"{url}/?{query}", data=sql.encode("utf-8"), method="POST")
    with urllib.request.urlopen(request, timeout=60) as response:
        return response.read().decode("utf-8")


def normalized(lines):
    # Date 0 is printed '0000-00-00' by ClickHouse 18.16 and '1970-01-01' by current
    # releases: the same value (parpulse reads dates as day numbers), different text.
    return sorted(line.replace("0000-00-00", "1970-01-01") for line in lines)


def literal(value):
    if isinstance(value, int):
        return str(value)
    return "'" + str(value).replace("\\", "\\\\").replace("'", "\\'") + "'"


def bind(sql, params):
    parts = sql.split("?")
    if len(parts) - 1 != len(params):
        raise SystemExit(f"query expects {len(parts) - 1} parameters, got {len(params)}")
    out = parts[0]
    for value, rest in zip(params, parts[1:]):
        out += literal(value) + rest
    return out


def one_row(url, database, table, key):
    """Partition and `key` (unit, then the row's own key) of the first row the server's
    `table` holds: the parameters of a one-row query."""
    line = server(url, database, f"SELECT kafka_partition, {key} FROM {table} "
                  f"ORDER BY {key} LIMIT 1 FORMAT TabSeparated").strip()
    if not line:
        raise SystemExit(f"the server's {table} is empty: nothing to compare")
    partition, *rest = line.split("\t")
    return [int(partition), *rest]


def budget_year(url, database):
    """The newest fiscal year the server's budget events hold: the data's own year, not
    today's (in early January the data's budgets are still last year's)."""
    year = server(url, database, "SELECT max(fiscal_year) FROM budget_event FORMAT TabSeparated").strip()
    if not year or year == "0":
        raise SystemExit("the server's budget_event is empty: nothing to compare for budget_year")
    return int(year)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--url", required=True)
    parser.add_argument("--database", required=True)
    parser.add_argument("--group", required=True)
    parser.add_argument("--topic", required=True)
    args = parser.parse_args()

    today = datetime.date.today()
    first = (today - datetime.timedelta(days=400)).isoformat()
    last = (today + datetime.timedelta(days=1)).isoformat()
    now_micros = int(datetime.datetime.now(datetime.timezone.utc).timestamp() * 1_000_000)
    month_ago = now_micros - 30 * 86_400_000_000
    month_ago_day = (today - datetime.timedelta(days=30)).isoformat()
    params = {
        "budget_year": [budget_year(args.url, args.database), 2**63 - 1],
        "headcounts": [2**63 - 1],
        "checkpoints_committed": [args.group, args.topic],
        "day_count_load_partition": [0, first],
        "day_count_load_bucket": one_row(args.url, args.database, "day_count", "agency_code, toString(day)"),
        "day_count_read_days": [first, last],
        "procedure_day_load_partition": [0, first],
        "procedure_day_read_days": [first, last],
        "dossier_state_load_partition": [0, 0],
        "dossier_state_load_one": one_row(args.url, args.database, "dossier_state", "agency_code, dossier_id"),
        "open_dossiers": [now_micros],
        "dossier_state_for_period": [now_micros, month_ago, now_micros, month_ago, now_micros, month_ago_day, month_ago, now_micros],
    }

    with tempfile.TemporaryDirectory() as work:
        sess = chdb_session.Session(os.path.join(work, "chdb"))
        sess.query("CREATE DATABASE IF NOT EXISTS parpulse")
        sess.query("USE parpulse")
        for path in sorted(glob.glob(os.path.join(REPO, "schemas", "clickhouse", "0*.sql"))):
            for statement in statements(open(path, encoding="utf-8").read()):
                sess.query(statement)
        print(f"chDB {sess.query('SELECT version()', 'TSV').bytes().decode().strip()}: migrations applied")

        for table in TABLES:
            data = server(args.url, args.database, f"SELECT * FROM {table} FORMAT TabSeparated")
            path = os.path.join(work, f"{table}.tsv")
            with open(path, "w", encoding="utf-8") as f:
                f.write(data)
            columns = sess.query(
                f"SELECT name, type FROM system.columns WHERE database = 'parpulse' AND table = '{table}' ORDER BY position",
                "TSV",
            ).bytes().decode().strip().splitlines()
            structure = ", ".join(" ".join(c.split("\t")) for c in columns)
            sess.query(f"INSERT INTO {table} SELECT * FROM file('{path}', 'TabSeparated', '{structure}')")
            count = sess.query(f"SELECT count() FROM {table}", "TSV").bytes().decode().strip()
            print(f"{table}: {count} rows copied from the server")

        failures = 0
        for path in sorted(glob.glob(os.path.join(REPO, "schemas", "clickhouse", "queries", "*.sql"))):
            name = os.path.basename(path)[: -len(".sql")]
            if name not in params:
                print(f"{name}: no parameters known to compare.py", file=sys.stderr)
                failures += 1
                continue
            sql = bind(open(path, encoding="utf-8").read(), params[name])
            expected = normalized(server(args.url, args.database, sql + "\nFORMAT TabSeparated").splitlines())
            got = normalized(sess.query(sql, "TSV").bytes().decode("utf-8").splitlines())
            if expected == got:
                print(f"{name}: {len(got)} rows, identical")
            else:
                failures += 1
                only_server = sorted(set(expected) - set(got))[:3]
                only_chdb = sorted(set(got) - set(expected))[:3]
                print(f"{name}: DIFFERENT ({len(expected)} vs {len(got)} rows)\n  only on the server: {only_server}\n  only on chDB: {only_chdb}", file=sys.stderr)
            if not expected:
                print(f"{name}: no rows to compare", file=sys.stderr)
                failures += 1
        sess.close()
    print("chDB comparison: " + ("all queries identical" if failures == 0 else f"{failures} failed"))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
