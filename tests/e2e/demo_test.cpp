// scripts/demo.sh, the README's first command (here with --no-build, against this build's
// cayuga): it must end with status 0 and show each sample query's exact number of matches, and
// only the first few of a long list.
//
// CAYUGA_BIN is the executable, CAYUGA_SOURCE_DIR the repository.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <string>

#include "tests/e2e/shell.h"

namespace {

namespace fs = std::filesystem;

// The lines of `out` from the one starting with `first`, `count` of them.
std::string lines_from(const std::string& out, const std::string& first, int count) {
  size_t at = out.find("\n" + first);
  if (at == std::string::npos) return "(no line starting with " + first + ")";
  ++at;
  size_t end = at;
  for (int i = 0; i < count && end != std::string::npos; ++i) end = out.find('\n', end + 1);
  return out.substr(at, end == std::string::npos ? std::string::npos : end - at);
}

TEST(Demo, RunsEverySampleAndShowsTheFirstMatches) {
  const fs::path dir = fs::temp_directory_path() / ("cayuga_demo_" + std::to_string(::getpid()));
  fs::remove_all(dir);
  fs::create_directories(dir);
  const cayuga::test::Result r =
      cayuga::test::run_shell(std::string("CAYUGA='") + CAYUGA_BIN + "' DEMO_SHOW=5 bash '" +
                                  CAYUGA_SOURCE_DIR + "/scripts/demo.sh' --no-build",
                              dir);
  fs::remove_all(dir);
  ASSERT_EQ(r.exit, 0) << r.out << r.err;
  // Each query's header, its count, then its matches (at most five) or a note of the rest.
  const auto count_after = [&](const std::string& query) {
    const std::string block = lines_from(r.out, query + ":", 2);
    return block.substr(block.find('\n') + 1);
  };
  EXPECT_EQ(count_after("LargeTradeRebound"), "  7 match(es)");
  EXPECT_EQ(count_after("DoubleTop"), "  59 match(es)");
  EXPECT_EQ(count_after("BruteForce"), "  442 match(es)");
  EXPECT_EQ(count_after("Compromise"), "  0 match(es)");
  // 442 matches: five of them, then how many more (the long list that a pipe into `head` once
  // ended with status 141).
  const std::string brute = lines_from(r.out, "BruteForce:", 8);
  size_t shown = 0;
  for (size_t at = brute.find("{\"stream\":\"BruteForce\""); at != std::string::npos;
       at = brute.find("{\"stream\":\"BruteForce\"", at + 1))
    ++shown;
  EXPECT_EQ(shown, 5u) << brute;
  EXPECT_NE(brute.find("  ... and 437 more (DEMO_SHOW=0 shows all)"), std::string::npos) << brute;
  EXPECT_EQ(r.err, "");
}

}  // namespace
