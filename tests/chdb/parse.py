#!/usr/bin/env python3
"""Parses SQL statements with chDB's parser (ClickHouse 26) without running them.

Usage: parpulse migrate --print-sql --clickhouse-cluster NAME | parse.py
Statements are separated by ';' followed by a blank line (as --print-sql writes them).
The cluster form (Replicated*/Distributed ON CLUSTER) runs on ClickHouse 18.16 in
tests/e2e_cluster.rs (the local cluster, deploy/local/cluster.sh); parsing it with a
current ClickHouse checks that every rewritten statement is valid SQL there too.
Exit status 0 when every statement parses.
"""
import sys

import chdb


def main():
    text = sys.stdin.read()
    statements = [s.strip() for s in text.split(";\n\n") if s.strip()]
    if not statements:
        raise SystemExit("no statements on stdin")
    failed = 0
    for statement in statements:
        try:
            chdb.query("EXPLAIN AST " + statement, "CSV")
        except Exception as error:  # chDB raises its own exception types
            failed += 1
            print(f"does not parse: {statement}\n  {error}")
    print(f"parsed {len(statements) - failed} of {len(statements)} statements")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
