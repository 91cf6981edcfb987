// The string table: one id per distinct text, dense from 0 (""), each id's text as given,
// whatever its length, however many strings, and from several threads at once.
#include <gtest/gtest.h>

#include <string>
#include <thread>
#include <vector>

#include "compiler/types.h"

namespace cayuga {
namespace {

TEST(Interner, OneDenseIdPerText) {
  Interner in;
  EXPECT_EQ(in.size(), 1u);
  EXPECT_EQ(in.intern(""), 0u);
  EXPECT_EQ(in.intern("IBM"), 1u);
  EXPECT_EQ(in.intern("MSFT"), 2u);
  EXPECT_EQ(in.intern("IBM"), 1u);
  EXPECT_EQ(in.size(), 3u);
  EXPECT_EQ(in.view(1), "IBM");
  EXPECT_EQ(in.view(2), "MSFT");
  EXPECT_EQ(in.view(3), "");  // not an id yet
}

// Texts kept in place (up to 15 bytes), in the shared blocks, and in blocks of their own; bytes
// that are not text (NUL, 0xFF); enough strings to grow the lookup table many times and fill
// several blocks. Each comes back as itself, and again under the same id.
TEST(Interner, EveryTextComesBackUnderItsId) {
  Interner in;
  std::vector<std::string> texts;
  for (size_t n = 1; n <= 40; ++n) texts.push_back(std::string(n, 'a'));
  texts.push_back(std::string(5000, 'b'));   // a block of its own
  texts.push_back(std::string(70000, 'c'));  // longer than a block
  texts.push_back(std::string("\0\xff\0", 3));
  texts.push_back(std::string(15, '\xff'));
  texts.push_back(std::string(16, '\0'));
  for (int i = 0; i < 200000; ++i)
    texts.push_back("k" + std::to_string(i) + (i % 3 ? "" : std::string(i % 50, '-')));
  std::vector<uint64_t> ids;
  for (const std::string& t : texts) ids.push_back(in.intern(t));
  for (size_t k = 0; k < texts.size(); ++k) {
    ASSERT_EQ(ids[k], k + 1) << k;  // all distinct, in order
    ASSERT_EQ(in.view(ids[k]), texts[k]) << k;
  }
  for (size_t k = texts.size(); k-- > 0;) ASSERT_EQ(in.intern(texts[k]), ids[k]) << k;
  EXPECT_EQ(in.size(), texts.size() + 1);
}

// Threads interning the same texts at once agree on every id, and a reader sees each id's
// text as soon as it has the id.
TEST(Interner, ThreadsAgreeOnIds) {
  Interner in;
  constexpr int kThreads = 4, kTexts = 20000;
  std::vector<std::vector<uint64_t>> ids(kThreads, std::vector<uint64_t>(kTexts));
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t)
    threads.emplace_back([&, t] {
      for (int k = 0; k < kTexts; ++k) {
        const int i = t % 2 ? kTexts - 1 - k : k;  // half of them backwards
        const std::string text = "text" + std::to_string(i) + std::string(i % 20, '+');
        ids[t][i] = in.intern(text);
        if (in.view(ids[t][i]) != text) ADD_FAILURE() << text;
      }
    });
  for (auto& th : threads) th.join();
  for (int t = 1; t < kThreads; ++t) EXPECT_EQ(ids[t], ids[0]);
  EXPECT_EQ(in.size(), kTexts + 1u);
}

}  // namespace
}  // namespace cayuga
