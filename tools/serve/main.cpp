// cayuga-serve: the service as a standalone executable (the same code as `cayuga serve`).
#include "tools/serve/serve.h"

int main(int argc, char** argv) {
  return cayuga::serve::serve_main(std::vector<std::string>(argv + 1, argv + argc));
}
