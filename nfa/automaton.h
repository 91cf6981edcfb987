// The automaton program: Cayuga's NFA for a set of queries (CEL.md §7).
//
// A node holds instances of one layout and reads one input stream. An event e affects an
// instance I when `I.t1 < e.t0` and the node's filter predicate holds on (I, e); I is then
// consumed. A FOLD node first tries its rebind predicate θ2: if it fails, I dies; otherwise the
// rebound copy (aggregates updated, last values := e) survives and the forward edges fire with
// it. A NEXT node fires its forward edges with the concatenation (I, e). A START node has no
// instances: every event of its stream fires its forward edges with the event itself.
//
// A forward edge ("emit") carries the produced row through a chain of stages (the FILTERs and
// SELECTs written around the operator, kept in order so each predicate keeps its own
// division-by-zero scope) and then either creates an instance at another node or publishes the
// row on a stream (a user-visible PUBLISH name or an internal stream that feeds the right-hand
// side of an outer NEXT/FOLD). Publishing is how resubscription works: a stream's readers
// receive the row in the same epoch.
//
// Row layouts: a NEXT instance is the left row as is. A FOLD instance is
//   [ S1 first values (n1) | aggregates of S1-only attributes | S2 last values (n2) ]
// so `$1.a`, `$.a` and the output row are all plain slot reads.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <limits>
#include <string>
#include <string_view>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "compiler/expr.h"
#include "compiler/fixed_vector.h"
#include "compiler/typed.h"

namespace cayuga::nfa {

inline constexpr int64_t kNoDurBound = std::numeric_limits<int64_t>::max();

enum class StreamKind : uint8_t { Input, Published, Internal };

struct Stream {
  std::string name;
  Schema schema;
  StreamKind kind = StreamKind::Input;
  std::vector<uint32_t> readers;  // nodes whose input is this stream
};

// Atoms name one of an event's first 65,536 attributes, which the index packs into 16 bits; a
// condition on a later one stays in its predicate only.
inline constexpr uint32_t kMaxAtomAttr = 65535;

// A condition on one attribute of an incoming event that must hold for an edge or a node to do
// anything with it: `attr op value`, compared as `cmp` (an INT attribute compared with a FLOAT
// constant is promoted). Guards are necessary conditions only: the full predicate still runs.
// They feed the global predicate index (index/), which sends each event to the few edges and
// nodes whose guards it satisfies.
struct Atom {
  enum class Op : uint8_t { Eq, Lt, Le, Gt, Ge };
  uint32_t attr = 0;
  Op op = Op::Eq;
  Type attr_type = Type::Int;
  Type cmp = Type::Int;
  Slot value{};
  bool operator==(const Atom& o) const {
    return op == o.op && attr == o.attr && attr_type == o.attr_type && cmp == o.cmp &&
           value.i == o.value.i;
  }
};

// Nodes, edges and stages exist once per query (or per shared prefix), so a million queries
// make millions of them: their small arrays are FixedVectors (one pointer, exact size) rather
// than std::vectors, and what is the same in many of them is stored once: slot maps are
// SharedArrays, programs share their bytecode, schemas their attribute lists.
struct Stage {
  enum class Kind : uint8_t { Filter, Map } kind = Kind::Filter;
  bool dur_only = false;          // Filter: `pred` says exactly DUR <= max_dur, nothing else
  int64_t max_dur = kNoDurBound;  // Filter: the DUR upper bound its predicate implies
  Program pred;                   // Filter: over the produced row (row 0); DUR = t1 - t0
  FixedVector<Program> items;     // Map: one value program per output attribute, or
  SharedArray<uint32_t> project;  // Map: when every item is a plain attribute: its slot
  SharedArray<Type> types;        // Map: item types (their count is the output width)
};

struct Emit {
  enum class Kind : uint8_t { ToNode, ToStream } kind = Kind::ToNode;
  // START edges: how many leading stages are FILTERs that say exactly what `guard` says (plain
  // `attr op constant` conjuncts). An index that checks the whole guard makes them redundant.
  uint8_t exact_stages = 0;
  uint32_t target = 0;  // node id or stream id
  // ToStream: the query (index into Automaton::queries) whose output this is; it goes when that
  // query is removed. ToNode edges go with their target node.
  uint32_t owner = 0;
  FixedVector<Stage> stages;
  // START edges: conditions on the event implied by the leading FILTER stages.
  std::vector<Atom> guard;
};

enum class NodeKind : uint8_t { Start, Next, Fold };

struct alignas(64) Node {
  // Laid out for the runtime, which meets nodes cold (a million queries make a million nodes):
  // the first cache line holds all that creating, compacting and expiring an instance and
  // visiting a NEXT node's instances read; FOLD's rebinding adds the second; the rest is for
  // building, explain and stats.
  NodeKind kind = NodeKind::Start;
  bool dead = false;          // every query using it was removed
  Type key_type = Type::Int;  // see key_slot
  bool filter_true = false;   // `filter` is TRUE: a visit need not run it

