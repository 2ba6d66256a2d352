// The one Catch2 main shared by every test executable (compiled once as an object library).
// A wide console keeps Catch2 from wrapping long test names in --list-test-names-only, which
// CTest's test discovery reads line by line.
#define CATCH_CONFIG_CONSOLE_WIDTH 400
#define CATCH_CONFIG_MAIN
#include <catch2/catch.hpp>
