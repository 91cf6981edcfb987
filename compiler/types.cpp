#include "compiler/types.h"

#include <cstdlib>

namespace cayuga {

const char* to_string(Type t) {
  switch (t) {
    case Type::Int: return "INT";
    case Type::Float: return "FLOAT";
    case Type::String: return "STRING";
  }
  return "?";
}

AttrList::AttrList(std::initializer_list<Attribute> init) {
  if (init.size() != 0) rep_ = new Rep{{1}, std::vector<Attribute>(init)};
}

std::vector<Attribute>& AttrList::own() {
  if (!rep_) {
    rep_ = new Rep;
  } else if (rep_->refs.load(std::memory_order_acquire) != 1) {
    Rep* copy = new Rep{{1}, rep_->items};
    unref();
    rep_ = copy;
  }
  return rep_->items;
}

std::optional<size_t> Schema::find(std::string_view name) const {
  for (size_t i = 0; i < attrs.size(); ++i)
    if (attrs[i].name == name) return i;
  return std::nullopt;
}

std::string Schema::names() const {
  std::string out;
  for (const auto& a : attrs) {
    if (!out.empty()) out += ", ";
    out += a.name;
  }
  return out;
}

std::string Schema::to_string() const {
  std::string out = "(";
  for (size_t i = 0; i < attrs.size(); ++i) {
    if (i) out += ", ";
    out += attrs[i].name;
    out += ' ';
    out += cayuga::to_string(attrs[i].type);
  }
  return out + ")";
}

Interner::Interner() : chunks_(new std::atomic<Entry*>[kMaxChunks]) {
  for (size_t i = 0; i < kMaxChunks; ++i) chunks_[i].store(nullptr, std::memory_order_relaxed);
  table_.assign(1024, 0);
  intern("");
}

Interner::~Interner() {
  for (size_t i = 0; i < kMaxChunks; ++i) delete[] chunks_[i].load(std::memory_order_relaxed);
}

uint64_t Interner::hash(std::string_view s) {
  return std::hash<std::string_view>()(s);
}

namespace {
// A slot of the lookup table: the hash's high half, and the id plus one (0: an empty slot).
constexpr uint64_t kIdPart = 0xFFFFFFFF;
uint64_t id_in(uint64_t slot) {
  return (slot & kIdPart) - 1;
}
}  // namespace

const char* Interner::store_text(std::string_view s) {
  constexpr size_t kBlock = 64 * 1024;
  if (s.size() > kBlock / 16) {  // a long text: a block of its own
    texts_.push_back(std::make_unique<char[]>(s.size()));
    std::memcpy(texts_.back().get(), s.data(), s.size());
    return texts_.back().get();
  }
  if (text_free_ < s.size()) {
    texts_.push_back(std::make_unique<char[]>(kBlock));
    text_next_ = texts_.back().get();
    text_free_ = kBlock;
  }
  char* at = text_next_;
  std::memcpy(at, s.data(), s.size());
  text_next_ += s.size();
  text_free_ -= s.size();
  return at;
}

void Interner::grow_table() {
  std::vector<uint64_t> bigger(table_.size() * 2, 0);
  const size_t mask = bigger.size() - 1;
  for (uint64_t slot : table_) {
    if (slot == 0) continue;
    size_t i = static_cast<size_t>(hash(view(id_in(slot)))) & mask;
    while (bigger[i] != 0) i = (i + 1) & mask;
    bigger[i] = slot;
  }
  table_.swap(bigger);
}

uint64_t Interner::intern(std::string_view s) {
  const uint64_t h = hash(s);
  std::lock_guard lock(mu_);
  const size_t mask = table_.size() - 1;
  size_t i = static_cast<size_t>(h) & mask;
  for (; table_[i] != 0; i = (i + 1) & mask) {
    const uint64_t slot = table_[i];
    if ((slot & ~kIdPart) == (h & ~kIdPart) && view(id_in(slot)) == s) return id_in(slot);
  }
  const uint64_t id = size_.load(std::memory_order_relaxed);
  if (id + 1 >= (uint64_t{1} << 32) || s.size() > UINT32_MAX) std::abort();  // 4G strings
  Entry* chunk = chunks_[id >> kChunkBits].load(std::memory_order_relaxed);
  if (!chunk) {
    chunk = new Entry[kChunkMask + 1];
    chunks_[id >> kChunkBits].store(chunk, std::memory_order_release);
  }
  Entry& e = chunk[id & kChunkMask];
  if (s.size() <= Entry::kInline) {
    if (!s.empty()) std::memcpy(e.bytes, s.data(), s.size());
    e.bytes[15] = static_cast<char>(s.size());
  } else {
    const char* text = store_text(s);
    const uint32_t size = static_cast<uint32_t>(s.size());
    std::memcpy(e.bytes, &text, sizeof text);
    std::memcpy(e.bytes + sizeof text, &size, sizeof size);
    e.bytes[15] = static_cast<char>(Entry::kFar);
  }
  table_[i] = (h & ~kIdPart) | (id + 1);
  size_.store(id + 1, std::memory_order_release);  // (view() of the new id may read it now)
  if (2 * (id + 1) > table_.size()) grow_table();
  return id;
}

Interner& Interner::global() {
  static Interner* table = new Interner();  // never destroyed: ids outlive static destructors
  return *table;
}

int64_t units_per_second(EngineUnit u) {
  switch (u) {
    case EngineUnit::Us: return 1000000;
    case EngineUnit::Ms: return 1000;
    case EngineUnit::S: return 1;
  }
  return 1000;
}

std::optional<EngineUnit> parse_engine_unit(std::string_view s) {
  if (s == "us") return EngineUnit::Us;
  if (s == "ms") return EngineUnit::Ms;
  if (s == "s") return EngineUnit::S;
  return std::nullopt;
}

}  // namespace cayuga