  // Per-node instance index: the filter requires instance slot `key_slot` = event slot
  // `key_attr` (a dynamic equality such as `$1.Name = $2.Name`) of type `key_type`, so instances
  // are bucketed by that slot's value and an event only visits its bucket. -1: no key.
  int32_t key_slot = -1;
  uint32_t key_attr = 0;

  // Instances (Next/Fold): `width` slots; built from an incoming row by `init`
  // (instance slot k := incoming slot init[k], or zero when init[k] < 0).
  uint32_t width = 0;
  // An instance whose t0 is more than `max_dur` before every future event's t1 can never
  // produce anything again (every path out of the node bounds DUR from above): free it.
  int64_t max_dur = kNoDurBound;
  SharedArray<int32_t> init;

  // The produced row: slot k := read(output[k]). NEXT reads row 0 = I and row 1 = e;
  // FOLD reads row 0 = the rebound instance. START copies the event.
  SharedArray<SlotRef> output;

  // θ (NEXT) or θ1 (FOLD), AND the FILTERs on a bare right-hand stream; less the conjuncts the
  // runtime decides before a visit when BuildOptions say so.
  Program filter;

  // FOLD: instance slots [last_base, last_base + n2) hold the last event's values.
  uint32_t last_base = 0;
  // FOLD: the rebind edge. aggregates: instance slot := value over (I, e);
  // then the last values (from last_base on) := the event's slots.
  Program rebind;
  FixedVector<std::pair<uint32_t, Program>> aggregates;

  std::vector<Emit> emits;

  uint32_t stream = 0;                // the stream it reads
  uint32_t query = 0;                 // 1-based query number that created it (explain, stats)
  uint32_t users = 0;                 // uses by live queries (a query using it twice counts twice)
  int64_t own_max_dur = kNoDurBound;  // the bound from the node's own predicates alone

  // Its schema (explain); one copy of each schema is shared by the automaton's streams and nodes.
  Schema output_schema;

  // Conditions on the event implied by the filter predicate (including `$1.a = $2.b` where every
  // instance holds the same constant in `a`), for the global index.
  std::vector<Atom> guard;

  // The automaton's count of nodes made before this one: unlike its id, it never changes
  // (drop_dead_nodes() renumbers), so signatures name a node's sources by it.
  uint64_t serial = 0;
};
static_assert(offsetof(Node, filter) + sizeof(Program) <= 64, "a NEXT visit reads one line");
static_assert(offsetof(Node, aggregates) + sizeof(FixedVector<std::pair<uint32_t, Program>>) <= 128,
              "a FOLD visit reads two");
static_assert(sizeof(Node) == 3 * 64, "a million queries make millions of nodes");

struct QueryInfo {
  uint32_t number = 0;  // 1-based position in its script
  uint32_t stream = 0;  // the stream id it publishes
  bool removed = false;
  std::string publish;
  // Every node it uses, shared ones included (with multiplicity); emptied when it is removed.
  FixedVector<uint32_t> nodes;
};

// A node's structural identity (nfa/build.cpp): a 128-bit keyed hash of everything that decides
// its behaviour and of its exact incoming edges. Two nodes are merged when their signatures are
// equal.
struct Signature {
  uint64_t lo = 0, hi = 0;
  bool operator==(const Signature&) const = default;
};

class Builder;  // nfa/build.cpp

// The whole program: streams and nodes. Immutable once built; the runtime keeps the state.
// The private part is the builder's: what later builds need to merge with and share.
struct Automaton {
  std::vector<Stream> streams;
  std::vector<Node> nodes;
  std::vector<QueryInfo> queries;

  // Stream id by name, or -1.
  int64_t find_stream(std::string_view name) const;
  uint32_t add_stream(Stream s);

 private:
  friend class Builder;
  friend std::vector<uint32_t> drop_dead_nodes(Automaton& a);
  struct SignatureHash {
    size_t operator()(const Signature& s) const { return static_cast<size_t>(s.lo); }
  };
  struct SchemaHash {
    size_t operator()(const Schema& s) const;
  };

