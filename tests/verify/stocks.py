#!/usr/bin/env python3
"""Independent expected output for samples/stocks.cel (LargeTradeRebound, DoubleTop).

This does NOT run cayuga. It evaluates the two queries of samples/stocks.cel directly from the
algebra of docs/CEL.md §6, over one CSV (gzip) of 1-minute bars (sym,epoch_ms,...,close,...,volume),
mapped as the e2e cases map it: Name=sym, Price=close, Volume=volume, t0=t1=epoch_ms.

The operators (celalg.py) implement CEL.md §6 literally, one operator at a time over whole
streams; each query below is the sample's text transcribed operator by operator, with the
intermediate schemas of §5 asserted.

usage: stocks.py [--query LargeTradeRebound|DoubleTop|all] BARS.csv[.gz]
prints the expected JSON Lines (sorted by t1, then the rest of the line) on stdout.
"""
import argparse
import csv
import gzip
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from celalg import DAY, MIN, Ev, Stream, FILTER, SELECT, NEXT, FOLD, json_lines  # noqa: E402


def read_bars(path):
    op = gzip.open if path.endswith(".gz") else open
    evs = []
    with op(path, "rt", newline="") as f:
        for r in csv.DictReader(f):
            t = int(r["epoch_ms"])
            evs.append(Ev(t, t, {"Name": r["sym"], "Price": float(r["close"]),
                                 "Volume": int(r["volume"])}))
    return Stream(["Name", "Price", "Volume"], evs)


def large_trade_rebound(stock):
    big = FILTER(lambda v, dur: v["Volume"] > 10000, stock)
    decline = FOLD(big,
                   lambda l, d, r, dur: r["Name"] == d["Name"],
                   lambda l, d, r, dur: r["Price"] < d["Price"],
                   [], stock)
    # schema: Name_1, Price_1, Volume_1, Name, Price, Volume
    assert decline.schema == ["Name_1", "Price_1", "Volume_1", "Name", "Price", "Volume"]
    decline = FILTER(lambda v, dur: dur >= 10 * MIN, decline)
    sel = SELECT([("Name", lambda v, d: v["Name"]),
                  ("TradePrice", lambda v, d: v["Price_1"]),
                  ("TradeVolume", lambda v, d: v["Volume_1"]),
                  ("Price", lambda v, d: v["Price"])], decline)
    nxt = NEXT(sel, lambda l, r, dur: r["Name"] == l["Name"], stock)
    assert nxt.schema == ["Name_1", "TradePrice", "TradeVolume", "Price_1",
                          "Name", "Price", "Volume"]
    ended = FILTER(lambda v, dur: v["Price"] >= v["Price_1"], nxt)
    bottom = SELECT([("Name", lambda v, d: v["Name"]),
                     ("TradePrice", lambda v, d: v["TradePrice"]),
                     ("TradeVolume", lambda v, d: v["TradeVolume"]),
                     ("Bottom", lambda v, d: v["Price_1"])], ended)
    reb = NEXT(bottom,
               lambda l, r, dur: (r["Name"] == l["Name"] and r["Price"] >= 1.05 * l["Bottom"]
                                  and dur <= 1 * DAY),
               stock, horizon=1 * DAY)
    assert reb.schema == ["Name_1", "TradePrice", "TradeVolume", "Bottom",
                          "Name", "Price", "Volume"]
    return SELECT([("Name", lambda v, d: v["Name"]),
                   ("TradePrice", lambda v, d: v["TradePrice"]),
                   ("TradeVolume", lambda v, d: v["TradeVolume"]),
                   ("Bottom", lambda v, d: v["Bottom"]),
                   ("Rebound", lambda v, d: v["Price"]),
                   ("Span", lambda v, d: d)], reb)


def double_top(stock):
    same = lambda l, d, r, dur: r["Name"] == d["Name"]
    leg1 = FOLD(stock, same, lambda l, d, r, dur: r["Price"] > d["Price"], [], stock)
    leg1 = FILTER(lambda v, dur: v["Price"] >= 1.005 * v["Price_1"], leg1)
    leg1 = SELECT([("Name", lambda v, d: v["Name"]),
                   ("Start", lambda v, d: v["Price_1"]),
                   ("Top", lambda v, d: v["Price"]),
                   ("Price", lambda v, d: v["Price"])], leg1)
    leg2 = FOLD(leg1, same, lambda l, d, r, dur: r["Price"] < d["Price"], [], stock)
    assert leg2.schema == ["Name_1", "Start", "Top", "Price_1", "Name", "Price", "Volume"]
    leg2 = FILTER(lambda v, dur: v["Price"] <= 0.995 * v["Top"], leg2)
    leg2 = SELECT([("Name", lambda v, d: v["Name"]),
                   ("Start", lambda v, d: v["Start"]),
                   ("Top", lambda v, d: v["Top"]),
                   ("Trough", lambda v, d: v["Price"]),
                   ("Price", lambda v, d: v["Price"])], leg2)
    leg3 = FOLD(leg2, same, lambda l, d, r, dur: r["Price"] > d["Price"], [], stock)
    assert leg3.schema == ["Name_1", "Start", "Top", "Trough", "Price_1",
                           "Name", "Price", "Volume"]
    leg3 = FILTER(lambda v, dur: v["Price"] >= 0.998 * v["Top"] and v["Price"] <= 1.002 * v["Top"],
                  leg3)
    leg3 = SELECT([("Name", lambda v, d: v["Name"]),
                   ("Start", lambda v, d: v["Start"]),
                   ("Top", lambda v, d: v["Top"]),
                   ("Trough", lambda v, d: v["Trough"]),
                   ("Top2", lambda v, d: v["Price"]),
                   ("Price", lambda v, d: v["Price"])], leg3)
    leg4 = FOLD(leg3, same,
                lambda l, d, r, dur: (r["Price"] < l["Top2"] and d["Price"] >= l["Trough"]
                                      and dur <= 1 * DAY),
                [], stock, horizon=1 * DAY)
    assert leg4.schema == ["Name_1", "Start", "Top", "Trough", "Top2", "Price_1",
                           "Name", "Price", "Volume"]
    leg4 = FILTER(lambda v, dur: v["Price"] < v["Trough"], leg4)
    return SELECT([("Name", lambda v, d: v["Name"]),
                   ("Start", lambda v, d: v["Start"]),
                   ("Top", lambda v, d: v["Top"]),
                   ("Trough", lambda v, d: v["Trough"]),
                   ("Top2", lambda v, d: v["Top2"]),
                   ("Break", lambda v, d: v["Price"]),
                   ("Span", lambda v, d: d)], leg4)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--query", default="all", choices=["all", "LargeTradeRebound", "DoubleTop"])
    ap.add_argument("bars")
    a = ap.parse_args()
    stock = read_bars(a.bars)
    res = []
    if a.query in ("all", "LargeTradeRebound"):
        res += json_lines("LargeTradeRebound", large_trade_rebound(stock))
    if a.query in ("all", "DoubleTop"):
        res += json_lines("DoubleTop", double_top(stock))
    for l in res:
        print(l)
    print("%s: %d events in, %d expected outputs" % (a.bars, len(stock.events), len(res)),
          file=sys.stderr)


if __name__ == "__main__":
    main()
