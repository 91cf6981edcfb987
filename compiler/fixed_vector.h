// FixedVector<T>: a heap array whose size is fixed when it is built; SharedArray<T>: the same
// for plain values, immutable, with copies sharing one allocation.
//
// The automaton keeps millions of small arrays that never change once built (an edge's stages,
// the nodes a query uses, a node's slot maps). A std::vector costs 24 bytes inline plus its
// growth slack; a FixedVector is one pointer (the element count is stored in front of the
// elements, in the same allocation) and allocates exactly what it holds. An empty one allocates
// nothing. Elements can be modified in place; the size cannot (assign a new one).
#pragma once

#include <algorithm>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <memory>
#include <new>
#include <type_traits>
#include <unordered_set>
#include <utility>
#include <vector>

namespace cayuga {

template <typename T>
class FixedVector {
 public:
  using value_type = T;
  using iterator = T*;
  using const_iterator = const T*;

  FixedVector() = default;
  FixedVector(std::initializer_list<T> init) { assign_copy(init.begin(), init.size()); }
  explicit FixedVector(const std::vector<T>& v) { assign_copy(v.data(), v.size()); }
  explicit FixedVector(std::vector<T>&& v) {
    if (v.empty()) return;
    T* d = allocate(v.size());
    size_t built = 0;
    try {
      for (; built < v.size(); ++built) new (d + built) T(std::move(v[built]));
    } catch (...) {
      destroy(d, built);
      throw;
    }
    data_ = d;
    v.clear();
  }
  FixedVector(const FixedVector& o) { assign_copy(o.data_, o.size()); }
  FixedVector(FixedVector&& o) noexcept : data_(std::exchange(o.data_, nullptr)) {}
  FixedVector& operator=(const FixedVector& o) {
    if (this != &o) FixedVector(o).swap(*this);
    return *this;
  }
  FixedVector& operator=(FixedVector&& o) noexcept {
    FixedVector(std::move(o)).swap(*this);
    return *this;
  }
  ~FixedVector() { clear(); }

  void swap(FixedVector& o) noexcept { std::swap(data_, o.data_); }
  void clear() {
    if (data_) destroy(data_, size());
    data_ = nullptr;
  }

  size_t size() const { return data_ ? header(data_)->size : 0; }
  bool empty() const { return data_ == nullptr; }
  T* data() { return data_; }
  const T* data() const { return data_; }
  T& operator[](size_t i) { return data_[i]; }
  const T& operator[](size_t i) const { return data_[i]; }
  T& front() { return data_[0]; }
  const T& front() const { return data_[0]; }
  T& back() { return data_[size() - 1]; }
  const T& back() const { return data_[size() - 1]; }
  T* begin() { return data_; }
  T* end() { return data_ + size(); }
  const T* begin() const { return data_; }
  const T* end() const { return data_ + size(); }

  bool operator==(const FixedVector& o) const {
    return size() == o.size() && std::equal(begin(), end(), o.begin());
  }

 private:
  struct Header {
    size_t size;
  };
  // The elements start after the header, rounded up to their alignment.
  static constexpr size_t kOffset = (sizeof(Header) + alignof(T) - 1) / alignof(T) * alignof(T);
  static_assert(alignof(T) <= __STDCPP_DEFAULT_NEW_ALIGNMENT__);

  static Header* header(T* d) {
    return reinterpret_cast<Header*>(reinterpret_cast<char*>(d) - kOffset);
  }
  static const Header* header(const T* d) {
    return reinterpret_cast<const Header*>(reinterpret_cast<const char*>(d) - kOffset);
  }
  // Raw storage for n elements, with the header set.
  static T* allocate(size_t n) {
    char* raw = static_cast<char*>(::operator new(kOffset + n * sizeof(T)));
    new (raw) Header{n};
    return reinterpret_cast<T*>(raw + kOffset);
  }
  // Destroys the first `built` elements and frees the storage.
  static void destroy(T* d, size_t built) {
    std::destroy_n(d, built);
    ::operator delete(reinterpret_cast<char*>(d) - kOffset);
  }
  void assign_copy(const T* src, size_t n) {
    if (n == 0) return;
    T* d = allocate(n);
    size_t built = 0;
    try {
      for (; built < n; ++built) new (d + built) T(src[built]);
    } catch (...) {
      destroy(d, built);
      throw;
    }
    data_ = d;
  }

