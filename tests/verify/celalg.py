"""A direct, deliberately naive evaluator of the CEL algebra (docs/CEL.md §5–6), used by the
independent verification scripts in this directory to compute expected outputs without cayuga.

It works on whole streams (lists of events), one operator at a time, exactly as §6 defines
them; it knows nothing about automata, epochs, indexes or merging:

  S1 NEXT{θ} S2      : for each e1, the S2 events e2 with e2.t0 > e1.t1 that satisfy θ and have
                       the smallest t1 among those (all ties); output [e1.t0, e2.t1].
  S1 FOLD{θ1,θ2,f} S2: each e1 starts a run r; the S2 events e with e.t0 > r.t1 satisfying θ1
                       with the smallest t1 are taken; for each, if θ2(r, e) the run extends
                       (first values kept, last := e, aggregates := f), is output as
                       [e1.t0, e.t1] and goes on; if θ2 fails that branch ends, no output.
  FILTER / SELECT    : per event; DUR = t1 - t0 (in NEXT/FOLD predicates: e.t1 - left.t0).
  Output names       : §5 (S1 names also in S2 get "_1", shifting taken names first).

Results are bags: every derivation is one event. Predicates are Python functions; floats are
Python doubles (IEEE, as the engine's). Python 3 standard library only.
"""
import bisect
import json

MIN = 60 * 1000          # engine unit: milliseconds
DAY = 24 * 60 * MIN


class Ev:
    __slots__ = ("t0", "t1", "v")

    def __init__(self, t0, t1, v):
        self.t0, self.t1, self.v = t0, t1, v   # v: dict in schema order


class Stream:
    """A bag of events sorted by t1, with its schema (attribute names in order)."""

    def __init__(self, schema, events):
        self.schema = list(schema)
        self.events = sorted(events, key=lambda e: e.t1)   # stable: keeps input order in an epoch
        self.t1s = [e.t1 for e in self.events]

    def after(self, t):
        """Index of the first event that could start after time t (t0 > t; inputs are points,
        and composite events have t0 <= t1, so every event with t0 > t has t1 > t)."""
        return bisect.bisect_right(self.t1s, t)


def joined_names(s1, s2):
    """CEL.md §5: S1's names, each one also in S2 suffixed with _1 (taken names shifted first).
    docs/semantics-notes.md adds: a shifted name that is also in S2 is shifted again."""
    names = list(s1)
    s2set = set(s2)

    def shift(i, name):       # give names[i] the name `name`, moving whatever is in the way
        while name in s2set:
            name += "_1"
        if name in names and names.index(name) != i:
            shift(names.index(name), name + "_1")
        names[i] = name

    for i in range(len(names)):
        if names[i] in s2set:
            shift(i, names[i] + "_1")
    return names


def FILTER(pred, s):
    return Stream(s.schema, [e for e in s.events if pred(e.v, e.t1 - e.t0)])


def SELECT(items, s):
    """items: list of (name, fn(values, dur))."""
    schema = [n for n, _ in items]
    assert len(set(schema)) == len(schema)
    out = []
    for e in s.events:
        d = e.t1 - e.t0
        out.append(Ev(e.t0, e.t1, {n: f(e.v, d) for n, f in items}))
    return Stream(schema, out)


def first_matches(s2, start, ok, horizon=None, left_t0=None):
    """Events of s2 from index `start` on that satisfy ok(e), keeping only those with the
    smallest t1 (all ties). `horizon` (optional) only stops the scan early; pass it only when a
    conjunct DUR <= horizon guards the result: in a NEXT predicate, or anywhere in a FOLD's θ1
    or θ2 (a θ1 candidate beyond the bound would fail θ2 and end the branch with no output,
    which is what finding no candidate does). DUR = e.t1 - left_t0 grows with t1."""
    found = []
    t_found = None
    for k in range(start, len(s2.events)):
        e = s2.events[k]
        if t_found is not None and e.t1 != t_found:
            break
        if horizon is not None and e.t1 - left_t0 > horizon:
            break
        if ok(e):
            found.append(e)
            t_found = e.t1
    return found


def NEXT(s1, theta, s2, horizon=None):
    """theta(l, r, dur): l = left (S1) values, r = $2 values."""
    names1 = joined_names(s1.schema, s2.schema)
    out = []
    for e1 in s1.events:
        for e2 in first_matches(s2, s2.after(e1.t1),
                                lambda e: e.t0 > e1.t1 and theta(e1.v, e.v, e.t1 - e1.t0),
                                horizon, e1.t0):
            v = {}
            for a, n in zip(s1.schema, names1):
                v[n] = e1.v[a]
            for a in s2.schema:
                v[a] = e2.v[a]
            out.append(Ev(e1.t0, e2.t1, v))
    return Stream(names1 + s2.schema, out)


