// e2e_runner: runs one declarative end-to-end case (tests/cases/*.test) against the `cayuga` CLI.
//
//   e2e_runner [runner options] <path-to-cayuga> <case.test> [extra cayuga args...]
//
// Runner options (before the positional arguments):
//   --root DIR      repository root for `events file:` / `input:` paths and ${ROOT}
//                   (default: $CAYUGA_E2E_ROOT, else the case file's directory/../..)
//   --timeout SEC   kill `cayuga` after SEC seconds (default 60, or $CAYUGA_E2E_TIMEOUT)
//   --keep          keep the temporary directory (also $CAYUGA_E2E_KEEP=1)
//   -v, --verbose   print the command line, stdout and stderr even on success
//
// Extra cayuga args are appended to every `cayuga run`, after the case's own `args:`; the
// environment variable CAYUGA_E2E_ARGS (split on whitespace, quotes honoured) is appended after them.
// The case file format is documented in tests/cases/README.md. Exit code: 0 pass, 1 fail,
// 2 malformed case or usage error.

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <optional>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

namespace fs = std::filesystem;

namespace {

// ---------------------------------------------------------------------------------------------
// Minimal JSON

struct JVal {
    enum Kind { Null, Bool, Num, Str, Obj, Arr } kind = Null;
    bool b = false;
    std::string s;        // string value, or the raw text of a number
    bool is_int = false;  // number written without fraction/exponent that fits int64
    std::int64_t i = 0;
    double d = 0;
    std::vector<std::pair<std::string, JVal>> obj;
    std::vector<JVal> arr;
};

class JsonParser {
public:
    explicit JsonParser(const std::string& text, std::size_t pos = 0) : t_(text), p_(pos) {}

    // Parses one value; on failure returns false and sets err.
    bool parse_value(JVal& out, std::string& err) {
        try {
            ws();
            value(out, 0);
            return true;
        } catch (const std::string& e) {
            err = e;
            return false;
        }
    }
    bool at_end_after_ws() {
        ws();
        return p_ >= t_.size();
    }
    std::size_t pos() const { return p_; }

private:
    const std::string& t_;
    std::size_t p_;

