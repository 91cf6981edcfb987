// Value types, schemas, flat rows and string interning (CEL.md §1).
//
// Every value is one 8-byte slot: an int64, a double, or an interned string id. A row is a
// schema-indexed array of slots; no per-value tags or variants exist on the hot path, the schema
// says how to read each slot. Strings are interned once (at input parsing or when a function
// builds one) so string equality is an integer compare.
#pragma once

#include <atomic>
#include <cstdint>
#include <cstring>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
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

struct Schema {
  std::vector<Attribute> attrs;

  size_t size() const { return attrs.size(); }
  std::optional<size_t> find(std::string_view name) const;
  // "Name, Price, Volume": used in error messages that list what exists.
  std::string names() const;
  // "(Name STRING, Price FLOAT, Volume INT)".
  std::string to_string() const;
  bool operator==(const Schema&) const = default;
};

// Append-only string table. Ids are dense, stable for the process lifetime, and id 0 is "".
// Thread-safe: intern() takes a lock; view() of an id the caller obtained is lock-free (strings
// live in fixed-size chunks that never move, published with release/acquire).
class Interner {
 public:
  Interner();
  ~Interner();
  uint64_t intern(std::string_view s);
  std::string_view view(uint64_t id) const {
    const std::string* chunk = chunks_[(id >> kChunkBits) & (kMaxChunks - 1)].load(
        std::memory_order_acquire);
    return id < size_.load(std::memory_order_acquire) ? std::string_view(chunk[id & kChunkMask])
                                                       : std::string_view();
  }
  size_t size() const { return size_.load(std::memory_order_acquire); }

  // The process-wide table used by the engine, the I/O adapters and the expression evaluator.
  static Interner& global();

 private:
  static constexpr unsigned kChunkBits = 14;
  static constexpr uint64_t kChunkMask = (uint64_t{1} << kChunkBits) - 1;
  static constexpr size_t kMaxChunks = size_t{1} << 18;  // 4G strings

  std::mutex mu_;
  std::unique_ptr<std::atomic<std::string*>[]> chunks_;
  std::atomic<uint64_t> size_{0};
  std::unordered_map<std::string_view, uint64_t> ids_;
};

inline uint64_t intern(std::string_view s) { return Interner::global().intern(s); }
inline std::string_view interned(uint64_t id) { return Interner::global().view(id); }

// An event or instance value: t0 <= t1 and one slot per schema attribute.
struct Row {
  int64_t t0 = 0;
  int64_t t1 = 0;
  std::vector<Slot> values;
};

// Engine time unit (CEL.md §1: default milliseconds). Duration literals convert into it.
enum class EngineUnit : uint8_t { Us, Ms, S };
// Units per second of the engine unit: 1e6, 1e3, 1.
int64_t units_per_second(EngineUnit u);
std::optional<EngineUnit> parse_engine_unit(std::string_view s);  // "us" | "ms" | "s"

}  // namespace cayuga
