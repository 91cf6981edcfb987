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

Interner::Interner() : chunks_(new std::atomic<std::string*>[kMaxChunks]) {
  for (size_t i = 0; i < kMaxChunks; ++i) chunks_[i].store(nullptr, std::memory_order_relaxed);
  intern("");
}

Interner::~Interner() {
  for (size_t i = 0; i < kMaxChunks; ++i) delete[] chunks_[i].load(std::memory_order_relaxed);
}

uint64_t Interner::intern(std::string_view s) {
  std::lock_guard lock(mu_);
  if (auto it = ids_.find(s); it != ids_.end()) return it->second;
  uint64_t id = size_.load(std::memory_order_relaxed);
  if ((id >> kChunkBits) >= kMaxChunks) std::abort();  // 4G distinct strings
  std::string* chunk = chunks_[id >> kChunkBits].load(std::memory_order_relaxed);
  if (!chunk) {
    chunk = new std::string[kChunkMask + 1];
    chunks_[id >> kChunkBits].store(chunk, std::memory_order_release);
  }
  chunk[id & kChunkMask] = s;
  ids_.emplace(chunk[id & kChunkMask], id);
  size_.store(id + 1, std::memory_order_release);
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
