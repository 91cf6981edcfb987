#!/usr/bin/env python3
"""Independent expected output for samples/logins.cel (BruteForce, Compromise) over an sshd log.

This does NOT run cayuga. Lines are matched with Python's re (ASCII classes), which for these
patterns finds the same matches as RE2's unanchored search; the syslog time "%b %d %H:%M:%S"
is read in year 1970, UTC (cayuga's default --year), in milliseconds. Failed and Accepted are
point events. The queries are evaluated operator by operator with celalg.py (CEL.md §6):

  BruteForce = FILTER{cnt = 5}((SELECT Host, User, 1 AS cnt FROM Failed)
                 FOLD{$2.Host = $.Host, $.cnt < 5 AND DUR <= 1 MIN, $.cnt + 1 AS cnt} Failed)
               projected to Host, FirstUser, LastUser, Attempts, Span
  Compromise = BruteForce NEXT{$2.Host = $1.Host AND DUR <= 10 MIN} Accepted
               projected to Host, AcceptedUser, FirstUser, Attempts

Failures from one host within one second are simultaneous (one epoch): a run never reads an
event of its own second, and when the next failure of a host is k simultaneous lines, a run
branches into k derivations (bag semantics), which this log has plenty of.

usage: ssh.py [--query BruteForce|Compromise|all] [--counts] [--failed-re RE] [--accepted-re RE] LOG[.gz]
"""
import argparse
import calendar
import collections
import gzip
import os
import re
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from celalg import MIN, Ev, Stream, FILTER, SELECT, NEXT, FOLD, json_lines  # noqa: E402

TS = r"(?P<ts>\w+ +\d+ [\d:]+) \S+ sshd\[\d+\]: "
FAILED_RE = TS + r"Failed password for (invalid user )?(?P<User>\S+) from (?P<Host>[\d.]+)"
ACCEPTED_RE = TS + r"Accepted password for (?P<User>\S+) from (?P<Host>[\d.]+)"


def ms(ts):
    # "%b %d %H:%M:%S" in 1970, UTC. strptime's %b is locale-dependent: parse the month by hand.
    mon, day, hms = ts.split()
    m = ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov",
         "dec"].index(mon[:3].lower()) + 1
    h, mi, s = (int(x) for x in hms.split(":"))
    return calendar.timegm((1970, m, int(day), h, mi, s, 0, 0, 0)) * 1000


def read(path, pattern):
    rx = re.compile(pattern, re.ASCII)
    evs = []
    op = gzip.open if path.endswith(".gz") else open
    with op(path, "rt", encoding="utf-8", newline="") as f:
        for line in f:
            line = line.rstrip("\n").rstrip("\r")
            m = rx.search(line)
            if m:
                t = ms(m.group("ts"))
                # a group that did not take part in the match reads as "" (as in cayuga)
                evs.append(Ev(t, t, {"Host": m.group("Host") or "", "User": m.group("User") or ""}))
    return Stream(["Host", "User"], evs)


def brute_force(failed):
    s1 = SELECT([("Host", lambda v, d: v["Host"]), ("User", lambda v, d: v["User"]),
                 ("cnt", lambda v, d: 1)], failed)
    runs = FOLD(s1,
                lambda l, d, r, dur: r["Host"] == d["Host"],
                lambda l, d, r, dur: d["cnt"] < 5 and dur <= 1 * MIN,
                [("cnt", lambda l, d, r, dur: d["cnt"] + 1)],
                failed, horizon=1 * MIN)
    assert runs.schema == ["Host_1", "User_1", "cnt", "Host", "User"]
    five = FILTER(lambda v, dur: v["cnt"] == 5, runs)
    return SELECT([("Host", lambda v, d: v["Host"]),
                   ("FirstUser", lambda v, d: v["User_1"]),
                   ("LastUser", lambda v, d: v["User"]),
                   ("Attempts", lambda v, d: v["cnt"]),
                   ("Span", lambda v, d: d)], five)


def compromise(bf, accepted):
    n = NEXT(bf, lambda l, r, dur: r["Host"] == l["Host"] and dur <= 10 * MIN, accepted,
             horizon=10 * MIN)
    assert n.schema == ["Host_1", "FirstUser", "LastUser", "Attempts", "Span", "Host", "User"]
    return SELECT([("Host", lambda v, d: v["Host"]),
                   ("AcceptedUser", lambda v, d: v["User"]),
                   ("FirstUser", lambda v, d: v["FirstUser"]),
                   ("Attempts", lambda v, d: v["Attempts"])], n)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--query", default="all", choices=["all", "BruteForce", "Compromise"])
    ap.add_argument("--counts", action="store_true",
                    help="also print outputs per host on stderr")
    ap.add_argument("--failed-re", default=FAILED_RE,
                    help="pattern of Failed lines (groups ts, Host, User; default: sshd's)")
    ap.add_argument("--accepted-re", default=ACCEPTED_RE,
                    help="pattern of Accepted lines (groups ts, Host, User)")
    ap.add_argument("log")
    a = ap.parse_args()
    failed = read(a.log, a.failed_re)
    accepted = read(a.log, a.accepted_re)
    bf = brute_force(failed)
    res = []
    if a.query in ("all", "BruteForce"):
        res += json_lines("BruteForce", bf)
    if a.query in ("all", "Compromise"):
        res += json_lines("Compromise", compromise(bf, accepted))
    for l in res:
        print(l)
    print("%s: %d Failed, %d Accepted events, %d expected outputs"
          % (a.log, len(failed.events), len(accepted.events), len(res)), file=sys.stderr)
    if a.counts:
        c = collections.Counter(e.v["Host"] for e in bf.events)
        for h, k in c.most_common():
            print("  BruteForce %s: %d" % (h, k), file=sys.stderr)


if __name__ == "__main__":
    main()