  // Stream ids by name: open addressing over (name hash << 32 | id + 1), 0 = empty slot; the
  // names themselves live in `streams`.
  std::vector<uint64_t> stream_slots_;
  // Nodes by signature, for merging across builds (an entry may name a node that died since).
  std::unordered_map<Signature, uint32_t, SignatureHash> by_signature_;
  uint64_t next_serial_ = 0;  // Node::serial of the next node
  // One copy of each stream and node schema, which the others share (see AttrList); kept for
  // the automaton's lifetime (schemas are few).
  std::unordered_set<Schema, SchemaHash> schemas_;
  // The programs' bytecode and the slot maps, one copy of each.
  CodePool code_;
  SharedArray<int32_t>::Pool inits_;
  SharedArray<SlotRef>::Pool outputs_;
  SharedArray<uint32_t>::Pool projects_;
  SharedArray<Type>::Pool types_;
};

// Optimizations of the automaton build, each of which can be switched off (CAYUGA_NO_MERGE=1).
struct BuildOptions {
  bool merge = true;  // share structurally identical nodes and edges across queries
  // For a runtime that sends an event to a node only when the event satisfies the node's guard
  // (the global index): a node's filter leaves out the conjuncts the guard's atoms say all of
  // (`$2.Name = 'IBM'`, `$1.Name = $2.Name` when every instance holds 'IBM').
  bool index = false;
  // For a runtime that visits only the instances whose key equals the event's (the instance
  // index, Node::key_slot): a node's filter leaves out that equality.
  bool instance_index = false;
  // Called just before the build moves the nodes that were there before it (growing `nodes`
  // moves them, and the programs they hold by value with them), for a caller whose other
  // threads read those programs (a background JIT): it stops them. Nothing else a build does
  // moves or destroys a program that existed before it. Not called while `nodes` has room.
  std::function<void()> before_moving_nodes;
};

// Builds the automaton of an analyzed script (appending to `into`, so several scripts can share
// one program and one stream table; streams already in `into` are reused by name).
// Returns an error message when the script cannot be added (e.g. a schema clash with an existing
// stream); the automaton is unchanged in that case.
// `changes`, if given, gets what the build did to the nodes that were there before it.
struct BuildChanges;
std::string build(const AnalyzedScript& script, Automaton& into, const BuildOptions& options = {},
                  BuildChanges* changes = nullptr);
// The same, freeing each query's plan once it is built (the script's plans are empty after).
std::string build(AnalyzedScript&& script, Automaton& into, const BuildOptions& options = {},
                  BuildChanges* changes = nullptr);
// What a build changed besides adding nodes, streams and queries: the nodes that were there
// before it and gained emits (a START node gains one per new START edge; another node, when a
// query shares a prefix and goes on from it), each with the number of emits it had before.
// A runtime uses it to update its routes without going over every node.
struct BuildChanges {
  std::vector<std::pair<uint32_t, uint32_t>> extended;  // (node, emits before), each node once
};

// Sets the max_dur of every live node from `first_node` on from its own predicates and the
// bounds of its ways out (build() calls it; remove_query() recomputes its query's nodes alike,
// node by node). The nodes before `first_node` must not be affected by the ones it computes:
// build() passes its first new node when no older node gained a way out.
void compute_dur_bounds(Automaton& a, size_t first_node = 0);

// Removes query `id` (an index into a.queries): its published edges, and every node no other
// live query uses (with the edges into them), and recomputes the DUR bounds of the query's
// nodes (a node whose widest way out was the query's gets a narrower one). Calls `dropping` for
// each node before it is cleared and each edge before it is erased, so the caller can release what
// it holds for them. Returns the nodes that died. `erased`, if given, gets the emits erased from
// nodes that live on: (node, its index before).
std::vector<uint32_t> remove_query(Automaton& a, uint32_t id,
                                   const std::function<void(const Emit&)>& dropping_edge,
                                   const std::function<void(const Node&)>& dropping_node,
                                   std::vector<std::pair<uint32_t, uint32_t>>* erased = nullptr);

// Drops the nodes removed queries left behind (remove_query() keeps them, dead, so that ids
// stay stable between full rebuilds of a runtime's routes) and numbers the others densely, in
// the same order (a node's successors still come after it). Returns each old id's new one, or
// kDroppedNode. The nodes move, and their programs with them (see
// BuildOptions::before_moving_nodes).
inline constexpr uint32_t kDroppedNode = std::numeric_limits<uint32_t>::max();
std::vector<uint32_t> drop_dead_nodes(Automaton& a);

// `cayuga explain`: a text listing and a Graphviz DOT graph.
std::string to_text(const Automaton& a);
std::string to_dot(const Automaton& a);
// A one-line name for a node, e.g. "q1.n2 NEXT Stock" (query number, node id, kind, stream).
std::string label(const Automaton& a, uint32_t node);

}  // namespace cayuga::nfa