    [[noreturn]] void fail(const std::string& what) {
        throw std::string(what + " at offset " + std::to_string(p_));
    }
    void ws() {
        while (p_ < t_.size() && (t_[p_] == ' ' || t_[p_] == '\t' || t_[p_] == '\n' || t_[p_] == '\r')) ++p_;
    }
    char peek() { return p_ < t_.size() ? t_[p_] : '\0'; }
    void expect(char c) {
        if (peek() != c) fail(std::string("expected '") + c + "'");
        ++p_;
    }
    bool lit(const char* w) {
        std::size_t n = std::strlen(w);
        if (t_.compare(p_, n, w) == 0) {
            p_ += n;
            return true;
        }
        return false;
    }
    static void utf8(std::string& o, std::uint32_t cp) {
        if (cp < 0x80) {
            o += char(cp);
        } else if (cp < 0x800) {
            o += char(0xC0 | (cp >> 6));
            o += char(0x80 | (cp & 0x3F));
        } else if (cp < 0x10000) {
            o += char(0xE0 | (cp >> 12));
            o += char(0x80 | ((cp >> 6) & 0x3F));
            o += char(0x80 | (cp & 0x3F));
        } else {
            o += char(0xF0 | (cp >> 18));
            o += char(0x80 | ((cp >> 12) & 0x3F));
            o += char(0x80 | ((cp >> 6) & 0x3F));
            o += char(0x80 | (cp & 0x3F));
        }
    }
    std::uint32_t hex4() {
        if (p_ + 4 > t_.size()) fail("truncated \\u escape");
        std::uint32_t v = 0;
        for (int k = 0; k < 4; ++k) {
            char c = t_[p_++];
            v <<= 4;
            if (c >= '0' && c <= '9') v |= std::uint32_t(c - '0');
            else if (c >= 'a' && c <= 'f') v |= std::uint32_t(c - 'a' + 10);
            else if (c >= 'A' && c <= 'F') v |= std::uint32_t(c - 'A' + 10);
            else fail("bad \\u escape");
        }
        return v;
    }
    std::string str() {
        expect('"');
        std::string o;
        for (;;) {
            if (p_ >= t_.size()) fail("unterminated string");
            char c = t_[p_++];
            if (c == '"') break;
            if (static_cast<unsigned char>(c) < 0x20) fail("control character in string");
            if (c != '\\') {
                o += c;
                continue;
            }
            if (p_ >= t_.size()) fail("unterminated escape");
            char e = t_[p_++];
            switch (e) {
            case '"': o += '"'; break;
            case '\\': o += '\\'; break;
            case '/': o += '/'; break;
            case 'b': o += '\b'; break;
            case 'f': o += '\f'; break;
            case 'n': o += '\n'; break;
            case 'r': o += '\r'; break;
            case 't': o += '\t'; break;
            case 'u': {
                std::uint32_t cp = hex4();
                if (cp >= 0xD800 && cp < 0xDC00 && t_.compare(p_, 2, "\\u") == 0) {
                    p_ += 2;
                    std::uint32_t lo = hex4();
                    if (lo >= 0xDC00 && lo < 0xE000) cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
                    else fail("bad surrogate pair");
                }
                utf8(o, cp);
                break;
            }
            default: fail("bad escape");
            }
        }
        return o;
    }
    void number(JVal& v) {
        std::size_t start = p_;
        bool frac = false;
        if (peek() == '-') ++p_;
        if (!std::isdigit(static_cast<unsigned char>(peek()))) fail("bad number");
        while (std::isdigit(static_cast<unsigned char>(peek()))) ++p_;
        if (peek() == '.') {
            frac = true;
            ++p_;
            if (!std::isdigit(static_cast<unsigned char>(peek()))) fail("bad number");
            while (std::isdigit(static_cast<unsigned char>(peek()))) ++p_;
        }
        if (peek() == 'e' || peek() == 'E') {
            frac = true;
            ++p_;
            if (peek() == '+' || peek() == '-') ++p_;
            if (!std::isdigit(static_cast<unsigned char>(peek()))) fail("bad number");
            while (std::isdigit(static_cast<unsigned char>(peek()))) ++p_;
        }
        v.kind = JVal::Num;
        v.s = t_.substr(start, p_ - start);
        v.d = std::strtod(v.s.c_str(), nullptr);
        if (!frac) {
            errno = 0;
            char* end = nullptr;
            long long x = std::strtoll(v.s.c_str(), &end, 10);
            if (errno == 0 && end && *end == '\0') {
                v.is_int = true;
                v.i = x;
            }
        }
    }
    void value(JVal& v, int depth) {
        if (depth > 64) fail("nesting too deep");
        ws();
        char c = peek();
        if (c == '{') {
            ++p_;
            v.kind = JVal::Obj;
            ws();
            if (peek() == '}') {
                ++p_;
                return;
            }
            for (;;) {
                ws();
                std::string k = str();
                ws();
                expect(':');
                JVal x;
                value(x, depth + 1);
                v.obj.emplace_back(std::move(k), std::move(x));
                ws();
                if (peek() == ',') {
                    ++p_;
                    continue;
                }
                expect('}');
                return;
            }
        } else if (c == '[') {
            ++p_;
            v.kind = JVal::Arr;
            ws();
            if (peek() == ']') {
                ++p_;
                return;
            }
            for (;;) {
                JVal x;
                value(x, depth + 1);
                v.arr.push_back(std::move(x));
                ws();
                if (peek() == ',') {
                    ++p_;
                    continue;
                }
                expect(']');
                return;
            }
        } else if (c == '"') {
            v.kind = JVal::Str;
            v.s = str();
        } else if (lit("null")) {
            v.kind = JVal::Null;
        } else if (lit("true")) {
            v.kind = JVal::Bool;
            v.b = true;
        } else if (lit("false")) {
            v.kind = JVal::Bool;
            v.b = false;
        } else if (c == '-' || std::isdigit(static_cast<unsigned char>(c))) {
            number(v);
        } else {
            fail("unexpected character");
        }
    }
};

std::string json_quote(const std::string& s) {
    std::string o = "\"";
    for (unsigned char c : s) {
        switch (c) {
        case '"': o += "\\\""; break;
        case '\\': o += "\\\\"; break;
        case '\n': o += "\\n"; break;
        case '\r': o += "\\r"; break;
        case '\t': o += "\\t"; break;
        case '\b': o += "\\b"; break;
        case '\f': o += "\\f"; break;
        default:
            if (c < 0x20) {
                char buf[8];
                std::snprintf(buf, sizeof buf, "\\u%04x", c);
                o += buf;
            } else {
                o += char(c);
            }
        }
    }
    return o + "\"";
}

// Canonical number text: equal values give equal text (10 == 10.0 == 1e1).
std::string canon_number(const JVal& v) {
    if (v.is_int) return std::to_string(v.i);
    double d = v.d;
    if (std::isfinite(d) && d == std::trunc(d) && std::fabs(d) < 9.2e18) {
        return std::to_string(static_cast<long long>(d));
    }
    char buf[64];
    std::snprintf(buf, sizeof buf, "%.17g", d);
    return buf;
}

std::string canon(const JVal& v) {
    switch (v.kind) {
    case JVal::Null: return "null";
    case JVal::Bool: return v.b ? "true" : "false";
    case JVal::Num: return canon_number(v);
    case JVal::Str: return json_quote(v.s);
    case JVal::Arr: {
        std::string o = "[";
        for (std::size_t k = 0; k < v.arr.size(); ++k) o += (k ? "," : "") + canon(v.arr[k]);
        return o + "]";
    }
    case JVal::Obj: {
        std::string o = "{";
        for (std::size_t k = 0; k < v.obj.size(); ++k)
            o += (k ? "," : "") + json_quote(v.obj[k].first) + ":" + canon(v.obj[k].second);
        return o + "}";
    }
    }
    return "?";
}

const JVal* member(const JVal& o, const std::string& key) {
    if (o.kind != JVal::Obj) return nullptr;
    for (auto& [k, v] : o.obj)
        if (k == key) return &v;
    return nullptr;
}

void flatten(const JVal& v, const std::string& prefix, std::map<std::string, const JVal*>& out) {
    if (v.kind == JVal::Obj) {
        for (auto& [k, x] : v.obj) flatten(x, prefix.empty() ? k : prefix + "." + k, out);
    } else {
        out[prefix] = &v;
    }
}

// ---------------------------------------------------------------------------------------------
// Helpers

std::string trim(const std::string& s) {
    std::size_t a = s.find_first_not_of(" \t\r\n");
    if (a == std::string::npos) return "";
    std::size_t b = s.find_last_not_of(" \t\r\n");
    return s.substr(a, b - a + 1);
}

bool starts_with(const std::string& s, const std::string& p) { return s.compare(0, p.size(), p) == 0; }

// Splits like a POSIX shell without expansions: whitespace separates, '...' and "..." quote,
// backslash escapes outside single quotes.
bool split_args(const std::string& s, std::vector<std::string>& out, std::string& err) {
    std::string cur;
    bool have = false;
    for (std::size_t k = 0; k < s.size(); ++k) {
        char c = s[k];
        if (c == ' ' || c == '\t' || c == '\r' || c == '\n') {
            if (have) out.push_back(cur);
            cur.clear();
            have = false;
        } else if (c == '\'') {
            have = true;
            std::size_t e = s.find('\'', k + 1);
            if (e == std::string::npos) {
                err = "unterminated ' in: " + s;
                return false;
            }
            cur += s.substr(k + 1, e - k - 1);
            k = e;
        } else if (c == '"') {
            have = true;
            ++k;
            for (; k < s.size() && s[k] != '"'; ++k) {
                if (s[k] == '\\' && k + 1 < s.size() && (s[k + 1] == '"' || s[k + 1] == '\\')) ++k;
                cur += s[k];
            }
            if (k >= s.size()) {
                err = "unterminated \" in: " + s;
                return false;
            }
        } else if (c == '\\' && k + 1 < s.size()) {
            have = true;
            cur += s[++k];
        } else {
            have = true;
            cur += c;
        }
    }
    if (have) out.push_back(cur);
    return true;
}

std::string shell_quote(const std::string& a) {
    if (!a.empty() && a.find_first_not_of("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-+=./:,%@") ==
                          std::string::npos)
        return a;
    std::string o = "'";
    for (char c : a) {
        if (c == '\'') o += "'\\''";
        else o += c;
    }
    return o + "'";
}

std::string replace_all(std::string s, const std::string& from, const std::string& to) {
    for (std::size_t p = s.find(from); p != std::string::npos; p = s.find(from, p + to.size()))
        s.replace(p, from.size(), to);
    return s;
}

// ---------------------------------------------------------------------------------------------
// Case file

struct Line {
    int lineno = 0;
    std::string text;
};

struct StatCheck {
    int lineno = 0;
    std::string key, op, value;
};

struct Case {
    std::string path;
    std::string name;
    std::vector<std::string> args;  // from `args:` (raw, ${ROOT} substituted later)
    std::vector<std::vector<std::string>> inputs;
    bool has_script = false;
    std::string script;
    bool has_events = false;
    std::vector<std::string> events;
    std::string events_file;
    bool expect_output = false;  // an `expect:` section (possibly empty / none)
    bool expect_any = false;     // `expect: any`
    std::vector<Line> expected;
    bool expect_error = false;
    std::vector<Line> error_substrings;
    std::vector<StatCheck> stats;
};

[[noreturn]] void malformed(const std::string& path, int lineno, const std::string& msg) {
    std::cerr << path << ":" << lineno << ": malformed case: " << msg << "\n";
    std::exit(2);
}

Case parse_case(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    if (!in) {
        std::cerr << "cannot open case file " << path << "\n";
        std::exit(2);
    }
    Case c;
    c.path = path;
    c.name = fs::path(path).stem().string();
    enum Sec { None, Script, Events, Expect, ExpectError, ExpectStats } sec = None;
    std::string raw;
    int lineno = 0;
    auto seen_script = false;
    while (std::getline(in, raw)) {
        ++lineno;
        if (!raw.empty() && raw.back() == '\r') raw.pop_back();
        const std::string t = trim(raw);
        // Section headers (at column 0).
        auto header = [&](const std::string& kw) -> std::optional<std::string> {
            if (!starts_with(raw, kw)) return std::nullopt;
            return trim(raw.substr(kw.size()));
        };
        std::optional<std::string> h;
        if ((h = header("script:"))) {
            if (!h->empty()) malformed(path, lineno, "`script:` takes no value on its line");
            if (seen_script) malformed(path, lineno, "duplicate `script:`");
            seen_script = c.has_script = true;
            sec = Script;
            continue;
        }
        if ((h = header("events file:"))) {
            if (h->empty()) malformed(path, lineno, "`events file:` needs a path");
            if (c.has_events || !c.events_file.empty()) malformed(path, lineno, "events given twice");
            c.events_file = *h;
            sec = None;
            continue;
        }
        if ((h = header("events:"))) {
            if (!h->empty()) malformed(path, lineno, "`events:` takes no value on its line");
            if (c.has_events || !c.events_file.empty()) malformed(path, lineno, "events given twice");
            c.has_events = true;
            sec = Events;
            continue;
        }
        if ((h = header("args:"))) {
            std::string err;
            if (!split_args(*h, c.args, err)) malformed(path, lineno, err);
            sec = None;
            continue;
        }
        if ((h = header("input:"))) {
            std::vector<std::string> toks;
            std::string err;
            if (!split_args(*h, toks, err)) malformed(path, lineno, err);
            if (toks.empty() || toks[0].find('=') == std::string::npos)
                malformed(path, lineno, "`input:` needs STREAM=PATH first");
            c.inputs.push_back(toks);
            sec = None;
            continue;
        }
        if ((h = header("expect error:"))) {
            if (!h->empty()) c.error_substrings.push_back({lineno, *h});
            if (c.expect_error) malformed(path, lineno, "duplicate `expect error:`");
            c.expect_error = true;
            sec = ExpectError;
            continue;
        }
        if ((h = header("expect stats:"))) {
            if (!h->empty()) malformed(path, lineno, "`expect stats:` takes no value on its line");
            sec = ExpectStats;
            continue;
        }
        if ((h = header("expect:"))) {
            if (c.expect_output) malformed(path, lineno, "duplicate `expect:`");
            c.expect_output = true;
            if (*h == "none") {
                sec = None;
            } else if (*h == "any") {
                c.expect_any = true;
                sec = None;
            } else if (h->empty()) {
                sec = Expect;
            } else {
                malformed(path, lineno, "`expect:` takes nothing, `none` or `any` on its line");
            }
            continue;
        }
        if (sec == Script) {
            c.script += raw;
            c.script += '\n';
            continue;
        }
        if (starts_with(raw, "#")) continue;  // comment (outside script:)
        if (t.empty()) continue;
        switch (sec) {
        case None: malformed(path, lineno, "line outside any section: " + raw);
        case Events: c.events.push_back(raw); break;
        case Expect: c.expected.push_back({lineno, t}); break;
        case ExpectError: c.error_substrings.push_back({lineno, t}); break;
        case ExpectStats: {
            static const char* ops[] = {"<=", ">=", "!=", "=", "<", ">"};
            std::size_t best = std::string::npos;
            std::string bop;
            for (const char* op : ops) {
                std::size_t p = t.find(op);
                if (p != std::string::npos && (p < best || (p == best && std::strlen(op) > bop.size()))) {
                    best = p;
                    bop = op;
                }
            }
            if (best == std::string::npos) malformed(path, lineno, "stats line needs KEY=VALUE (or <, <=, >, >=, !=)");
            StatCheck sc;
            sc.lineno = lineno;
            sc.key = trim(t.substr(0, best));
            sc.op = bop;
            sc.value = trim(t.substr(best + bop.size()));
            if (sc.key.empty() || sc.value.empty()) malformed(path, lineno, "bad stats line");
            c.stats.push_back(sc);
            break;
        }
        case Script: break;
        }
    }
    if (!c.has_script) malformed(path, lineno, "no `script:` section");
    if (!c.expect_output && !c.expect_error)
        malformed(path, lineno, "needs `expect:` (lines, `none` or `any`) or `expect error:`");
    if (c.expect_error && c.error_substrings.empty())
        malformed(path, lineno, "`expect error:` needs at least one substring");
    return c;
}

// ---------------------------------------------------------------------------------------------
// Running the child

struct RunResult {
    std::string out, err;
    bool timed_out = false;
    bool signaled = false;
    int sig = 0;
    int exit_code = -1;
    double seconds = 0;
};

RunResult run_child(const std::vector<std::string>& argv, const std::string& cwd, int timeout_s) {
    RunResult r;
    int po[2], pe[2];
    if (pipe(po) != 0 || pipe(pe) != 0) {
        std::perror("pipe");
        std::exit(2);
    }
    auto t_start = std::chrono::steady_clock::now();
    pid_t pid = fork();
    if (pid < 0) {
        std::perror("fork");
        std::exit(2);
    }
    if (pid == 0) {
        signal(SIGPIPE, SIG_DFL);
        setpgid(0, 0);
        int devnull = open("/dev/null", O_RDONLY);
        if (devnull >= 0) dup2(devnull, 0);
        dup2(po[1], 1);
        dup2(pe[1], 2);
        close(po[0]);
        close(pe[0]);
        close(po[1]);
        close(pe[1]);
        if (chdir(cwd.c_str()) != 0) _exit(126);
        std::vector<char*> av;
        for (auto& a : argv) av.push_back(const_cast<char*>(a.c_str()));
        av.push_back(nullptr);
        execv(av[0], av.data());
        std::fprintf(stderr, "e2e_runner: cannot exec %s: %s\n", av[0], std::strerror(errno));
        _exit(127);
    }
    setpgid(pid, pid);
    close(po[1]);
    close(pe[1]);
    bool open_o = true, open_e = true;
    auto deadline = t_start + std::chrono::seconds(timeout_s);
    char buf[65536];
    while (open_o || open_e) {
        auto now = std::chrono::steady_clock::now();
        if (!r.timed_out && now >= deadline) {
            r.timed_out = true;
            kill(-pid, SIGKILL);
            kill(pid, SIGKILL);
        }
        int wait_ms = r.timed_out ? 1000
                                  : int(std::chrono::duration_cast<std::chrono::milliseconds>(deadline - now).count()) + 1;
        pollfd fds[2];
        int n = 0;
        if (open_o) fds[n++] = {po[0], POLLIN, 0};
        if (open_e) fds[n++] = {pe[0], POLLIN, 0};
        int pr = poll(fds, n, wait_ms);
        if (pr < 0) {
            if (errno == EINTR) continue;
            break;
        }
        if (pr == 0) {
            if (r.timed_out) break;  // killed but pipes still held open by a grandchild: give up
            continue;
        }
        for (int k = 0; k < n; ++k) {
            if (!(fds[k].revents & (POLLIN | POLLHUP | POLLERR))) continue;
            ssize_t got = read(fds[k].fd, buf, sizeof buf);
            bool is_o = fds[k].fd == po[0];
            if (got <= 0) {
                if (got < 0 && errno == EINTR) continue;
                (is_o ? open_o : open_e) = false;
            } else {
                (is_o ? r.out : r.err).append(buf, std::size_t(got));
            }
        }
    }
    close(po[0]);
    close(pe[0]);
    int status = 0;
    if (!r.timed_out) {
        // Output pipes closed: the child should be exiting; still enforce the deadline.
        for (;;) {
            pid_t w = waitpid(pid, &status, WNOHANG);
            if (w == pid) break;
            if (std::chrono::steady_clock::now() >= deadline) {
                r.timed_out = true;
                kill(-pid, SIGKILL);
                kill(pid, SIGKILL);
                waitpid(pid, &status, 0);
                break;
            }
            usleep(2000);
        }
    } else {
        waitpid(pid, &status, 0);
    }
    r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t_start).count();
    if (WIFEXITED(status)) r.exit_code = WEXITSTATUS(status);
    if (WIFSIGNALED(status)) {
        r.signaled = true;
        r.sig = WTERMSIG(status);
    }
    return r;
}

