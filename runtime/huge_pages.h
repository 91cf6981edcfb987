// Transparent huge pages for the engine's heap.
//
// With many queries the engine reads its automaton, index and instances at random over hundreds
// of megabytes, and with 4 KiB pages a large share of the time goes to TLB misses (more so in a
// virtual machine). glibc backs malloc's memory with transparent huge pages when the tunable
// glibc.malloc.hugetlb=1 is set, but it reads GLIBC_TUNABLES only when a program starts. The
// command-line programs therefore call use_huge_pages() first thing: it re-executes the program
// once with the tunable added (docs/benchmarks.md has the measurements). Programs that embed the
// engine can set the variable themselves.
#pragma once

namespace cayuga {

// Re-executes the running program (/proc/self/exe with `argv`) with glibc.malloc.hugetlb=1
// added to GLIBC_TUNABLES, and does not return; or returns at once, changing nothing, when the
// tunable is already set (by the user, or by the first run), when CAYUGA_HUGE_PAGES=0, when the
// kernel has transparent huge pages switched off, or when the re-execution fails.
void use_huge_pages(char** argv);

}  // namespace cayuga
