// Line parsing and the bounded event queue of the service (see ingest.h).
#include "tools/serve/ingest.h"

#include <algorithm>

namespace cayuga::serve {

namespace {

bool blank(char c) {
  return c == ' ' || c == '\t' || c == '\r';
}

// Whether a JSON line names its time: a key "t", "t0" or "t1" (a string followed by ':').
// Heuristic but safe: a wrong "yes" makes the reader report the missing time; a wrong "no"
// makes it report a duplicate key. Neither accepts a bad line.
bool has_time_key(std::string_view line) {
  for (size_t p = line.find("\"t"); p != std::string_view::npos; p = line.find("\"t", p + 1)) {
    size_t q = p + 2;
    if (q < line.size() && (line[q] == '0' || line[q] == '1')) ++q;
    if (q >= line.size() || line[q] != '"') continue;
    ++q;
    while (q < line.size() && blank(line[q])) ++q;
    if (q < line.size() && line[q] == ':') return true;
  }
  return false;
}

struct Segment {
  bool json = false;
  std::string text;
  std::vector<uint64_t> lines;  // original line number of each segment line
  std::vector<uint8_t> arrival;
};

void add_error(std::vector<LineError>& errors, size_t max_errors, uint64_t* count, uint64_t line,
               std::string message) {
  if (count) ++*count;
  if (errors.size() < max_errors) errors.push_back(LineError{line, std::move(message)});
}

void flush(Segment& seg, const StreamSnapshot& snap, EngineUnit unit, Batch& out,
           std::vector<LineError>& errors, size_t max_errors, uint64_t* error_count) {
  if (seg.lines.empty()) return;
  InputSpec spec;
  spec.path = "request";
  spec.format = seg.json ? InputFormat::Jsonl : InputFormat::Cayuga;
  std::string err;
  auto reader = open_reader(spec, memory_byte_source(std::move(seg.text)), snap.table, unit, &err);
  if (!reader) {
    for (uint64_t ln : seg.lines) add_error(errors, max_errors, error_count, ln, err);
  } else {
    // Every segment line is non-blank, so each yields exactly one event or one error, in order.
    size_t next = 0;
    InputEvent ev;
    for (bool more = true; more;) {
      switch (reader->next(ev)) {
        case EventReader::Status::Event: {
          const size_t idx = next++;
          if (idx >= seg.lines.size()) {
            more = false;
            break;
          }
          const size_t offset = out.slots.size();
          out.slots.insert(out.slots.end(), ev.row.values.begin(), ev.row.values.end());
          out.events.push_back(EngineImpl::SlotEvent{ev.stream, ev.row.t0, ev.row.t1, offset});
          if (seg.arrival[idx]) out.arrival.push_back(static_cast<uint32_t>(out.events.size() - 1));
          break;
        }
        case EventReader::Status::Error: {
          const InputError& e = reader->error();
          if (e.line == 0 || e.line > seg.lines.size()) {
            add_error(errors, max_errors, error_count,
                      seg.lines[std::min(next, seg.lines.size() - 1)], e.message);
            more = false;
            break;
          }
          next = e.line;
          add_error(errors, max_errors, error_count, seg.lines[e.line - 1], e.message);
          break;
        }
        case EventReader::Status::End:
          more = false;
          break;
      }
    }
  }
  seg = Segment();
}

}  // namespace

void parse_lines(std::string_view text, const StreamSnapshot& snap, EngineUnit unit,
                 uint64_t first_line, Batch& out, std::vector<LineError>& errors, size_t max_errors,
                 uint64_t* error_count) {
  Segment seg;
  uint64_t ln = first_line;
  for (size_t pos = 0; pos < text.size(); ++ln) {
    size_t nl = text.find('\n', pos);
    std::string_view line = text.substr(pos, nl == std::string_view::npos ? nl : nl - pos);
    pos = nl == std::string_view::npos ? text.size() : nl + 1;
    size_t first = 0;
    while (first < line.size() && blank(line[first])) ++first;
    if (first == line.size()) continue;
    const bool json = line[first] == '{';
    if (!seg.lines.empty() && seg.json != json)
      flush(seg, snap, unit, out, errors, max_errors, error_count);
    seg.json = json;
    bool arrival = json && !has_time_key(line);
    if (arrival) {
      seg.text.append(line.substr(0, first + 1));
      seg.text += "\"t\":0,";
      seg.text.append(line.substr(first + 1));
    } else {
      seg.text.append(line);
    }
    seg.text += '\n';
    seg.lines.push_back(ln);
    seg.arrival.push_back(arrival);
  }
  flush(seg, snap, unit, out, errors, max_errors, error_count);
}

int64_t now_units(EngineUnit unit) {
  auto d = std::chrono::system_clock::now().time_since_epoch();
  switch (unit) {
    case EngineUnit::Us:
      return std::chrono::duration_cast<std::chrono::microseconds>(d).count();
    case EngineUnit::Ms:
      return std::chrono::duration_cast<std::chrono::milliseconds>(d).count();
    case EngineUnit::S:
      return std::chrono::duration_cast<std::chrono::seconds>(d).count();
  }
  return 0;
}

void EventQueue::enqueue(Batch&& b) {
  if (!b.arrival.empty()) {
    const int64_t t = std::max(now_units(unit_), last_stamp_);
    last_stamp_ = t;
    saw_arrival_ = true;
    for (uint32_t i : b.arrival) b.events[i].t0 = b.events[i].t1 = t;
  }
  accepted_ += b.size();
  depth_ += b.size();
  q_.push_back(std::move(b));
  not_empty_.notify_one();
}

bool EventQueue::try_push(Batch&& b) {
  std::lock_guard lock(mu_);
  if (closed_) return false;
  if (depth_ > 0 && depth_ + b.size() > capacity_) return false;
  enqueue(std::move(b));
  return true;
}

bool EventQueue::push_wait(Batch&& b) {
  std::unique_lock lock(mu_);
  not_full_.wait(lock, [&] { return closed_ || depth_ == 0 || depth_ + b.size() <= capacity_; });
  if (closed_) return false;
  enqueue(std::move(b));
  return true;
}

bool EventQueue::pop_all(std::vector<Batch>& out, std::chrono::milliseconds timeout,
                         int64_t* heartbeat) {
  std::unique_lock lock(mu_);
  not_empty_.wait_for(lock, timeout, [&] { return !q_.empty() || closed_; });
  out.clear();
  while (!q_.empty()) {
    out.push_back(std::move(q_.front()));
    q_.pop_front();
  }
  last_stamp_ = std::max(last_stamp_, now_units(unit_));
  if (heartbeat) *heartbeat = last_stamp_;
  return !(closed_ && out.empty());
}

void EventQueue::done(size_t n) {
  std::lock_guard lock(mu_);
  depth_ -= std::min(depth_, n);
  not_full_.notify_all();
}

void EventQueue::close() {
  std::lock_guard lock(mu_);
  closed_ = true;
  not_empty_.notify_all();
  not_full_.notify_all();
}

size_t EventQueue::depth() const {
  std::lock_guard lock(mu_);
  return depth_;
}
uint64_t EventQueue::accepted() const {
  std::lock_guard lock(mu_);
  return accepted_;
}
bool EventQueue::saw_arrival() const {
  std::lock_guard lock(mu_);
  return saw_arrival_;
}

}  // namespace cayuga::serve
