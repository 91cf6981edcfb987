// Value types, schemas, flat rows and string interning (CEL.md §1).
//
// Every value is one 8-byte slot: an int64, a double, or an interned string id. A row is a
// schema-indexed array of slots; no per-value tags or variants exist on the hot path, the schema
// says how to read each slot. Strings are interned once (at input parsing or when a function
// builds one) so string equality is an integer compare.
#pragma once

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <cstring>
#include <initializer_list>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace cayuga {

enum class Type : uint8_t { Int, Float, String };

const char* to_string(Type t);  // "INT", "FLOAT", "STRING"

// One 8-byte value slot; the schema decides which member is live.
union Slot {
  int64_t i;
  double f;
  uint64_t s;  // interned string id
};
static_assert(sizeof(Slot) == 8);

inline Slot int_slot(int64_t v) { Slot s; s.i = v; return s; }
inline Slot float_slot(double v) { Slot s; s.f = v; return s; }
inline Slot string_slot(uint64_t id) { Slot s; s.s = id; return s; }

struct Attribute {
  std::string name;
  Type type;
  bool operator==(const Attribute&) const = default;
};

// The attribute list of a schema. Copies share one list (reference counted) and a change to a
// shared list copies it first, so copying a schema costs a counter increment: the analyzer copies
// schemas into every plan operator, and the automaton into every stream and node that has one
// (a million queries publish a million streams, mostly of a handful of distinct schemas).
// Reads are thread-safe like a const std::vector's; copies and destruction like a shared_ptr's.
class AttrList {
 public:
  AttrList() = default;
  AttrList(std::initializer_list<Attribute> init);
  AttrList(const AttrList& o) : rep_(o.rep_) {
    if (rep_) rep_->refs.fetch_add(1, std::memory_order_relaxed);
  }
  AttrList(AttrList&& o) noexcept : rep_(std::exchange(o.rep_, nullptr)) {}
  AttrList& operator=(const AttrList& o) {
    AttrList(o).swap(*this);
    return *this;
  }
  AttrList& operator=(AttrList&& o) noexcept {
    AttrList(std::move(o)).swap(*this);
    return *this;
  }
  ~AttrList() { unref(); }
  void swap(AttrList& o) noexcept { std::swap(rep_, o.rep_); }

  size_t size() const { return rep_ ? rep_->items.size() : 0; }
  bool empty() const { return size() == 0; }
  const Attribute& operator[](size_t i) const { return rep_->items[i]; }
  const Attribute* begin() const { return rep_ ? rep_->items.data() : nullptr; }
  const Attribute* end() const { return rep_ ? rep_->items.data() + rep_->items.size() : nullptr; }
  const Attribute& front() const { return rep_->items.front(); }
  const Attribute& back() const { return rep_->items.back(); }
  void push_back(Attribute a) { own().push_back(std::move(a)); }
  bool operator==(const AttrList& o) const {
    return rep_ == o.rep_ || std::equal(begin(), end(), o.begin(), o.end());
  }

 private:
  struct Rep {
    std::atomic<uint32_t> refs{1};
    std::vector<Attribute> items;
  };
  // The list, unshared (copied first if shared), for a change.
  std::vector<Attribute>& own();
  void unref() {
    if (rep_ && rep_->refs.fetch_sub(1, std::memory_order_acq_rel) == 1) delete rep_;
  }

  Rep* rep_ = nullptr;
};

struct Schema {
  AttrList attrs;

  size_t size() const { return attrs.size(); }
  std::optional<size_t> find(std::string_view name) const;
  // "Name, Price, Volume": used in error messages that list what exists.
  std::string names() const;
  // "(Name STRING, Price FLOAT, Volume INT)".
  std::string to_string() const;
  bool operator==(const Schema&) const = default;
};

