// use_huge_pages(): the program is re-executed once, with glibc.malloc.hugetlb=1 added to
// GLIBC_TUNABLES, unless THP is off, the tunable is set already or CAYUGA_HUGE_PAGES=0.
//
// The test runs this binary again with a filter selecting Probe, which calls use_huge_pages()
// and records what GLIBC_TUNABLES holds once the program runs for good, and how often it
// started.
#include "runtime/huge_pages.h"

#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

namespace {

std::string read_file(const std::string& path) {
  std::ifstream in(path);
  return {std::istreambuf_iterator<char>(in), {}};
}

// Runs the probe with `env` (NAME=value entries, replacing the inherited environment) and
// returns what it recorded: "<starts> <GLIBC_TUNABLES>".
std::string probe(const std::vector<std::string>& env) {
  // Per process: ctest runs the tests of this file in parallel.
  const std::string out =
      ::testing::TempDir() + "huge_pages_probe." + std::to_string(getpid()) + ".txt";
  std::remove(out.c_str());
  pid_t pid = fork();
  if (pid == 0) {
    std::vector<std::string> strings = env;
    strings.push_back("CAYUGA_PROBE_OUT=" + out);
    std::vector<char*> envp;
    for (auto& s : strings) envp.push_back(s.data());
    envp.push_back(nullptr);
    std::string self = read_file("/proc/self/cmdline");
    std::string filter = "--gtest_filter=HugePages.Probe";
    char* argv[] = {self.data(), filter.data(), nullptr};
    execve("/proc/self/exe", argv, envp.data());
    _exit(127);
  }
  int status = 0;
  waitpid(pid, &status, 0);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  return read_file(out);
}

bool thp_available() {
  const std::string mode = read_file("/sys/kernel/mm/transparent_hugepage/enabled");
  return !mode.empty() && mode.find("[never]") == std::string::npos;
}

}  // namespace

// Not a test of its own: what the other tests run in a child process.
TEST(HugePages, Probe) {
  const char* out = std::getenv("CAYUGA_PROBE_OUT");
  if (!out) GTEST_SKIP() << "run by the other HugePages tests";
  // Count starts in the file itself: the re-executed program appends again.
  std::string starts = read_file(out);
  std::ofstream(out) << starts << "x";
  std::string self = read_file("/proc/self/cmdline");
  std::string filter = "--gtest_filter=HugePages.Probe";
  char* argv[] = {self.data(), filter.data(), nullptr};
  cayuga::use_huge_pages(argv);
  const char* t = std::getenv("GLIBC_TUNABLES");
  starts = read_file(out);
  std::ofstream(out) << starts << " " << (t ? t : "");
}

TEST(HugePages, ReexecutesOnceWithTheTunable) {
  if (!thp_available()) {
    EXPECT_EQ(probe({}), "x ");  // nothing to gain: not re-executed
    return;
  }
  EXPECT_EQ(probe({}), "xx glibc.malloc.hugetlb=1");
  EXPECT_EQ(probe({"GLIBC_TUNABLES=glibc.malloc.perturb=0"}),
            "xx glibc.malloc.perturb=0:glibc.malloc.hugetlb=1");
}

TEST(HugePages, LeavesTheProgramAloneWhenAskedOrAlreadySet) {
  EXPECT_EQ(probe({"CAYUGA_HUGE_PAGES=0"}), "x ");
  EXPECT_EQ(probe({"GLIBC_TUNABLES=glibc.malloc.hugetlb=0"}), "x glibc.malloc.hugetlb=0");
}