// ---------------------------------------------------------------------------------------------
// Output comparison

struct OutLine {
    int lineno = 0;  // in stdout or in the case file
    std::string raw, canon;
    long double t1 = 0;
};

std::string fmt_t1(long double t) {
    std::ostringstream o;
    if (t == std::trunc(t)) o << static_cast<long long>(t);
    else o << static_cast<double>(t);
    return o.str();
}

bool parse_out_line(const std::string& text, OutLine& ol, std::string& err) {
    JVal v;
    JsonParser p(text);
    if (!p.parse_value(v, err)) return false;
    if (!p.at_end_after_ws()) {
        err = "trailing characters after the JSON object";
        return false;
    }
    if (v.kind != JVal::Obj) {
        err = "not a JSON object";
        return false;
    }
    const JVal* t1 = member(v, "t1");
    if (!t1 || t1->kind != JVal::Num) {
        err = "no numeric \"t1\"";
        return false;
    }
    ol.t1 = t1->is_int ? static_cast<long double>(t1->i) : static_cast<long double>(t1->d);
    ol.canon = canon(v);
    ol.raw = text;
    return true;
}

std::vector<std::string> split_lines(const std::string& s) {
    std::vector<std::string> v;
    std::string cur;
    std::istringstream in(s);
    while (std::getline(in, cur)) {
        if (!cur.empty() && cur.back() == '\r') cur.pop_back();
        v.push_back(cur);
    }
    return v;
}

