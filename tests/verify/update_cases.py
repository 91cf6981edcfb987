#!/usr/bin/env python3
"""Rewrites the script:, expect: and expect stats: outputs= sections of the real-data e2e cases
(tests/cases/real_*.test but real_stocks_filter.test) from the samples and the independent
verification scripts here (real_stocks_ties.test keeps its own script).
The `#` header (data, how it was verified, the hand checks) and the input: lines are kept; read
the diff and re-check the hand-checked matches after running this.

usage: python3 tests/verify/update_cases.py        (from anywhere; paths are repo-relative)
"""
import os
import re
import shlex
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
HERE = os.path.join(ROOT, "tests", "verify")


def sample(name):
    with open(os.path.join(ROOT, "samples", name)) as f:
        return f.read()


def statement(src, publish, after=None):
    """The text of the statement that ends with `PUBLISH <publish>;`, starting right after
    the end of the statement `after` (a PUBLISH name or 'CREATE <stream>')."""
    end = src.index("PUBLISH %s;" % publish) + len("PUBLISH %s;" % publish)
    if after.startswith("CREATE "):
        start = src.index("CREATE STREAM %s" % after[7:])
    else:
        start = src.index("PUBLISH %s;" % after) + len("PUBLISH %s;" % after)
    start = src.index(";", start) + 1 if after.startswith("CREATE ") else start
    return src[start:end].strip("\n")


def create(src, stream):
    m = re.search(r"^CREATE STREAM %s\b[^;]*;" % stream, src, re.M)
    return m.group(0)


def verify(args):
    return subprocess.run([sys.executable] + args, cwd=ROOT, check=True, text=True,
                          stdout=subprocess.PIPE, stderr=subprocess.DEVNULL).stdout


def input_regex(case_text, stream):
    for line in case_text.splitlines():
        if line.startswith("input: %s=" % stream):
            a = shlex.split(line[len("input:"):])
            return a[a.index("--regex") + 1]
    raise SystemExit("no input: %s= line" % stream)


def rewrite(case, script, expect):
    path = os.path.join(ROOT, "tests", "cases", case)
    with open(path) as f:
        text = f.read()
    head = text[:text.index("\nscript:\n") + 1]
    if script is None:          # the case's own script (not a sample's): keep it
        script = text[text.index("\nscript:\n") + 9:text.index("\nexpect:\n") + 1]
    stats = text[text.index("\nexpect stats:\n") + 1:]
    stats = re.sub(r"^outputs=\d+$", "outputs=%d" % expect.count("\n"), stats, flags=re.M)
    new = head + "script:\n" + script.rstrip("\n") + "\n" + "expect:\n" + expect + stats
    if new != text:
        with open(path, "w") as f:
            f.write(new)
        print("updated", case, "(%d expected lines)" % expect.count("\n"))
    else:
        print("unchanged", case)


def main():
    stocks = sample("stocks.cel")
    bars = "tests/data/stocks/bars_1min_2024_SW_TPL.csv.gz"
    rewrite("real_stocks_large_trade.test",
            create(stocks, "Stock") + "\n" + statement(stocks, "LargeTradeRebound", "CREATE Stock"),
            verify([os.path.join(HERE, "stocks.py"), "--query", "LargeTradeRebound", bars]))
    rewrite("real_stocks_double_top.test",
            create(stocks, "Stock") + "\n" + statement(stocks, "DoubleTop", "LargeTradeRebound"),
            verify([os.path.join(HERE, "stocks.py"), "--query", "DoubleTop", bars]))

    rewrite("real_stocks_ties.test", None,
            verify([os.path.join(HERE, "ties.py"), "tests/data/stocks/bars_1min_2024_head5000.csv.gz"]))

    logins = sample("logins.cel")
    rewrite("real_ssh_bruteforce.test", logins,
            verify([os.path.join(HERE, "ssh.py"), "tests/data/logs/OpenSSH_2k.log"]))

    path = os.path.join(ROOT, "tests", "cases", "real_linux_bruteforce.test")
    with open(path) as f:
        rx = input_regex(f.read(), "Failed")
    bf = logins[logins.index("-- Five failed logins"):]
    bf = bf[:bf.index("PUBLISH BruteForce;") + len("PUBLISH BruteForce;")]
    rewrite("real_linux_bruteforce.test", create(logins, "Failed") + "\n" + bf,
            verify([os.path.join(HERE, "ssh.py"), "--query", "BruteForce", "--failed-re", rx,
                    "tests/data/logs/Linux_Jun_Jul.log.gz"]))


if __name__ == "__main__":
    main()
