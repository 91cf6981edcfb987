#!/usr/bin/env python3
"""Randomized differential test: `cayuga run` against celalg.py, the naive evaluator of the CEL
algebra (docs/CEL.md §5-7, docs/semantics-notes.md).

Each seed gives one small workload: one or two input streams, 1-4 queries built from a random
AST (FILTER, SELECT, NEXT, FOLD with aggregates, UNION, nesting on both sides, resubscription
to published streams, unions of publishers, default q<N> names) and 10-60 events with small
integer times, many of them simultaneous, and few distinct values so that predicates match
often. The AST is printed twice: as a CEL script for cayuga and as celalg calls (a Python
program) for the expected output. Outputs are compared as cayuga's e2e runner does: grouped
by t1 (groups in non-decreasing order), each group a bag, numbers by value.

With --variants every seed also runs under each engine option that must not change results
(--no-merge, --no-index, --no-instance-index, --jit on/off, two threads with every batch
split). A mismatch prints the seed, the script, the events, the celalg program and the diff,
then shrinks the case (queries, predicates, events) while the same variant still fails.

Left out on purpose, because celalg cannot state them exactly or CEL.md leaves them open:
division or modulo by anything that may be zero (the whole predicate is false, the SELECT item
or aggregate 0: celalg's short-circuiting lambdas cannot say that), FLOAT `%` and `^` (the C
library's), non-finite floats, INT overflow (Python ints do not wrap), `$.a` with an S1 and an
S2 `a` of different types, the functions other than LOWER, ABS, MIN and MAX, units other than
ms and SEC, other input formats, late events, and invalid scripts.

usage: fuzz_cel.py --cayuga PATH [--seeds A:B] [--variants] [--keep DIR] [--no-shrink]
                   [--max-failures N] [--time-limit SEC] [--show] [-q]
Exit status: 0 all seeds agree, 1 some mismatch (or no seed produced any output), 2 usage error.
Python 3 standard library only.
"""
import argparse
import collections
import copy
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import celalg  # noqa: E402

# ---------------------------------------------------------------------------------------------
# Names and types. Every attribute name has one type wherever it occurs (a `_1` suffix keeps
# the base name's type), so `$.a` of a FOLD never meets an S1 and an S2 `a` of different types,
# a case CEL.md does not settle.
TYPES = {
    "Name": "STRING", "Sym": "STRING", "N0": "STRING",
    "Price": "FLOAT", "Px": "FLOAT", "P0": "FLOAT", "mx": "FLOAT",
    "Volume": "INT", "Qty": "INT", "V0": "INT", "cnt": "INT", "tot": "INT", "du": "INT",
}
POOL = collections.defaultdict(list)
for _n, _t in TYPES.items():
    POOL[_t].append(_n)

INPUTS = {
    "Stock": ["Name", "Price", "Volume"],
    "Trade": ["Qty", "Name", "Price"],       # another order: exercises the _1 shift rule
}
VALUES = {"STRING": ["A", "B", "C"], "FLOAT": [1.0, 2.0, 3.0, 4.0, 5.0, 2.5],
          "INT": [0, 1, 2, 3, 4]}
CMP = {"=": "==", "!=": "!=", "<>": "!=", "<": "<", "<=": "<=", ">": ">", ">=": ">="}


def type_of(name):
    while name.endswith("_1"):
        name = name[:-2]
    return TYPES[name]


def compatible(a, b):
    return (a == "STRING") == (b == "STRING")


# ---------------------------------------------------------------------------------------------
# Expressions and predicates. cel() is CEL text, py() the Python text celalg's lambdas use.
# Arithmetic is printed flat (no parentheses) in both languages: + - * have the same
# precedence and associativity in CEL and Python, so the same text means the same thing.

class Ref:
    def __init__(self, side, var, name, bare=False):
        self.side, self.var, self.name, self.bare = side, var, name, bare   # side: 1, $, 2
        self.typ = type_of(name)

    def cel(self):
        if self.side == "$":
            return "$." + self.name
        if self.side == "2":
            return "$2." + self.name
        return self.name if self.bare else "$1." + self.name

    def py(self):
        return '%s["%s"]' % (self.var, self.name)