// Returns true if equal; appends a human-readable diff to `diff`.
bool compare_outputs(const Case& c, const std::string& stdout_text, std::ostringstream& diff) {
    bool ok = true;
    std::map<long double, std::vector<OutLine>> exp, act;
    for (const Line& l : c.expected) {
        OutLine ol;
        std::string err;
        if (!parse_out_line(l.text, ol, err)) malformed(c.path, l.lineno, "bad expected line (" + err + "): " + l.text);
        ol.lineno = l.lineno;
        exp[ol.t1].push_back(ol);
    }
    int n = 0, count = 0;
    long double prev = 0;
    bool have_prev = false;
    for (const std::string& line : split_lines(stdout_text)) {
        ++n;
        if (trim(line).empty()) continue;
        OutLine ol;
        std::string err;
        if (!parse_out_line(trim(line), ol, err)) {
            diff << "  stdout line " << n << " is not a valid output event (" << err << "): " << line << "\n";
            ok = false;
            continue;
        }
        ++count;
        ol.lineno = n;
        if (have_prev && ol.t1 < prev) {
            diff << "  stdout line " << n << ": t1=" << fmt_t1(ol.t1) << " comes after t1=" << fmt_t1(prev)
                 << " (epochs must be in non-decreasing t1 order)\n";
            ok = false;
        }
        if (!have_prev || ol.t1 > prev) prev = ol.t1;
        have_prev = true;
        act[ol.t1].push_back(ol);
    }
    std::map<long double, int> epochs;
    for (auto& [t, _] : exp) epochs[t] = 1;
    for (auto& [t, _] : act) epochs[t] = 1;
    for (auto& [t, _] : epochs) {
        std::vector<OutLine> e = exp.count(t) ? exp[t] : std::vector<OutLine>{};
        std::vector<OutLine> a = act.count(t) ? act[t] : std::vector<OutLine>{};
        auto by = [](const OutLine& x, const OutLine& y) { return x.canon < y.canon; };
        std::sort(e.begin(), e.end(), by);
        std::sort(a.begin(), a.end(), by);
        std::vector<const OutLine*> missing, unexpected;
        std::size_t i = 0, j = 0;
        while (i < e.size() || j < a.size()) {
            if (j >= a.size() || (i < e.size() && e[i].canon < a[j].canon)) missing.push_back(&e[i++]);
            else if (i >= e.size() || a[j].canon < e[i].canon) unexpected.push_back(&a[j++]);
            else {
                ++i;
                ++j;
            }
        }
        if (missing.empty() && unexpected.empty()) continue;
        ok = false;
        diff << "  epoch t1=" << fmt_t1(t) << ": expected " << e.size() << " line(s), got " << a.size() << "\n";
        for (auto* m : missing)
            diff << "    - " << m->raw << "    (expected, case line " << m->lineno << ", not produced)\n";
        for (auto* u : unexpected)
            diff << "    + " << u->raw << "    (produced, stdout line " << u->lineno << ", not expected)\n";
    }
    if (!ok) {
        std::size_t ne = c.expected.size();
        diff << "  (" << ne << " expected line(s) in total, " << count << " produced)\n";
    }
    return ok;
}

