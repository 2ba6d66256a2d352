# cmake -DNM=... -DOBJCOPY=... -DINPUT=<object> -DOUTPUT=<object> -DSUFFIX=<text> -P luxcpp-localize.cmake
#
# Gives every weak symbol an object file defines (template and inline-function instantiations:
# Eigen's GEMM, the standard library's, lux's) and every COMDAT group signature a suffix, so that
# the instantiations compiled into libluxcpp_dispatch for one instruction set can be merged by the
# linker only with each other: never with the same instantiation compiled for another instruction
# set, neither the library's other level nor the calling program's (whose Eigen, unlike lux, has no
# instruction-set namespace). Undefined references (the C and C++ runtime's) keep their names.
foreach(var NM OBJCOPY INPUT OUTPUT SUFFIX)
  if(NOT DEFINED ${var})
    message(FATAL_ERROR "luxcpp-localize.cmake: ${var} is not set")
  endif()
endforeach()
execute_process(COMMAND "${NM}" --defined-only "${INPUT}"
  OUTPUT_VARIABLE listing RESULT_VARIABLE rc)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "luxcpp-localize.cmake: ${NM} ${INPUT} failed (${rc})")
endif()
string(REPLACE "\n" ";" lines "${listing}")
set(map "")
set(count 0)
foreach(line IN LISTS lines)
  # "<address> <type> <name>": W/V weak, u unique global, n COMDAT group signature.
  if(line MATCHES "^[0-9a-fA-F]* ([WVun]) ([^ ]+)$")
    string(APPEND map "${CMAKE_MATCH_2} ${CMAKE_MATCH_2}${SUFFIX}\n")
    math(EXPR count "${count} + 1")
  endif()
endforeach()
file(WRITE "${OUTPUT}.syms" "${map}")
execute_process(COMMAND "${OBJCOPY}" "--redefine-syms=${OUTPUT}.syms" "${INPUT}" "${OUTPUT}"
  RESULT_VARIABLE rc)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "luxcpp-localize.cmake: ${OBJCOPY} ${INPUT} failed (${rc})")
endif()