  T* data_ = nullptr;
};

// An immutable array of plain values (integers, enums, small structs with operator== and an
// element_bits() overload) whose copies share one reference-counted allocation, and a pool that
// makes equal arrays share one copy. The automaton's nodes and stages have slot maps of a few
// distinct shapes whatever the number of queries (every NEXT over the same schemas has the same
// instance layout), so with a pool they cost one pointer each.
template <typename T>
class SharedArray {
  static_assert(std::is_trivially_copyable_v<T>);

 public:
  using value_type = T;
  using const_iterator = const T*;

  SharedArray() = default;
  explicit SharedArray(const std::vector<T>& v) {
    if (v.empty()) return;
    void* raw = ::operator new(sizeof(Header) + v.size() * sizeof(T));
    new (raw) Header{{1}, static_cast<uint32_t>(v.size())};
    data_ = reinterpret_cast<T*>(static_cast<char*>(raw) + sizeof(Header));
    std::copy(v.begin(), v.end(), data_);
  }
  SharedArray(const SharedArray& o) : data_(o.data_) {
    if (data_) header()->refs.fetch_add(1, std::memory_order_relaxed);
  }
  SharedArray(SharedArray&& o) noexcept : data_(std::exchange(o.data_, nullptr)) {}
  SharedArray& operator=(SharedArray o) noexcept {
    std::swap(data_, o.data_);
    return *this;
  }
  ~SharedArray() {
    if (data_ && header()->refs.fetch_sub(1, std::memory_order_acq_rel) == 1)
      ::operator delete(header());
  }

  size_t size() const { return data_ ? header()->size : 0; }
  bool empty() const { return data_ == nullptr; }
  const T* data() const { return data_; }
  const T& operator[](size_t i) const { return data_[i]; }
  const T* begin() const { return data_; }
  const T* end() const { return data_ + size(); }

  bool operator==(const SharedArray& o) const {
    return data_ == o.data_ || std::equal(begin(), end(), o.begin(), o.end());
  }

  // Interns arrays: intern(a) returns a copy of an equal array seen before, or of `a`. The pool
  // holds a reference on each array it knows; the ones only it still holds are dropped whenever
  // it has doubled in size. Not thread-safe.
  class Pool {
   public:
    SharedArray intern(SharedArray a) {
      if (a.empty()) return a;
      if (set_.size() >= sweep_at_) {
        std::erase_if(set_, [](const SharedArray& x) {
          return x.header()->refs.load(std::memory_order_acquire) == 1;
        });
        sweep_at_ = std::max<size_t>(64, 2 * set_.size());
      }
      return *set_.insert(std::move(a)).first;
    }

   private:
    struct Hash {
      size_t operator()(const SharedArray& a) const {
        uint64_t h = a.size();
        for (const T& x : a) {
          uint64_t bits;
          if constexpr (std::is_integral_v<T> || std::is_enum_v<T>) bits = static_cast<uint64_t>(x);
          else bits = element_bits(x);
          h = (h ^ bits) * 0x9e3779b97f4a7c15ull;
          h ^= h >> 29;
        }
        return static_cast<size_t>(h);
      }
    };
    std::unordered_set<SharedArray, Hash> set_;
    size_t sweep_at_ = 64;
  };

 private:
  struct Header {
    std::atomic<uint32_t> refs;
    uint32_t size;
  };
  static_assert(sizeof(Header) % alignof(T) == 0);
  Header* header() const {
    return reinterpret_cast<Header*>(reinterpret_cast<char*>(data_) - sizeof(Header));
  }

  T* data_ = nullptr;
};

}  // namespace cayuga