// Finds the last JSON object on stderr that starts at the beginning of a line.
std::optional<JVal> find_stats(const std::string& err_text) {
    std::optional<JVal> found;
    for (std::size_t p = 0; p < err_text.size(); ++p) {
        if (err_text[p] != '{' || (p > 0 && err_text[p - 1] != '\n')) continue;
        JVal v;
        std::string e;
        JsonParser jp(err_text, p);
        if (jp.parse_value(v, e) && v.kind == JVal::Obj) found = std::move(v);
    }
    return found;
}

bool check_stats(const Case& c, const std::string& err_text, std::ostringstream& diff) {
    auto st = find_stats(err_text);
    if (!st) {
        diff << "  no --stats JSON object found on stderr\n";
        return false;
    }
    std::map<std::string, const JVal*> flat;
    flatten(*st, "", flat);
    bool ok = true;
    for (const StatCheck& sc : c.stats) {
        auto it = flat.find(sc.key);
        if (it == flat.end()) {
            diff << "  stats: key '" << sc.key << "' not found (case line " << sc.lineno << ")\n";
            ok = false;
            continue;
        }
        const JVal& v = *it->second;
        bool pass = false;
        std::string got = canon(v);
        if (v.kind == JVal::Num) {
            char* end = nullptr;
            long double want = std::strtold(sc.value.c_str(), &end);
            if (!end || *end != '\0') {
                diff << "  stats: '" << sc.key << "' is a number but the expected value '" << sc.value
                     << "' is not (case line " << sc.lineno << ")\n";
                ok = false;
                continue;
            }
            long double have = v.is_int ? static_cast<long double>(v.i) : static_cast<long double>(v.d);
            if (sc.op == "=") pass = have == want;
            else if (sc.op == "!=") pass = have != want;
            else if (sc.op == "<") pass = have < want;
            else if (sc.op == "<=") pass = have <= want;
            else if (sc.op == ">") pass = have > want;
            else if (sc.op == ">=") pass = have >= want;
        } else {
            std::string have = v.kind == JVal::Str ? v.s : got;
            std::string want = sc.value;
            if (want.size() >= 2 && want.front() == '"' && want.back() == '"') want = want.substr(1, want.size() - 2);
            if (sc.op == "=") pass = have == want;
            else if (sc.op == "!=") pass = have != want;
            else {
                diff << "  stats: operator " << sc.op << " needs a numeric value for '" << sc.key << "'\n";
                ok = false;
                continue;
            }
        }
        if (!pass) {
            diff << "  stats: expected " << sc.key << " " << sc.op << " " << sc.value << ", got " << got
                 << " (case line " << sc.lineno << ")\n";
            ok = false;
        }
    }
    return ok;
}

