# Fails when a Catch2 TEST_CASE name would break CTest's per-test-case registration:
# catch_discover_tests splits the name list as a CMake list, where an unbalanced '[' or ']'
# (or a ';') merges the following test cases into one bogus CTest entry that runs none
# of them. Usage: cmake -DEXE=<test executable> -P check_test_names.cmake
execute_process(COMMAND "${EXE}" --list-test-names-only
  OUTPUT_VARIABLE names RESULT_VARIABLE rc)
if(NOT rc EQUAL 0 AND rc LESS 0)
  message(FATAL_ERROR "could not list the test cases of ${EXE}")
endif()
if(names MATCHES "[][;]")
  message(FATAL_ERROR "a test case name of ${EXE} contains '[', ']' or ';' "
                      "(CTest cannot register it on its own); names:\n${names}")
endif()
message(STATUS "all test case names of ${EXE} are addressable")