// Append-only string table. Ids are dense, stable for the process lifetime, and id 0 is "".
// Thread-safe: intern() takes a lock; view() of an id the caller obtained is lock-free (entries
// and texts live in blocks that never move, published with release/acquire).
//
// A string costs its entry (16 bytes, with the text in place up to 15 bytes, else a pointer to
// it) and its share of the lookup table (8-byte slots, a quarter to a half of them used): 32 to
// 48 bytes for a short string, where a std::string and an unordered_map node took about 90.
// Input strings that keep changing (request ids, client addresses) are all kept
// (docs/architecture.md, "What is not there yet"), so what each costs matters.
class Interner {
 public:
  Interner();
  ~Interner();
  Interner(const Interner&) = delete;
  Interner& operator=(const Interner&) = delete;
  uint64_t intern(std::string_view s);
  std::string_view view(uint64_t id) const {
    const Entry* chunk =
        chunks_[(id >> kChunkBits) & (kMaxChunks - 1)].load(std::memory_order_acquire);
    return id < size_.load(std::memory_order_acquire) ? chunk[id & kChunkMask].view()
                                                      : std::string_view();
  }
  size_t size() const { return size_.load(std::memory_order_acquire); }
  // Asks the caches for the entry of an id the caller obtained, which view() reads (a string
  // longer than an entry keeps in place has its text elsewhere).
  void prefetch(uint64_t id) const {
    const Entry* chunk =
        chunks_[(id >> kChunkBits) & (kMaxChunks - 1)].load(std::memory_order_relaxed);
    if (chunk) __builtin_prefetch(chunk + (id & kChunkMask));
  }

  // The process-wide table used by the engine, the I/O adapters and the expression evaluator.
  static Interner& global();

 private:
  static constexpr unsigned kChunkBits = 14;
  static constexpr uint64_t kChunkMask = (uint64_t{1} << kChunkBits) - 1;
  static constexpr size_t kMaxChunks = size_t{1} << 18;  // 4G strings (ids fit 32 bits)

  // One string: bytes[15] <= kInline is the length of a text held in bytes[0, 15); otherwise
  // (kFar) the first 8 bytes point to the text and the next 4 hold its length.
  struct Entry {
    static constexpr uint8_t kInline = 15, kFar = 255;
    char bytes[16];
    std::string_view view() const {
      const uint8_t tag = static_cast<uint8_t>(bytes[15]);
      if (tag <= kInline) return std::string_view(bytes, tag);
      const char* text;
      uint32_t size;
      std::memcpy(&text, bytes, sizeof text);
      std::memcpy(&size, bytes + sizeof text, sizeof size);
      return std::string_view(text, size);
    }
  };
  static_assert(sizeof(Entry) == 16);
  // Copies `s` where it stays: into the current block of texts, or a block of its own.
  const char* store_text(std::string_view s);
  // The lookup table: open addressing over (hash's high 32 bits << 32 | id + 1), 0 = empty.
  static uint64_t hash(std::string_view s);
  void grow_table();

  std::mutex mu_;
  std::unique_ptr<std::atomic<Entry*>[]> chunks_;
  std::atomic<uint64_t> size_{0};
  std::vector<uint64_t> table_;
  std::vector<std::unique_ptr<char[]>> texts_;  // blocks of the texts kept out of place
  char* text_next_ = nullptr;                   // where the next short one goes
  size_t text_free_ = 0;                        // bytes left after text_next_
};

inline uint64_t intern(std::string_view s) { return Interner::global().intern(s); }
inline std::string_view interned(uint64_t id) { return Interner::global().view(id); }

// An event or instance value: t0 <= t1 and one slot per schema attribute.
struct Row {
  int64_t t0 = 0;
  int64_t t1 = 0;
  std::vector<Slot> values;
};

// A row as the engine hands it out (Engine::Sink): its values are the engine's, valid only
// during the call.
struct RowView {
  RowView(int64_t t0, int64_t t1, std::span<const Slot> values) : t0(t0), t1(t1), values(values) {}
  // Implicit: a Row goes wherever a view of one is asked for.
  RowView(const Row& row) : t0(row.t0), t1(row.t1), values(row.values) {}
  int64_t t0, t1;
  std::span<const Slot> values;
};

// Engine time unit (CEL.md §1: default milliseconds). Duration literals convert into it.
enum class EngineUnit : uint8_t { Us, Ms, S };
// Units per second of the engine unit: 1e6, 1e3, 1.
int64_t units_per_second(EngineUnit u);
std::optional<EngineUnit> parse_engine_unit(std::string_view s);  // "us" | "ms" | "s"

}  // namespace cayuga