std::string tail(const std::string& s, std::size_t max) {
    if (s.size() <= max) return s;
    return "[... " + std::to_string(s.size() - max) + " bytes cut ...]\n" + s.substr(s.size() - max);
}

void usage() {
    std::cerr << "usage: e2e_runner [--root DIR] [--timeout SEC] [--keep] [-v] <path-to-cayuga> <case.test> "
                 "[extra cayuga args...]\n"
                 "  extra args (and $CAYUGA_E2E_ARGS) are appended to every `cayuga run`.\n";
}

}  // namespace

int main(int argc, char** argv) {
    // A closed stdout (e.g. `| head`) must not kill the runner before it removes its temp dir.
    signal(SIGPIPE, SIG_IGN);
    std::string root;
    int timeout_s = 60;
    bool keep = false, verbose = false;
    if (const char* e = std::getenv("CAYUGA_E2E_ROOT"); e && *e) root = e;
    if (const char* e = std::getenv("CAYUGA_E2E_TIMEOUT"); e && *e) timeout_s = std::max(1, std::atoi(e));
    if (const char* e = std::getenv("CAYUGA_E2E_KEEP"); e && *e && std::string(e) != "0") keep = true;
    int a = 1;
    for (; a < argc; ++a) {
        std::string s = argv[a];
        if (s == "--root" && a + 1 < argc) root = argv[++a];
        else if (s == "--timeout" && a + 1 < argc) timeout_s = std::max(1, std::atoi(argv[++a]));
        else if (s == "--keep") keep = true;
        else if (s == "-v" || s == "--verbose") verbose = true;
        else if (s == "-h" || s == "--help") {
            usage();
            return 0;
        } else if (s == "--") {
            ++a;
            break;
        } else break;
    }
    if (argc - a < 2) {
        usage();
        return 2;
    }
    std::error_code ec;
    std::string cayuga = fs::absolute(argv[a]).string();
    std::string case_path = fs::absolute(argv[a + 1]).lexically_normal().string();
    std::vector<std::string> extra(argv + a + 2, argv + argc);
    if (const char* e = std::getenv("CAYUGA_E2E_ARGS"); e && *e) {
        std::string err;
        if (!split_args(e, extra, err)) {
            std::cerr << "CAYUGA_E2E_ARGS: " << err << "\n";
            return 2;
        }
    }
    if (root.empty()) root = fs::path(case_path).parent_path().parent_path().parent_path().string();
    root = fs::absolute(root).lexically_normal().string();
    if (!root.empty() && root.size() > 1 && root.back() == '/') root.pop_back();

    Case c = parse_case(case_path);

    if (access(cayuga.c_str(), X_OK) != 0) {
        std::cerr << "FAIL " << c.name << ": cayuga executable not found or not executable: " << cayuga << "\n";
        return 1;
    }

    // Temp dir with script.cel and events.txt.
    std::string tmpl = (fs::temp_directory_path(ec) / "cayuga-e2e-XXXXXX").string();
    std::vector<char> tb(tmpl.begin(), tmpl.end());
    tb.push_back('\0');
    if (!mkdtemp(tb.data())) {
        std::perror("mkdtemp");
        return 2;
    }
    std::string dir = tb.data();
    {
        std::ofstream s(dir + "/script.cel", std::ios::binary);
        s << c.script;
    }
    auto rootify = [&](const std::string& p) {
        if (p.empty() || p[0] == '/') return p;
        return root + "/" + p;
    };
    std::vector<std::string> cmd = {cayuga, "run", "script.cel"};
    if (c.has_events) {
        std::ofstream s(dir + "/events.txt", std::ios::binary);
        for (auto& l : c.events) s << l << "\n";
        cmd.push_back("--events");
        cmd.push_back("events.txt");
    } else if (!c.events_file.empty()) {
        cmd.push_back("--events");
        cmd.push_back(rootify(replace_all(c.events_file, "${ROOT}", root)));
    }
    for (auto& in : c.inputs) {
        std::string first = replace_all(in[0], "${ROOT}", root);
        std::size_t eq = first.find('=');
        cmd.push_back("--input");
        cmd.push_back(first.substr(0, eq + 1) + rootify(first.substr(eq + 1)));
        for (std::size_t k = 1; k < in.size(); ++k) cmd.push_back(replace_all(in[k], "${ROOT}", root));
    }
    for (auto& x : c.args) cmd.push_back(replace_all(x, "${ROOT}", root));
    if (!c.stats.empty() && std::find(cmd.begin(), cmd.end(), "--stats") == cmd.end()) cmd.push_back("--stats");
    for (auto& x : extra) cmd.push_back(x);

    std::string cmdline = "cd " + shell_quote(dir) + " &&";
    for (auto& x : cmd) cmdline += " " + shell_quote(x);

    RunResult r = run_child(cmd, dir, timeout_s);

    std::ostringstream diff;
    bool ok = true;
    if (r.timed_out) {
        diff << "  timed out after " << timeout_s << " s (killed)\n";
        ok = false;
    } else if (r.signaled) {
        diff << "  cayuga was killed by signal " << r.sig << " (" << strsignal(r.sig) << ")\n";
        ok = false;
    } else if (r.exit_code == 126 || r.exit_code == 127) {
        diff << "  could not start cayuga (exit " << r.exit_code << ")\n";
        ok = false;
    } else if (c.expect_error) {
        if (r.exit_code == 0) {
            diff << "  expected a non-zero exit code (an error), got 0\n";
            ok = false;
        }
        for (const Line& l : c.error_substrings) {
            if (r.err.find(l.text) == std::string::npos) {
                diff << "  stderr does not contain: " << l.text << "    (case line " << l.lineno << ")\n";
                ok = false;
            }
        }
        if (c.expect_output && !c.expect_any && !compare_outputs(c, r.out, diff)) ok = false;
    } else {
        if (r.exit_code != 0) {
            diff << "  expected exit code 0, got " << r.exit_code << "\n";
            ok = false;
        }
        if (!c.expect_any && !compare_outputs(c, r.out, diff)) ok = false;
    }
    if (!r.timed_out && !r.signaled && !c.stats.empty() && !check_stats(c, r.err, diff)) ok = false;

    if (!ok || verbose) {
        std::ostream& o = ok ? std::cout : std::cerr;
        o << (ok ? "PASS " : "FAIL ") << c.name << " (" << c.path << ")\n";
        o << "  command: " << cmdline << "\n";
        o << "  exit: " << (r.signaled ? "signal " + std::to_string(r.sig) : std::to_string(r.exit_code)) << ", "
          << r.seconds << " s\n";
        o << diff.str();
        if (!ok || verbose) {
            o << "  --- stderr ---\n" << tail(r.err, 4000) << (r.err.empty() || r.err.back() == '\n' ? "" : "\n");
            if (verbose || !c.expect_any) {
                o << "  --- stdout ---\n" << tail(r.out, 6000) << (r.out.empty() || r.out.back() == '\n' ? "" : "\n");
            }
        }
    }
    if (keep) {
        std::cerr << "  temp dir kept: " << dir << "\n";
    } else {
        fs::remove_all(dir, ec);
    }
    return ok ? 0 : 1;
}
