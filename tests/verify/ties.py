#!/usr/bin/env python3
"""Independent expected output for tests/cases/real_stocks_ties.test: NEXT and FOLD across
symbols over tests/data/stocks/bars_1min_2024_head5000.csv.gz, where many bars of different
symbols share a minute (simultaneous events), so the "all ties with the smallest t1" rule of
CEL.md §6 applies all the time. Evaluated with celalg.py (not cayuga).

  Q1 = SELECT * FROM FILTER{Volume > 8000}(Stock)
         NEXT{$2.Volume > 2000 AND $2.Name != $1.Name} Stock
  Q2 = SELECT * FROM FILTER{Volume > 8000}(Stock)
         FOLD{$2.Volume > 1000, $2.Price > $.Price AND DUR <= 10 MIN, } Stock

usage: ties.py BARS.csv[.gz]
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from celalg import MIN, FILTER, NEXT, FOLD, json_lines  # noqa: E402
from stocks import read_bars  # noqa: E402


def main():
    stock = read_bars(sys.argv[1])
    big = FILTER(lambda v, dur: v["Volume"] > 8000, stock)
    q1 = NEXT(big, lambda l, r, dur: r["Volume"] > 2000 and r["Name"] != l["Name"], stock)
    q2 = FOLD(big,
              lambda l, d, r, dur: r["Volume"] > 1000,
              lambda l, d, r, dur: r["Price"] > d["Price"] and dur <= 10 * MIN,
              [], stock, horizon=10 * MIN)
    assert q2.schema == ["Name_1", "Price_1", "Volume_1", "Name", "Price", "Volume"]
    out = json_lines("Q1", q1) + json_lines("Q2", q2)
    for l in out:
        print(l)
    print("%d expected outputs" % len(out), file=sys.stderr)


if __name__ == "__main__":
    main()
