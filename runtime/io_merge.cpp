// k-way merge of readers by t1; ties go to the earlier reader.
#include <algorithm>

#include "runtime/io.h"

namespace cayuga {

MergeReader::MergeReader(std::vector<std::unique_ptr<EventReader>> readers)
    : readers_(std::move(readers)), head_(readers_.size()) {
  error_.file = "merge";
  heap_.reserve(readers_.size());
  for (size_t i = 0; i < readers_.size(); ++i) refill_.push_back(i);
}

bool MergeReader::less(size_t a, size_t b) const {
  const int64_t ta = head_[a].row.t1, tb = head_[b].row.t1;
  return ta != tb ? ta < tb : a < b;
}

EventReader::Status MergeReader::next(InputEvent& out) {
  if (readers_.size() == 1) {  // nothing to merge: the reader's events as they come
    const Status s = readers_[0]->next(out);
    if (s == Status::Error) error_ = readers_[0]->error();
    if (s == Status::Event) last_ = 0;
    return s;  // (refill_ keeps reader 0 for ready() and peek())
  }
  // std heap algorithms build a max-heap: invert the order.
  auto greater = [this](size_t a, size_t b) { return less(b, a); };
  // Read the next event of every reader whose head was handed out (all of them at the start).
  while (refill_pos_ < refill_.size()) {
    const size_t i = refill_[refill_pos_];
    Status s = readers_[i]->next(head_[i]);
    if (s == Status::Error) {
      error_ = readers_[i]->error();  // the next call asks the same reader again
      return Status::Error;
    }
    ++refill_pos_;
    if (s == Status::Event) {
      heap_.push_back(i);
      std::push_heap(heap_.begin(), heap_.end(), greater);
    }
  }
  refill_.clear();
  refill_pos_ = 0;
  if (heap_.empty()) return Status::End;
  std::pop_heap(heap_.begin(), heap_.end(), greater);
  const size_t i = heap_.back();
  heap_.pop_back();
  std::swap(out, head_[i]);  // swap, not copy: both keep their value capacity
  refill_.push_back(i);
  last_ = i;
  return Status::Event;
}

bool MergeReader::peek(size_t k, Lookahead& out) const {
  // One reader: its head is read again (refill_) before each pop, so the merge's next event is
  // the reader's next one.
  if (readers_.size() != 1 || refill_pos_ >= refill_.size()) return false;
  return readers_[0]->peek(k, out);
}

bool MergeReader::ready() const {
  for (size_t k = refill_pos_; k < refill_.size(); ++k)
    if (!readers_[refill_[k]]->ready()) return false;
  return true;
}

InputError MergeReader::late_error(int64_t t1, int64_t now) const {
  InputError e;
  e.file = last_ < readers_.size() ? std::string(readers_[last_]->name()) : "merge";
  e.line = line();
  e.message = "late event: t1 " + std::to_string(t1) + " is before the current time " +
              std::to_string(now) + " (input must be in non-decreasing t1)";
  return e;
}

uint64_t MergeReader::skipped() const {
  uint64_t n = 0;
  for (const auto& r : readers_) n += r->skipped();
  return n;
}

}  // namespace cayuga
