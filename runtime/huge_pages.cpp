#include "runtime/huge_pages.h"

#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iterator>
#include <string>

namespace cayuga {

void use_huge_pages(char** argv) {
  if (const char* v = std::getenv("CAYUGA_HUGE_PAGES"); v && std::strcmp(v, "0") == 0) return;
  const char* current = std::getenv("GLIBC_TUNABLES");
  std::string tunables = current ? current : "";
  if (tunables.find("glibc.malloc.hugetlb") != std::string::npos) return;
  std::ifstream thp("/sys/kernel/mm/transparent_hugepage/enabled");
  const std::string mode{std::istreambuf_iterator<char>(thp), {}};
  if (mode.empty() || mode.find("[never]") != std::string::npos) return;
  tunables += tunables.empty() ? "glibc.malloc.hugetlb=1" : ":glibc.malloc.hugetlb=1";
  if (setenv("GLIBC_TUNABLES", tunables.c_str(), 1) != 0) return;
  execv("/proc/self/exe", argv);
  // Not re-executed: carry on with ordinary pages.
}

}  // namespace cayuga