class Const:
    """unit: a duration literal; value stays in the engine unit (ms), the text uses the unit."""
    PER_MS = {"ms": 1, "MS": 1, "SEC": 1000}

    def __init__(self, value, typ, unit=None):
        self.value, self.typ, self.unit = value, typ, unit

    def cel(self):
        if self.typ == "STRING":
            return "'" + self.value.replace("'", "''") + "'"
        if self.unit == "ms":
            return "%dms" % self.value
        if self.unit:
            return "%d %s" % (self.value // self.PER_MS[self.unit], self.unit)
        return repr(self.value)

    def py(self):
        return json.dumps(self.value) if self.typ == "STRING" else repr(self.value)


class Dur:
    typ = "INT"

    def cel(self):
        return "DUR"

    def py(self):
        return "dur"


class Bin:
    def __init__(self, op, a, b):
        self.op, self.a, self.b = op, a, b
        self.typ = "INT" if a.typ == "INT" and b.typ == "INT" else "FLOAT"

    def cel(self):
        return "%s %s %s" % (self.a.cel(), self.op, self.b.cel())

    def py(self):
        return "%s %s %s" % (self.a.py(), self.op, self.b.py())


class Div:
    """a / c or a % c with c a nonzero constant: division by zero makes a whole predicate false
    (CEL.md §3), which celalg's short-circuiting lambdas cannot express. Parenthesized in CEL;
    helpers in Python, as CEL truncates INT division toward zero and gives % the dividend's
    sign, where Python floors."""

    def __init__(self, op, a, c):
        self.op, self.a, self.c = op, a, c
        self.typ = "INT" if a.typ == "INT" and c.typ == "INT" else "FLOAT"

    def cel(self):
        a = "(%s)" % self.a.cel() if isinstance(self.a, Bin) else self.a.cel()
        return "(%s %s %s)" % (a, self.op, self.c.cel())

    def py(self):
        if self.typ == "FLOAT":
            return "((%s) / %s)" % (self.a.py(), self.c.py())
        return "%s(%s, %s)" % ("tdiv" if self.op == "/" else "tmod", self.a.py(), self.c.py())


def tdiv(a, b):
    q = abs(a) // abs(b)
    return q if (a < 0) == (b < 0) else -q


def tmod(a, b):
    return a - b * tdiv(a, b)


class Func:
    PY = {"ABS": "abs", "MIN": "min", "MAX": "max"}

    def __init__(self, name, args):
        self.name, self.args = name, args
        if name == "LOWER":
            self.typ = "STRING"
        elif name == "ABS":
            self.typ = args[0].typ
        else:
            self.typ = "INT" if all(a.typ == "INT" for a in args) else "FLOAT"

    def cel(self):
        return "%s(%s)" % (self.name, ", ".join(a.cel() for a in self.args))

    def py(self):
        if self.name == "LOWER":
            return "(%s).lower()" % self.args[0].py()
        return "%s(%s)" % (self.PY[self.name], ", ".join(a.py() for a in self.args))


class Cmp:
    kids = ()

    def __init__(self, op, a, b):
        self.op, self.a, self.b = op, a, b

    def cel(self):
        return "%s %s %s" % (self.a.cel(), self.op, self.b.cel())

    def py(self):
        return "(%s %s %s)" % (self.a.py(), CMP[self.op], self.b.py())


class And:
    kids = ("a", "b")
    OP = ("AND", "and")

    def __init__(self, a, b):
        self.a, self.b = a, b

    def cel(self):
        return "%s %s %s" % (wrap(self.a), self.OP[0], wrap(self.b))

    def py(self):
        return "(%s %s %s)" % (self.a.py(), self.OP[1], self.b.py())


class Or(And):
    OP = ("OR", "or")


class Not:
    kids = ("a",)

    def __init__(self, a):
        self.a = a

    def cel(self):
        return "NOT (%s)" % self.a.cel()

    def py(self):
        return "(not %s)" % self.a.py()


def wrap(p):
    return "(%s)" % p.cel() if isinstance(p, And) else p.cel()


# ---------------------------------------------------------------------------------------------
# Stream expressions. schema: attribute names in order (types follow from TYPES).

class Base:
    kids = ()

    def __init__(self, name, schema):
        self.name, self.schema = name, list(schema)

    def py(self):
        return "S_" + self.name


class Filter:
    kids = ("child",)

    def __init__(self, pred, child):
        self.pred, self.child = pred, child
        self.schema = child.schema

    def py(self):
        return "FILTER(lambda v, dur: %s, %s)" % (self.pred.py(), self.child.py())


class Select:
    """items: ("*",) or (name, expr) where expr None is the plain reference `name`/`$1.name`."""
    kids = ("child",)

    def __init__(self, items, child, dollar1=False):
        self.items, self.child, self.dollar1 = items, child, dollar1
        self.schema = []
        for it in items:
            self.schema += child.schema if it[0] == "*" else [it[0]]

    def cel_items(self):
        out = []
        for it in self.items:
            if it[0] == "*":
                out.append("*")
            elif it[1] is None:
                out.append(("$1." if self.dollar1 else "") + it[0])
            elif isinstance(it[1], Ref) and it[1].name == it[0]:
                out.append(it[1].cel())
            else:
                out.append("%s AS %s" % (it[1].cel(), it[0]))
        return ", ".join(out)

    def py(self):
        fs = []
        for it in self.items:
            if it[0] == "*":
                fs += ['("%s", lambda v, dur: v["%s"])' % (n, n) for n in self.child.schema]
            elif it[1] is None:
                fs.append('("%s", lambda v, dur: v["%s"])' % (it[0], it[0]))
            else:
                fs.append('("%s", lambda v, dur: %s)' % (it[0], it[1].py()))
        return "SELECT([%s], %s)" % (", ".join(fs), self.child.py())


class Next:
    kids = ("left", "right")

    def __init__(self, left, pred, right, paren_left=False):
        self.left, self.pred, self.right, self.paren_left = left, pred, right, paren_left
        self.schema = celalg.joined_names(left.schema, right.schema) + right.schema

    def py(self):
        return "NEXT(%s, lambda l, r, dur: %s, %s)" % (
            self.left.py(), self.pred.py() if self.pred else "True", self.right.py())


class Fold:
    kids = ("left", "right")

    def __init__(self, left, th1, th2, aggs, right, paren_left=False):
        self.left, self.th1, self.th2, self.aggs, self.right = left, th1, th2, aggs, right
        self.paren_left = paren_left
        self.schema = celalg.joined_names(left.schema, right.schema) + right.schema

    def py(self):
        aggs = ", ".join('("%s", lambda l, d, r, dur: %s)' % (n, e.py()) for n, e in self.aggs)
        return "FOLD(%s, lambda l, d, r, dur: %s, lambda l, d, r, dur: %s, [%s], %s)" % (
            self.left.py(), self.th1.py() if self.th1 else "True",
            self.th2.py() if self.th2 else "True", aggs, self.right.py())


class Union:
    kids = ("a", "b")

    def __init__(self, a, b):
        assert a.schema == b.schema
        self.a, self.b, self.schema = a, b, a.schema

    def py(self):
        return "UNION(%s, %s)" % (self.a.py(), self.b.py())


def unary(s):
    """s printed where the grammar wants `unary`: a name, FILTER{...} unary or (query)."""
    if isinstance(s, Base):
        return s.name
    if isinstance(s, Filter):
        c = unary(s.child)
        return "FILTER{%s}%s%s" % (s.pred.cel(), "" if c.startswith("(") else " ", c)
    if isinstance(s, Select):
        return "(SELECT %s FROM %s)" % (s.cel_items(), stream(s.child))
    return "(%s)" % stream(s)


def seq(s):
    """s printed where the grammar wants `seq_expr` (NEXT/FOLD are left-associative)."""
    if isinstance(s, (Next, Fold)):
        left = seq(s.left) if isinstance(s.left, (Next, Fold)) and not s.paren_left \
            else unary(s.left)
        if isinstance(s, Next):
            op = "NEXT{%s}" % (s.pred.cel() if s.pred else "")
        else:
            args = [s.th1.cel() if s.th1 else "", s.th2.cel() if s.th2 else ""]
            args += ["%s AS %s" % (e.cel(), n) for n, e in s.aggs]
            op = "FOLD{%s}" % ", ".join(args) if any(args) else "FOLD{}"
        return "%s %s %s" % (left, op, unary(s.right))
    return unary(s)


def stream(s):
    if isinstance(s, Union):
        return "%s UNION %s" % (stream(s.a), seq(s.b))
    return seq(s)


class Query:
    def __init__(self, node, publish, default_name):
        self.node, self.publish, self.default_name = node, publish, default_name

    def name(self):
        return self.publish or self.default_name

    def cel(self):
        n = self.node
        text = "SELECT %s FROM %s" % (n.cel_items(), stream(n.child)) if isinstance(n, Select) \
            else stream(n)
        return text + (" PUBLISH " + self.publish if self.publish else "")


def dep_closure(queries, names):
    """`names` and every stream they depend on through the queries that publish them."""
    out, todo = set(), list(names)
    while todo:
        n = todo.pop()
        if n in out:
            continue
        out.add(n)
        for q in queries:
            if q.name() == n:
                todo += list(reads(q.node))
    return out


def reads(node):
    """Names of the streams a stream expression reads."""
    if isinstance(node, Base):
        return {node.name}
    out = set()
    for k in node.kids:
        out |= reads(getattr(node, k))
    return out


# ---------------------------------------------------------------------------------------------
# The workload: inputs, queries, events, and their two renderings.

class Workload:
    def __init__(self, inputs, queries, events, order=None):
        self.inputs = inputs            # names of the declared input streams
        self.queries = queries          # in generation (dependency) order
        self.events = events            # (stream, [values], t)
        self.order = order or list(range(len(queries)))   # script order of the queries

    def script(self):
        lines = ["CREATE STREAM %s (%s);" % (
            s, ", ".join("%s %s" % (a, type_of(a)) for a in INPUTS[s])) for s in self.inputs]
        lines += [self.queries[i].cel() + ";" for i in self.order]
        return "\n".join(lines) + "\n"

    def events_text(self):
        out = []
        for s, vals, t in self.events:
            out.append(",".join([fmt_value(v) for v in vals] + [s, str(t), str(t)]))
        return "\n".join(out) + ("\n" if out else "")

    def published(self):
        """Published names in dependency order, each with its publishers (query indexes)."""
        pubs = collections.OrderedDict()
        for i in self.order:
            pubs.setdefault(self.queries[i].name(), []).append(i)
        done, order = set(self.inputs), []

        def visit(name, path=()):
            if name in done:
                return
            assert name not in path, "cycle"
            for i in pubs[name]:
                for r in sorted(reads(self.queries[i].node)):
                    visit(r, path + (name,))
            done.add(name)
            order.append(name)
        for name in pubs:
            visit(name)
        return [(n, pubs[n]) for n in order]

    def program(self):
        """The celalg program (Python) computing the expected JSON lines into OUT."""
        lines = []
        for s in self.inputs:
            evs = ["Ev(%d, %d, {%s})" % (t, t, ", ".join(
                '"%s": %s' % (a, py_value(v, type_of(a))) for a, v in zip(INPUTS[s], vals)))
                for st, vals, t in self.events if st == s]
            lines.append("S_%s = Stream(%r, [%s])" % (s, INPUTS[s], ",\n    ".join(evs)))
        outs = []
        for name, pubs in self.published():
            exprs = [self.queries[i].node.py() for i in pubs]
            e = exprs[0]
            for x in exprs[1:]:
                e = "UNION(%s, %s)" % (e, x)
            lines.append("S_%s = %s" % (name, e))
            outs.append('json_lines("%s", S_%s)' % (name, name))
        lines.append("OUT = %s" % (" + ".join(outs) if outs else "[]"))
        return "\n".join(lines) + "\n"

    def standalone(self):
        return ("#!/usr/bin/env python3\n# Expected output of this case, by celalg.py.\n"
                "import sys\nsys.path.insert(0, %r)\n"
                "from celalg import Stream, Ev, FILTER, SELECT, NEXT, FOLD, json_lines\n\n"
                "def UNION(a, b):\n    assert a.schema == b.schema\n"
                "    return Stream(a.schema, a.events + b.events)\n\n"
                "def tdiv(a, b):    # INT division truncates toward zero (CEL.md §3)\n"
                "    q = abs(a) // abs(b)\n    return q if (a < 0) == (b < 0) else -q\n\n"
                "def tmod(a, b):\n    return a - b * tdiv(a, b)\n\n%s"
                "for line in OUT:\n    print(line)\n") % (HERE, self.program())


def fmt_value(v):
    return repr(v) if isinstance(v, float) else str(v)


def py_value(v, t):
    return json.dumps(v) if t == "STRING" else repr(float(v) if t == "FLOAT" else v)


# ---------------------------------------------------------------------------------------------
# Generation.

class Ctx:
    """Which references a predicate or expression may use: row (FILTER/SELECT: v), next (l, r)
    or fold (l, d, r), with S1's own names for $1 and $ (semantics-notes §Names)."""

    def __init__(self, kind, s1, s2=None):
        self.kind, self.s1, self.s2 = kind, s1, s2

    def ref(self, rng, side, name):
        var = {"1": "v" if self.kind == "row" else "l", "$": "d", "2": "r"}[side]
        return Ref(side, var, name, bare=rng.random() < 0.4)

    def sides(self):
        return {"row": ["1"], "next": ["1", "2"], "fold": ["1", "$", "2"]}[self.kind]

    def names(self, side):
        return self.s2 if side == "2" else self.s1


class Gen:
    def __init__(self, seed):
        self.rng = random.Random(seed)
        self.names = self.rng.sample(VALUES["STRING"], self.rng.choice([2, 2, 3]))

    # -- expressions
    def const(self, typ):
        r = self.rng
        if typ == "STRING":
            return Const(r.choice(self.names), typ)
        return Const(r.choice(VALUES[typ][:5] if typ == "INT" else VALUES[typ]), typ)

    def ref(self, ctx, typ=None, sides=None, exact=False):
        r = self.rng
        cands = [(s, n) for s in (sides or ctx.sides()) for n in ctx.names(s)
                 if typ is None or (type_of(n) == typ if exact else compatible(type_of(n), typ))]
        if not cands:
            return None
        s, n = r.choice(cands)
        return ctx.ref(r, s, n)

    def term(self, ctx, typ):
        """A numeric or string term (typ: 'num' or 'STRING')."""
        r = self.rng
        want = "STRING" if typ == "STRING" else "INT"
        a = self.ref(ctx, want)
        if a is None:
            return self.const("INT" if typ != "STRING" else "STRING")
        x = r.random()
        if typ == "STRING":
            return Func("LOWER", [a]) if x < 0.1 else a
        if x < 0.15:
            b = self.ref(ctx, "INT") if r.random() < 0.5 else self.const(r.choice(["INT", "FLOAT"]))
            return Bin(r.choice("+-*"), a, b)
        if x < 0.22:
            return Func(r.choice(["MIN", "MAX"]), [a, self.ref(ctx, "INT") or self.const("INT")])
        if x < 0.25:
            return Func("ABS", [Bin("-", a, self.ref(ctx, "INT") or self.const("INT"))])
        if x < 0.32:
            if r.random() < 0.5:
                a = Bin("-", a, self.ref(ctx, "INT") or self.const("INT"))
            op = "%" if a.typ == "INT" and r.random() < 0.4 else "/"
            return Div(op, a, Const(r.choice([2, 3, -2, 4]), "INT"))
        return a

    def atom(self, ctx):
        r = self.rng
        x = r.random()
        if x < 0.15:       # DUR bound, sometimes with a unit
            unit = r.choice(["ms", "MS"]) if r.random() < 0.2 else None
            if r.random() < 0.05:
                return Cmp(r.choice(["<", "<="]), Dur(), Const(1000, "INT", "SEC"))
            return Cmp(r.choice(["<", "<=", "<", "<=", ">", ">=", "="]), Dur(),
                       Const(r.randint(0, 6), "INT", unit))
        if ctx.kind != "row" and x < 0.55:        # across the two sides
            typ = "STRING" if r.random() < 0.5 else "num"
            a = self.ref(ctx, "STRING" if typ == "STRING" else "INT",
                         [s for s in ctx.sides() if s != "2"])
            b = self.ref(ctx, "STRING" if typ == "STRING" else "INT", ["2"])
            if a is not None and b is not None:
                if typ == "STRING" and r.random() < 0.1:
                    a = Func("LOWER", [a])
                    b = Func("LOWER", [b])
                op = "=" if typ == "STRING" and r.random() < 0.7 else r.choice(list(CMP))
                return Cmp(op, a, b) if r.random() < 0.8 else Cmp(op, b, a)
        if x < 0.8:        # a term against a constant
            typ = "STRING" if r.random() < 0.35 else "num"
            a = self.term(ctx, typ)
            c = self.const("STRING" if typ == "STRING" else r.choice(["INT", "FLOAT", a.typ]))
            if a.typ == "STRING" and isinstance(a, Func):
                c = Const(c.value.lower(), "STRING")
            op = r.choice(["=", "!=", "<", ">", "<=", ">="] if typ != "STRING"
                          else ["=", "=", "!=", "<>", "<", ">="])
            return Cmp(op, a, c)
        typ = "STRING" if r.random() < 0.3 else "num"   # two terms
        return Cmp(r.choice(list(CMP)), self.term(ctx, typ), self.term(ctx, typ))

    def pred(self, ctx, depth=2):
        r = self.rng
        x = r.random()
        if depth > 0 and x < 0.18:
            return And(self.pred(ctx, depth - 1), self.pred(ctx, depth - 1))
        if depth > 0 and x < 0.28:
            return Or(self.pred(ctx, depth - 1), self.pred(ctx, depth - 1))
        if depth > 0 and x < 0.34:
            return Not(self.pred(ctx, depth - 1))
        return self.atom(ctx)

    # -- streams
    def base(self, readable):
        r = self.rng
        ins = [n for n in readable if n in INPUTS]
        pubs = [n for n in readable if n not in INPUTS]
        name = r.choice(pubs) if pubs and r.random() < 0.45 else r.choice(ins)
        return Base(name, readable[name])

    def fresh(self, typ, taken):
        free = [n for n in POOL[typ] if n not in taken]
        return self.rng.choice(free) if free else None

    def select(self, child, extra_only=False):
        """A SELECT over child: `*` plus computed items, or a projection with renames."""
        r = self.rng
        ctx = Ctx("row", child.schema)
        if extra_only or r.random() < 0.4:
            items, taken = [("*",)], set(child.schema)
            for _ in range(r.choice([1, 1, 2]) if extra_only else r.choice([0, 1, 1, 2])):
                typ = r.choice(["INT", "INT", "FLOAT", "STRING"])
                n = self.fresh(typ, taken)
                if n is None:
                    continue
                if typ == "STRING":
                    e = self.ref(ctx, "STRING") or self.const("STRING")
                elif typ == "INT" and r.random() < 0.2:
                    e = Dur()
                else:       # a SELECT item's type is its expression's: exactly typ
                    e = r.choice([self.const(typ), self.ref(ctx, typ, exact=True)])
                    e = e or self.const(typ)
                items.append((n, e))
                taken.add(n)
            return Select(items, child)
        items, taken = [], set()
        k = r.randint(1, len(child.schema))
        for a in r.sample(child.schema, k):
            if r.random() < 0.3:
                n = self.fresh(type_of(a), taken | set(child.schema))
                if n:
                    items.append((n, ctx.ref(r, "1", a)))
                    taken.add(n)
                    continue
            if a not in taken:
                items.append((a, None))
                taken.add(a)
        if r.random() < 0.3:
            e = Dur() if r.random() < 0.3 else self.term(ctx, "num")
            n = self.fresh(e.typ, taken)
            if n:
                items.append((n, e))
                taken.add(n)
        return Select(items, child, dollar1=r.random() < 0.15)

    def stream(self, readable, depth):
        r = self.rng
        if depth <= 0:
            s = self.base(readable)
            return Filter(self.pred(Ctx("row", s.schema), 1), s) if r.random() < 0.3 else s
        x = r.random()
        if x < 0.12:
            return self.base(readable)
        if x < 0.27:
            c = self.stream(readable, depth - 1)
            return Filter(self.pred(Ctx("row", c.schema)), c)
        if x < 0.35:
            return self.select(self.stream(readable, depth - 1))
        if x < 0.40:
            c = self.stream(readable, depth - 1)
            return Union(Filter(self.pred(Ctx("row", c.schema), 1), c),
                         Filter(self.pred(Ctx("row", c.schema), 1), copy.deepcopy(c)))
        return self.binary(readable, depth, fold=x > 0.72)

    def binary(self, readable, depth, fold):
        r = self.rng
        left = self.stream(readable, depth - 1)
        right = self.stream(readable, depth - 1 - (r.random() < 0.6)) if r.random() < 0.5 \
            else self.base(readable)
        if fold and r.random() < 0.6:
            left = self.select(left, extra_only=True)     # S1-only attributes to aggregate
        pl = r.random() < 0.3
        if not fold:
            ctx = Ctx("next", left.schema, right.schema)
            pred = None if r.random() < 0.2 else self.pred(ctx)
            if pred is not None and r.random() < 0.3 and "Name" in left.schema \
                    and "Name" in right.schema:
                eq = Cmp("=", ctx.ref(r, "1", "Name"), ctx.ref(r, "2", "Name"))
                pred = eq if r.random() < 0.5 else And(eq, pred)
            return Next(left, pred, right, pl)
        ctx = Ctx("fold", left.schema, right.schema)
        shared_str = [n for n in left.schema if n in right.schema and type_of(n) == "STRING"]
        if shared_str and r.random() < 0.7:      # keeps runs few: same name
            n = r.choice(shared_str)
            th1 = Cmp("=", ctx.ref(r, "2", n), ctx.ref(r, r.choice("$1"), n))
            if r.random() < 0.3:
                th1 = And(th1, self.pred(ctx, 1))
        else:
            th1 = None if r.random() < 0.15 else self.pred(ctx, 1)
        th2 = None if r.random() < 0.25 else self.pred(ctx, 1)
        aggs = []
        s1only = [n for n in left.schema if n not in right.schema]
        for n in r.sample(s1only, min(len(s1only), r.choice([0, 1, 1, 2]))):
            e = self.agg(ctx, n)
            if e is not None:
                aggs.append((n, e))
        return Fold(left, th1, th2, aggs, right, pl)

    def agg(self, ctx, target):
        """An aggregate for S1-only `target`; no products, so values stay small."""
        r = self.rng
        t = type_of(target)
        me = ctx.ref(r, "$", target)
        if t == "STRING":
            return self.ref(ctx, "STRING", ["2", "$", "1"])
        other = self.ref(ctx, "INT" if t == "INT" else "FLOAT", ["2", "1"])
        if other is None or (t == "INT" and other.typ != "INT"):
            other = Const(1, "INT")
        x = r.random()
        if x < 0.3:
            return Bin("+", me, Const(1, "INT"))
        if x < 0.55:
            return Bin(r.choice("+-"), me, other)
        if x < 0.75:
            return Func(r.choice(["MIN", "MAX"]), [me, other])
        if x < 0.85 and t == "INT":
            return Dur()
        return other

    def workload(self):
        r = self.rng
        inputs = ["Stock"] + (["Trade"] if r.random() < 0.45 else [])
        readable = collections.OrderedDict((s, INPUTS[s]) for s in inputs)
        queries, nq = [], r.randint(1, 4)
        for i in range(1, nq + 1):
            node, same = None, []
            if queries and r.random() < 0.3:
                # Reuse an earlier query's subtree: shared automaton prefixes (node merging),
                # and a FILTER over a whole earlier query can publish to its name (a union).
                j = r.randrange(len(queries))
                sub = copy.deepcopy(r.choice(list(walk(queries[j].node))))
                if r.random() < 0.5 and not isinstance(sub, Base):
                    node = Filter(self.pred(Ctx("row", sub.schema)), sub)
                elif r.random() < 0.5:
                    node = Next(sub, self.pred(Ctx("next", sub.schema, sub.schema)),
                                copy.deepcopy(sub))
                    if len(set(node.schema)) != len(node.schema):
                        node = None
                else:
                    node = Filter(self.pred(Ctx("row", queries[j].node.schema)),
                                  copy.deepcopy(queries[j].node))
                    same = [queries[j].name()]
            if node is None:
                node = self.stream(readable, r.choice([1, 1, 2, 2, 3]))
                if r.random() < 0.4 and not isinstance(node, Select):
                    node = self.select(node)
            closure = dep_closure(queries, reads(node))
            same = [n for n in (same or list(readable)) if n not in INPUTS
                    and readable[n] == node.schema and n not in closure]
            x = r.random()
            if same and x < (0.7 if len(same) == 1 and same[0] in readable else 0.2):
                publish, default = r.choice(same), None
            elif x < 0.45 and not any(q.name() == "q%d" % i for q in queries):
                publish, default = None, "q%d" % i
            else:
                publish, default = "P%d" % i, None
            q = Query(node, publish, default)
            queries.append(q)
            readable[q.name()] = node.schema
        order = list(range(nq))
        if all(q.publish for q in queries) and r.random() < 0.3:
            r.shuffle(order)      # statement order does not matter (CEL.md §2)
        events, t = [], r.randint(0, 3)
        for _ in range(r.randint(10, 60)):
            t += r.choice([0, 0, 0, 1, 1, 1, 2, 3])
            s = r.choice(inputs) if len(inputs) > 1 and r.random() < 0.5 else "Stock"
            events.append((s, [self.const(type_of(a)).value for a in INPUTS[s]], t))
        return Workload(inputs, queries, events, order)


# ---------------------------------------------------------------------------------------------
# Expected output (celalg) and comparison.

class TooBig(Exception):
    pass


LIMIT = [0]
COUNT = [0]
PLAIN_EV = celalg.Ev


class CountingEv(PLAIN_EV):
    """celalg.Ev that gives up once a case has made too many events (FOLD runs branch on every
    tie, so a permissive FOLD over a long stream is exponential)."""
    __slots__ = ()

    def __init__(self, t0, t1, v):
        COUNT[0] += 1
        if COUNT[0] > LIMIT[0]:
            raise TooBig()
        PLAIN_EV.__init__(self, t0, t1, v)


def union(a, b):
    assert a.schema == b.schema
    return celalg.Stream(a.schema, a.events + b.events)


def expected(w, limit=20000):
    """The expected JSON lines, or None when the case makes more than `limit` events."""
    ns = {"Stream": celalg.Stream, "Ev": celalg.Ev, "FILTER": celalg.FILTER,
          "SELECT": celalg.SELECT, "NEXT": celalg.NEXT, "FOLD": celalg.FOLD,
          "json_lines": celalg.json_lines, "UNION": union, "tdiv": tdiv, "tmod": tmod}
    celalg.Ev = CountingEv      # the operators create their outputs through the module name
    COUNT[0], LIMIT[0] = 0, limit
    try:
        exec(w.program(), ns)
    except TooBig:
        return None
    finally:
        celalg.Ev = PLAIN_EV
    return ns["OUT"]


def canon_value(x):
    if x is None:
        return "null"
    if isinstance(x, bool):
        return "true" if x else "false"
    if isinstance(x, int):
        return str(x)
    if isinstance(x, float):
        if x == x and abs(x) != float("inf") and x == int(x) and abs(x) < 9.2e18:
            return str(int(x))
        return repr(x)
    if isinstance(x, str):
        return json.dumps(x, ensure_ascii=False)
    return json.dumps(x, sort_keys=True)


def canon(line):
    """(t1, canonical text) of one JSON line: key order kept, numbers by value (e2e runner)."""
    pairs = json.loads(line, object_pairs_hook=lambda p: p)
    t1 = dict(pairs)["t1"]
    return t1, "{" + ",".join(json.dumps(k) + ":" + canon_value(v) for k, v in pairs) + "}"


def group(lines, check_order):
    groups, last, err = collections.OrderedDict(), None, None
    for l in lines:
        if not l.strip():
            continue
        t1, c = canon(l)
        if check_order and last is not None and t1 < last and err is None:
            err = "t1 goes backwards: %s after t1=%s" % (l, last)
        last = t1
        groups.setdefault(t1, collections.Counter())[c] += 1
    return groups, err


def diff(exp_lines, act_lines):
    """Diff lines ('-' expected but missing, '+' unexpected) per t1 group; [] when equal."""
    exp, _ = group(exp_lines, False)
    act, err = group(act_lines, True)
    out = [err] if err else []
    for t1 in sorted(set(exp) | set(act)):
        e, a = exp.get(t1, collections.Counter()), act.get(t1, collections.Counter())
        miss, extra = e - a, a - e
        if miss or extra:
            out.append("t1=%s:" % t1)
            out += ["- " + l for l in sorted(miss.elements())]
            out += ["+ " + l for l in sorted(extra.elements())]
    return out


# ---------------------------------------------------------------------------------------------
# Running the engine.

VARIANTS = collections.OrderedDict([
    ("base", (["--threads", "1"], {})),
    ("no-merge", (["--threads", "1", "--no-merge"], {})),
    ("no-index", (["--threads", "1", "--no-index"], {})),
    ("no-instance-index", (["--threads", "1", "--no-instance-index"], {})),
    ("jit-on", (["--threads", "1", "--jit", "on"], {})),
    ("jit-off", (["--threads", "1", "--jit", "off"], {})),
    ("all-off", (["--threads", "1", "--jit", "off", "--no-merge", "--no-index",
                  "--no-instance-index"], {})),
    # Two workers, every batch however small split into tasks (as the .threads4 e2e suite).
    ("threads2", (["--threads", "2"], {"CAYUGA_PARALLEL_MIN_WORK": "1"})),
])


def run_engine(cayuga, w, variant, workdir):
    """(exit code, stdout lines, stderr) of `cayuga run` on the workload."""
    with open(os.path.join(workdir, "script.cel"), "w") as f:
        f.write(w.script())
    with open(os.path.join(workdir, "events.txt"), "w") as f:
        f.write(w.events_text())
    args, extra_env = VARIANTS[variant]
    env = {k: v for k, v in os.environ.items() if not k.startswith("CAYUGA_")}
    env.update(extra_env)
    cmd = [cayuga, "run", "script.cel", "--events", "events.txt", "--quiet"] + args
    try:
        p = subprocess.run(cmd, cwd=workdir, env=env, capture_output=True, text=True,
                           timeout=60)
    except subprocess.TimeoutExpired:
        return "timeout", [], ""
    return p.returncode, p.stdout.splitlines(), p.stderr


def check(cayuga, w, variant, exp, workdir):
    """None when the variant agrees with `exp`, else (kind, detail lines, actual lines)."""
    rc, out, err = run_engine(cayuga, w, variant, workdir)
    if rc != 0:
        return ("error", ["exit %s" % rc] + err.splitlines()[-20:], out)
    try:
        d = diff(exp, out)
    except (ValueError, KeyError, TypeError) as e:
        return ("bad-output", ["cannot parse output: %s" % e], out)
    return ("mismatch", d, out) if d else None


# ---------------------------------------------------------------------------------------------
# Shrinking: greedy passes over queries, predicates/operators and events while the same
# variant still fails the same way.

def freeze_names(w):
    w = copy.deepcopy(w)
    for q in w.queries:
        if q.publish is None:
            q.publish, q.default_name = q.default_name, None
    return w


def valid(w):
    known = set(w.inputs) | {q.name() for q in w.queries}
    return all(reads(q.node) <= known for q in w.queries) and bool(w.queries)


def drop_query(w, i):
    w = freeze_names(w)
    del w.queries[i]
    w.order = [j - (j > i) for j in w.order if j != i]
    return w if valid(w) else None


def slots(w):
    """(get, set) pairs over every stream node and predicate in the workload, in a fixed order."""
    out = []

    def node_slot(obj, attr):
        out.append((lambda: getattr(obj, attr), lambda v: setattr(obj, attr, v)))
        n = getattr(obj, attr)
        for k in n.kids:
            node_slot(n, k)
        for k in ("pred", "th1", "th2"):
            if getattr(n, k, None) is not None:
                pred_slot(n, k)

    def pred_slot(obj, attr):
        out.append((lambda: getattr(obj, attr), lambda v: setattr(obj, attr, v)))
        for k in getattr(obj, attr).kids:
            pred_slot(getattr(obj, attr), k)

    for q in w.queries:
        node_slot(q, "node")
    return out


def alternatives(x):
    """Simpler replacements for a node or predicate with the same schema."""
    if isinstance(x, Filter):
        return [x.child]
    if isinstance(x, Union):
        return [x.a, x.b]
    if isinstance(x, (And, Or)):
        return [x.a, x.b]
    if isinstance(x, Not):
        return [x.a]
    if isinstance(x, Fold) and x.aggs:
        return [Fold(x.left, x.th1, x.th2, x.aggs[:k] + x.aggs[k + 1:], x.right, x.paren_left)
                for k in range(len(x.aggs))]
    return []


def structural_candidates(w):
    for i in range(len(w.queries)):
        c = drop_query(w, i)
        if c is not None:
            yield c
    n = len(slots(w))
    for k in range(n):
        x = slots(w)[k][0]()
        for j in range(len(alternatives(x))):
            c = copy.deepcopy(w)
            get, put = slots(c)[k]
            put(alternatives(get())[j])
            yield c
    yield from empty_candidates(w)


def walk(n):
    yield n
    for k in n.kids:
        yield from walk(getattr(n, k))


def empty_candidates(w):
    count = sum(1 for q in w.queries for n in walk(q.node) for a in ("pred", "th1", "th2")
                if isinstance(n, (Next, Fold)) and getattr(n, a, None) is not None)
    for k in range(count):
        c = copy.deepcopy(w)
        i = 0
        for q in c.queries:
            for n in walk(q.node):
                for a in ("pred", "th1", "th2"):
                    if isinstance(n, (Next, Fold)) and getattr(n, a, None) is not None:
                        if i == k:
                            setattr(n, a, None)
                        i += 1
        yield c


def shrink(cayuga, w, variant, kind, workdir, budget=180.0):
    """Greedy shrinking while `variant` still fails with the same kind."""
    deadline = time.time() + budget

    def fails(c):
        if time.time() > deadline:
            return False
        e = expected(c)
        if e is None:
            return False
        r = check(cayuga, c, variant, e, workdir)
        return r is not None and r[0] == kind

    progress = True
    while progress and time.time() < deadline:
        progress = False
        for c in structural_candidates(w):
            if fails(c):
                w, progress = c, True
                break
        if progress:
            continue
        # events: ddmin-like, chunks from half down to single events
        n = len(w.events) // 2
        while n >= 1 and time.time() < deadline:
            i, removed = 0, False
            while i < len(w.events):
                c = copy.copy(w)
                c.events = w.events[:i] + w.events[i + n:]
                if fails(c):
                    w, removed, progress = c, True, True
                else:
                    i += n
            if not removed:
                n //= 2
    return w


# ---------------------------------------------------------------------------------------------
# Driver.

def report(seed, variant, w, exp, res, out=sys.stdout, title="MISMATCH"):
    kind, detail, actual = res
    p = lambda s="": print(s, file=out)  # noqa: E731
    p("=" * 100)
    p("%s seed=%s variant=%s (%s) kind=%s" % (title, seed, variant,
                                             " ".join(VARIANTS[variant][0]), kind))
    p("--- script.cel")
    p(w.script().rstrip())
    p("--- events.txt (%d events)" % len(w.events))
    p(w.events_text().rstrip())
    p("--- celalg program")
    p(w.program().rstrip())
    p("--- expected (%d lines)" % len(exp))
    for l in exp:
        p(l)
    p("--- actual (%d lines)" % len(actual))
    for l in actual:
        p(l)
    p("--- diff (- expected, missing; + unexpected)")
    for l in detail:
        p(l)


def save(d, w, exp, actual, variant):
    os.makedirs(d, exist_ok=True)
    for name, text in (("script.cel", w.script()), ("events.txt", w.events_text()),
                       ("expected.py", w.standalone()),
                       ("expected.jsonl", "".join(l + "\n" for l in exp)),
                       ("actual.jsonl", "".join(l + "\n" for l in actual)),
                       ("cmd.txt", "cayuga run script.cel --events events.txt --quiet %s\n%s\n"
                        % (" ".join(VARIANTS[variant][0]),
                           " ".join("%s=%s" % kv for kv in VARIANTS[variant][1].items()))),):
        with open(os.path.join(d, name), "w") as f:
            f.write(text)


def run_seed(args, seed, workdir):
    """Returns (status, info): status 'ok', 'skip' (too many events) or 'fail'."""
    w = Gen(seed).workload()
    exp = expected(w)
    if exp is None:       # too big: the same workload with a quarter of the events
        w.events = w.events[:max(10, len(w.events) // 4)]
        exp = expected(w)
        if exp is None:
            return "skip", None
    variants = list(VARIANTS) if args.variants else ["base"]
    for v in variants:
        res = check(args.cayuga, w, v, exp, workdir)
        if res is not None:
            return "fail", (seed, v, w, exp, res)
    return "ok", len(exp)


def parse_seeds(s):
    if ":" in s:
        a, b = s.split(":", 1)
        return range(int(a), int(b))
    return range(int(s), int(s) + 1)


def main():
    ap = argparse.ArgumentParser(
        description="Differential test of `cayuga run` against tests/verify/celalg.py on "
                    "random CEL workloads (docs/CEL.md §5-7).")
    ap.add_argument("--cayuga", required=True, help="path to the cayuga binary")
    ap.add_argument("--seeds", default="0:100", help="seed range A:B (B excluded) or one seed")
    ap.add_argument("--variants", action="store_true",
                    help="also run every engine variant (%s)" % ", ".join(list(VARIANTS)[1:]))
    ap.add_argument("--keep", metavar="DIR",
                    help="write each failing case (and its shrunk form) under DIR/seed<N>/")
    ap.add_argument("--no-shrink", action="store_true", help="do not shrink failing cases")
    ap.add_argument("--max-failures", type=int, default=20,
                    help="stop after this many failing seeds (default 20)")
    ap.add_argument("--time-limit", type=float, default=0,
                    help="stop starting new seeds after SEC seconds (0: no limit)")
    ap.add_argument("--show", action="store_true",
                    help="print each seed's script, events and celalg program, then run it")
    ap.add_argument("-q", "--quiet", action="store_true",
                    help="no progress lines: only failures and the summary")
    args = ap.parse_args()
    args.cayuga = os.path.abspath(args.cayuga)
    if not os.access(args.cayuga, os.X_OK):
        print("fuzz_cel: %s is not executable" % args.cayuga, file=sys.stderr)
        return 2
    seeds = parse_seeds(args.seeds)
    start = time.time()
    stats = collections.Counter()
    failures = []
    workdir = tempfile.mkdtemp(prefix="fuzz_cel.")
    try:
        for seed in seeds:
            if args.time_limit and time.time() - start > args.time_limit:
                break
            if args.show:
                w = Gen(seed).workload()
                print("### seed %d\n%s--- events\n%s--- celalg\n%s" % (
                    seed, w.script(), w.events_text(), w.program()))
            status, info = run_seed(args, seed, workdir)
            stats[status] += 1
            n = stats["ok"] + stats["skip"] + stats["fail"]
            if not args.quiet and n % 100 == 0:
                print("fuzz_cel: %d seeds done (last %d), %d failed, %.0f s" % (
                    n, seed, stats["fail"], time.time() - start), flush=True)
            if status == "ok":
                stats["outputs"] += info
            if status != "fail":
                continue
            seed, v, w, exp, res = info
            failures.append((seed, v, res[0]))
            report(seed, v, w, exp, res)
            if args.keep:
                save(os.path.join(args.keep, "seed%d" % seed), w, exp, res[2], v)
            if not args.no_shrink:
                s = shrink(args.cayuga, w, v, res[0], workdir)
                se = expected(s)
                sr = check(args.cayuga, s, v, se, workdir)
                if sr is not None:
                    report(seed, v, s, se, sr, title="SHRUNK")
                    if args.keep:
                        save(os.path.join(args.keep, "seed%d" % seed, "shrunk"), s, se, sr[2], v)
            sys.stdout.flush()
            if len(failures) >= args.max_failures:
                break
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    n = stats["ok"] + stats["skip"] + stats["fail"]
    print("fuzz_cel: %d seeds (%d ok, %d skipped as too big, %d failed), %d expected outputs, "
          "%s, %.1f s" % (n, stats["ok"], stats["skip"], stats["fail"], stats["outputs"],
                          "all variants" if args.variants else "base variant only",
                          time.time() - start))
    for seed, v, kind in failures:
        print("  FAIL seed=%d variant=%s kind=%s" % (seed, v, kind))
    if not failures and stats["ok"] > 0 and stats["outputs"] == 0:
        # Agreement on nothing at all proves nothing: the generator has stopped making matches.
        print("fuzz_cel: no seed produced any output: the comparison was vacuous")
        return 1
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
