// A line-based reader's two halves put together: next() (cut and parse one record), the batch
// halves for parsing on other threads, and BatchReader, which reads parsed batches back.
#include <cstdlib>

#include "runtime/io_internal.h"

namespace cayuga {
namespace io_detail {

EventReader::Status LineBasedReader::cut_record(char*& data, size_t& size, uint64_t& line) {
  if (Status s = read_line(data, size); s != Status::Event) return s;
  line = lines_.line_no();
  return Status::Event;
}

EventReader::Status LineBasedReader::next(InputEvent& out) {
  if (!scratch_) scratch_ = make_scratch();
  for (;;) {
    char* data;
    size_t size;
    uint64_t ln;
    if (Status s = cut_record(data, size, ln); s != Status::Event) return s;
    switch (parse_record(data, size, *scratch_, out, message_)) {
      case Parsed::Event:
        event_line_ = ln;
        return Status::Event;
      case Parsed::Error:
        return fail(ln, std::move(message_));
      case Parsed::Skip:
        ++skipped_;
        break;
    }
  }
}

void LineBasedReader::cut_batch(RecordBatch& out, size_t max_records, size_t max_bytes) {
  out.clear();
  while (out.records.size() < max_records && out.bytes.size() < max_bytes) {
    char* data;
    size_t size;
    uint64_t ln;
    Status s = cut_record(data, size, ln);
    if (s == Status::End) break;
    if (s == Status::Error) {
      out.error = error_;
      break;
    }
    out.records.push_back({out.bytes.size(), size, ln});
    out.bytes.append(data, size);
  }
  // Every End and every cutting error so far ends the reader; ask rather than assume.
  out.ended = ended_;
}

void LineBasedReader::parse_batch(RecordBatch& in, EventBatch& out) const {
  out.clear();
  out.items.reserve(in.records.size() + 2);
  std::unique_ptr<ParseScratch> scratch = make_scratch();
  scratch->defer_strings = fields_are_views();
  std::vector<DeferredString> strings;  // the batch's, interned at its end
  InputEvent ev;
  std::string message;
  uint64_t skipped = 0;
  for (const RecordBatch::Record& r : in.records) {
    EventBatch::Item item;
    scratch->strings.clear();
    switch (parse_record(in.bytes.data() + r.offset, r.size, *scratch, ev, message)) {
      case Parsed::Skip:
        ++skipped;
        continue;
      case Parsed::Event:
        item.status = Status::Event;
        item.stream = ev.stream;
        item.t0 = ev.row.t0;
        item.t1 = ev.row.t1;
        item.first = out.values.size();
        item.count = static_cast<uint32_t>(ev.row.values.size());
        out.values.insert(out.values.end(), ev.row.values.begin(), ev.row.values.end());
        for (auto [attr, text] : scratch->strings) strings.push_back({item.first + attr, text});
        break;
      case Parsed::Error:
        item.status = Status::Error;
        item.first = out.errors.size();
        out.errors.push_back(InputError{name_, r.line, std::move(message)});
        break;
    }
    item.line = r.line;
    item.skipped = skipped;
    skipped = 0;
    out.items.push_back(item);
  }
  intern_all(strings, out.values.data());
  if (in.error) {
    EventBatch::Item item;
    item.status = Status::Error;
    item.first = out.errors.size();
    item.skipped = skipped;
    skipped = 0;
    out.errors.push_back(*in.error);
    out.items.push_back(item);
  }
  if (in.ended) {
    EventBatch::Item item;
    item.status = Status::End;
    item.skipped = skipped;
    skipped = 0;
    out.items.push_back(item);
  }
  out.trailing_skipped = skipped;
}

}  // namespace io_detail

// ---------------------------------------------------------------------------------------------
// BatchReader

BatchReader::BatchReader(std::string name) : name_(std::move(name)) {
  error_.file = name_;
}

void BatchReader::push(EventBatch& batch) {
  if (batch.items.empty()) {
    // Only passed-over lines: they follow whatever is queued, and nothing waits for them.
    (queue_.empty() ? pending_skipped_ : queue_.back().trailing_skipped) += batch.trailing_skipped;
    ++done_;
    batch.clear();
    return;
  }
  queue_.push_back(std::move(batch));
  if (spent_.empty()) {
    batch = EventBatch();
  } else {
    batch = std::move(spent_.back());
    spent_.pop_back();
  }
}

void BatchReader::pop() {
  EventBatch& b = queue_.front();
  pending_skipped_ += b.trailing_skipped;
  // A few spare buffers cover the batches a producer has in flight; more would only hold memory.
  if (spent_.size() < 4) {
    b.clear();
    spent_.push_back(std::move(b));
  }
  queue_.pop_front();
  pos_ = 0;
  ++done_;
}

bool BatchReader::peek(size_t k, Lookahead& out) const {
  size_t at = pos_ + k;
  for (const EventBatch& b : queue_) {
    if (at >= b.items.size()) {
      at -= b.items.size();
      continue;
    }
    // The loop peeks once per event, a few events ahead of the one it reads: ask for what the
    // peeks further on will read. A batch was written on a parsing thread, often on the other
    // core, and each of its lines a first read would have to fetch from there: the item
    // kItemsAhead peeks on, and the values and candidates of the one kDataAhead on (its item
    // was asked for by an earlier peek). (Within this batch only: it holds thousands.)
    constexpr size_t kItemsAhead = 16, kDataAhead = 8;
    if (at + kItemsAhead < b.items.size()) __builtin_prefetch(&b.items[at + kItemsAhead]);
    if (at + kDataAhead < b.items.size()) {
      const EventBatch::Item& later = b.items[at + kDataAhead];
      if (later.status == Status::Event) {
        __builtin_prefetch(b.values.data() + later.first);
        if (b.matched) __builtin_prefetch(b.candidates.data() + later.cand_first);
      }
    }
    const EventBatch::Item& item = b.items[at];
    if (item.status != Status::Event) return false;
    out.stream = item.stream;
    out.values = b.values.data() + item.first;
    out.matched = b.matched;
    out.generation = b.generation;
    // (Empty unless the batch was matched: items are built with no candidates.)
    out.candidates = {b.candidates.data() + item.cand_first, item.cand_count};
    return true;
  }
  return false;
}

EventReader::Status BatchReader::next(InputEvent& out) {
  if (ended_) return Status::End;
  if (queue_.empty()) std::abort();  // not ready(): a caller's bug, never a reason to end
  const EventBatch& b = queue_.front();
  const EventBatch::Item& item = b.items[pos_];
  // The lines passed over before this item were read by the same next() call of the reader.
  skipped_ += pending_skipped_ + item.skipped;
  pending_skipped_ = 0;
  Status s = item.status;
  switch (s) {
    case Status::Event:
      out.stream = item.stream;
      out.row.t0 = item.t0;
      out.row.t1 = item.t1;
      out.row.values.assign(b.values.begin() + static_cast<ptrdiff_t>(item.first),
                            b.values.begin() + static_cast<ptrdiff_t>(item.first + item.count));
      line_ = item.line;
      break;
    case Status::Error:
      error_ = b.errors[item.first];
      break;
    case Status::End:
      ended_ = true;
      break;
  }
  if (++pos_ == b.items.size()) pop();
  return s;
}

}  // namespace cayuga
