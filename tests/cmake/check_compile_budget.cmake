# Compile cost must grow linearly with model depth: builds the object targets compile_budget_8 and
# compile_budget_64 (tests/compile_budget/deep_chain.cpp: setup + apply + pullback of a Chain of 8
# and 64 Dense layers, at -O1) under GNU time, and requires the 64-layer one to take
#   < MAX_KB kilobytes of compiler memory (peak resident set of the compiler process), and
#   < MAX_RATIO times the wall time of the 8-layer one.
# Invoked by CTest: cmake -DBUILD_DIR=… -DOBJ8=… -DOBJ64=… -DMAX_KB=… -DMAX_RATIO=… -P this file.
foreach(v BUILD_DIR OBJ8 OBJ64 MAX_KB MAX_RATIO)
  if(NOT DEFINED ${v})
    message(FATAL_ERROR "check_compile_budget: -D${v}=… is required")
  endif()
endforeach()
find_program(GNU_TIME NAMES time PATHS /usr/bin NO_DEFAULT_PATH)
if(NOT GNU_TIME)
  message(FATAL_ERROR "check_compile_budget: /usr/bin/time (Debian package `time`) is required")
endif()

function(measure depth obj out_seconds out_kb)
  file(REMOVE "${obj}")  # force the compilation
  set(report "${BUILD_DIR}/compile_budget_${depth}.time")
  execute_process(
    COMMAND "${GNU_TIME}" -f "%e %M" -o "${report}"
            "${CMAKE_COMMAND}" --build "${BUILD_DIR}" --target compile_budget_${depth}
    RESULT_VARIABLE rc OUTPUT_VARIABLE log ERROR_VARIABLE log)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "check_compile_budget: building compile_budget_${depth} failed:\n${log}")
  endif()
  file(READ "${report}" line)
  string(STRIP "${line}" line)
  string(REGEX MATCH "([0-9.]+) ([0-9]+)$" _ "${line}")
  set(${out_seconds} "${CMAKE_MATCH_1}" PARENT_SCOPE)
  set(${out_kb} "${CMAKE_MATCH_2}" PARENT_SCOPE)
endfunction()

measure(8 "${OBJ8}" t8 kb8)
measure(64 "${OBJ64}" t64 kb64)
math(EXPR mb8 "${kb8} / 1024")
math(EXPR mb64 "${kb64} / 1024")
# CMake's math() is integer-only: compare t64 < MAX_RATIO · t8 in centiseconds.
string(REGEX REPLACE "^([0-9]+)\\.([0-9])([0-9]?).*$" "\\1\\2\\3" cs8 "${t8}0")
string(REGEX REPLACE "^([0-9]+)\\.([0-9])([0-9]?).*$" "\\1\\2\\3" cs64 "${t64}0")
math(EXPR ratio_x100 "100 * ${cs64} / ${cs8}")
message(STATUS "compile budget: 8 layers ${t8} s, ${mb8} MB; 64 layers ${t64} s, ${mb64} MB; "
               "time ratio ${ratio_x100}/100 (limits: ${MAX_KB} KB, ratio ${MAX_RATIO})")
if(kb64 GREATER MAX_KB)
  message(FATAL_ERROR "a 64-layer Chain took ${mb64} MB of compiler memory (limit ${MAX_KB} KB)")
endif()
math(EXPR limit_x100 "${MAX_RATIO} * 100")
if(ratio_x100 GREATER limit_x100)
  message(FATAL_ERROR "a 64-layer Chain took ${ratio_x100}/100 times the 8-layer compile time "
                      "(limit ${MAX_RATIO})")
endif()
