// cayuga-serve: the service as a standalone executable (the same code as `cayuga serve`).
#include "runtime/huge_pages.h"
#include "tools/serve/serve.h"

int main(int argc, char** argv) {
  cayuga::use_huge_pages(argv);
  return cayuga::serve::serve_main(std::vector<std::string>(argv + 1, argv + argc));
}
