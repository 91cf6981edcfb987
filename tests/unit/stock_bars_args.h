// How the unit tests read the bundled real bars (tests/data/stocks/bars_1min_2024_head5000.csv.gz:
// the header and first 5000 bars of bars_1min_2024.csv.gz, blaizard/market-data, MIT, see
// tests/data/stocks/LICENSE) as Stock(Name, Price, Volume): the command-line input options.
#pragma once

#include <string>
#include <vector>

namespace cayuga::test {

inline std::vector<std::string> stock_bars_args() {
  return {"--input",
          "Stock=" CAYUGA_SOURCE_DIR "/tests/data/stocks/bars_1min_2024_head5000.csv.gz",
          "--time-column",
          "epoch_ms",
          "--time-format",
          "ms",
          "--map",
          "Name=sym",
          "--map",
          "Price=close",
          "--map",
          "Volume=volume"};
}

}  // namespace cayuga::test