def FOLD(s1, theta1, theta2, aggs, s2, horizon=None):
    """theta(l, d, r, dur): l = first (left) event's values ($1.a / a), d = last values ($.a:
    the previous S2 event's value for names in both schemas, the current aggregate for S1-only
    names), r = the incoming S2 event ($2.a). aggs: list of (name, fn(l, d, r, dur))."""
    names1 = joined_names(s1.schema, s2.schema)
    s2set = set(s2.schema)
    for a, _ in aggs:
        assert a in s1.schema and a not in s2set
    out = []
    for e1 in s1.events:
        # a run: (t1 of its last event, last values `d`)
        stack = [(e1.t1, dict(e1.v))]
        while stack:
            rt1, d = stack.pop()
            cands = first_matches(s2, s2.after(rt1),
                                  lambda e: e.t0 > rt1 and theta1(e1.v, d, e.v, e.t1 - e1.t0),
                                  horizon, e1.t0)
            for e in cands:
                dur = e.t1 - e1.t0
                if not theta2(e1.v, d, e.v, dur):
                    continue                       # this branch ends, no output
                nd = dict(d)
                newagg = {a: f(e1.v, d, e.v, dur) for a, f in aggs}
                for a in s1.schema:
                    if a in s2set:
                        nd[a] = e.v[a]             # last values := e
                nd.update(newagg)
                v = {}
                for a, n in zip(s1.schema, names1):
                    v[n] = e1.v[a] if a in s2set else nd[a]
                for a in s2.schema:
                    v[a] = e.v[a]
                out.append(Ev(e1.t0, e.t1, v))
                stack.append((e.t1, nd))
    return Stream(names1 + s2.schema, out)


def num(x):
    """JSON value of an attribute: whole floats print as integers (the e2e runner compares
    numbers by value), other floats in Python's shortest round-trip form."""
    if isinstance(x, float) and x == x and abs(x) != float("inf"):
        if x == int(x) and abs(x) < 1e15:
            return int(x)
    return x


def json_lines(name, s):
    """The stream as cayuga's JSON Lines (stream, t0, t1, attributes in schema order), sorted
    by t1 and then by text (the e2e runner compares each t1 group as a bag)."""
    out = []
    for e in s.events:
        d = {"stream": name, "t0": e.t0, "t1": e.t1}
        for a in s.schema:
            d[a] = num(e.v[a])
        out.append((e.t1, json.dumps(d, separators=(",", ":"))))
    out.sort()
    return [l for _, l in out]


def _selftest():
    """CEL.md §9's worked examples (run: python3 celalg.py)."""
    def stock(rows):
        return Stream(["Name", "Price", "Volume"],
                      [Ev(t0, t1, {"Name": n, "Price": float(p), "Volume": v})
                       for n, p, v, t0, t1 in rows])
    s = stock([("IBM", 10, 1, 1, 1), ("MSFT", 20, 1, 2, 2), ("IBM", 11, 1, 3, 3),
               ("IBM", 12, 1, 3, 3), ("MSFT", 21, 1, 4, 4)])
    t5 = NEXT(s, lambda l, r, dur: l["Name"] == r["Name"], s)
    assert t5.schema == ["Name_1", "Price_1", "Volume_1", "Name", "Price", "Volume"]
    assert [(e.t0, e.t1, e.v["Price_1"], e.v["Price"]) for e in t5.events] == \
        [(1, 3, 10, 11), (1, 3, 10, 12), (2, 4, 20, 21)]
    assert NEXT(t5, lambda l, r, dur: True, s).schema[:3] == ["Name_1_1", "Price_1_1", "Volume_1_1"]
    # docs/semantics-notes.md's two examples of the shift rule
    assert joined_names(["a", "b"], ["a", "a_1"]) == ["a_1_1", "b"]
    assert joined_names(["a", "a_1"], ["a"]) == ["a_1", "a_1_1"]
    s = stock([("IBM", 10, 1, 1, 1), ("MSFT", 50, 1, 2, 2), ("IBM", 11, 1, 3, 3),
               ("IBM", 12, 1, 4, 4), ("IBM", 9, 1, 5, 5)])
    s1 = SELECT([("Name", lambda v, d: v["Name"]), ("Price", lambda v, d: v["Price"]),
                 ("Volume", lambda v, d: v["Volume"]), ("cnt", lambda v, d: 1)], s)
    r = FOLD(s1, lambda l, d, e, dur: e["Name"] == d["Name"],
             lambda l, d, e, dur: e["Price"] > d["Price"],
             [("cnt", lambda l, d, e, dur: d["cnt"] + 1)], s)
    assert r.schema == ["Name_1", "Price_1", "Volume_1", "cnt", "Name", "Price", "Volume"]
    assert sorted((e.t0, e.t1, e.v["Price_1"], e.v["Price"], e.v["cnt"]) for e in r.events) == \
        [(1, 3, 10, 11, 2), (1, 4, 10, 12, 3), (3, 4, 11, 12, 2)]
    s = stock([("A", 10, 5000, 1000, 1000), ("B", 11, 10, 1000, 1000), ("C", 12, 7, 2000, 2000),
               ("A", 13, 8, 2500, 2500), ("B", 14, 9, 5000, 5000)])
    big = FILTER(lambda v, dur: v["Volume"] > 1000, s)
    after = NEXT(big, lambda l, r, dur: True, s)
    assert [(e.t0, e.t1, e.v["Name_1"], e.v["Name"]) for e in after.events] == [(1000, 2000, "A", "C")]
    quick = FILTER(lambda v, dur: dur <= 2000, NEXT(s, lambda l, r, dur: l["Name"] == r["Name"], s))
    assert [(e.t0, e.t1) for e in quick.events] == [(1000, 2500)]
    print("celalg: CEL.md §9 examples OK")


if __name__ == "__main__":
    _selftest()
