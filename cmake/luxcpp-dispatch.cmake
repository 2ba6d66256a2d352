# libluxcpp_dispatch: the looped kernels precompiled for AVX2 + FMA and for AVX-512, chosen at
# run time for the CPU (lux/core/dispatch.hpp). Each (part, level) pair is one generated
# translation unit including lux/dispatch/provider.hpp with its -m flags, whose weak symbols are
# then renamed for its level (cmake/luxcpp-localize.cmake: Eigen has no instruction-set
# namespace, and the linker would otherwise keep one copy of each Eigen GEMM instantiation for the
# calling program and both levels alike); library.cpp holds the registry and lists them. luxcpp::luxcpp links the library and defines LUXCPP_RUNTIME_DISPATCH,
# so a consumer compiled with default flags runs the best copy this CPU supports.
set(_luxcpp_dispatch_levels avx2 avx512)
set(_luxcpp_dispatch_flags_avx2 -mavx2 -mfma)
set(_luxcpp_dispatch_flags_avx512 -mavx512f -mavx512bw -mavx512dq -mavx512vl -mavx2 -mfma)
set(_luxcpp_dispatch_parts elementwise dense conv norm resample)
set(_luxcpp_dispatch_dir "${PROJECT_BINARY_DIR}/luxcpp_dispatch")
set(_luxcpp_dispatch_sources "")
set(_luxcpp_dispatch_providers "")
set(_luxcpp_dispatch_warnings "")
set(_luxcpp_dispatch_inlining "")
if(CMAKE_CXX_COMPILER_ID STREQUAL "GNU")
  # GCC 12's false -Wmaybe-uninitialized inside its AVX-512 intrinsics (see lux/core/simd.hpp).
  list(APPEND _luxcpp_dispatch_warnings -Wno-maybe-uninitialized)
  # A provider instantiates each kernel for two types and many activations behind one thunk each:
  # GCC's growth limits then stop inlining the SIMD row helpers (norm_looped::sum_lanes and its
  # lambdas) into the big kernel bodies, and layernorm's backward ran at 0.55x the -march=native
  # build's speed (measured). With the limits raised it matches it.
  set(_luxcpp_dispatch_inlining --param=large-function-growth=2000 --param=inline-unit-growth=2000)
endif()
if(LUXCPP_WARNINGS_AS_ERRORS)
  list(APPEND _luxcpp_dispatch_warnings -Wall -Wextra -Wpedantic -Werror)
endif()
if(NOT CMAKE_NM OR NOT CMAKE_OBJCOPY)
  message(FATAL_ERROR "luxcpp: the run-time dispatch library needs nm and objcopy (binutils); "
                      "install them or configure with -DLUXCPP_RUNTIME_DISPATCH=OFF")
endif()
foreach(level IN LISTS _luxcpp_dispatch_levels)
  foreach(part IN LISTS _luxcpp_dispatch_parts)
    set(src "${_luxcpp_dispatch_dir}/${part}_${level}.cpp")
    file(CONFIGURE OUTPUT "${src}" CONTENT
"#define LUX_DISPATCH_LEVEL ${level}
#define LUX_DISPATCH_PART ${part}
#include \"lux/dispatch/provider.hpp\"
")
    set(obj luxcpp_dispatch_${part}_${level})
    add_library(${obj} OBJECT "${src}")
    set_target_properties(${obj} PROPERTIES POSITION_INDEPENDENT_CODE ON)
    target_compile_features(${obj} PRIVATE cxx_std_20)
    target_compile_options(${obj} PRIVATE ${_luxcpp_dispatch_flags_${level}} ${_luxcpp_dispatch_warnings}
      ${_luxcpp_dispatch_inlining})
    target_include_directories(${obj} PRIVATE "${PROJECT_SOURCE_DIR}/include")
    target_link_libraries(${obj} PRIVATE Eigen3::Eigen xsimd)
    if(OpenMP_CXX_FOUND)
      target_link_libraries(${obj} PRIVATE OpenMP::OpenMP_CXX)
    endif()
    # Its weak symbols (Eigen's, the standard library's, lux's) renamed for this level only.
    set(private_obj "${_luxcpp_dispatch_dir}/${part}_${level}${CMAKE_CXX_OUTPUT_EXTENSION}")
    add_custom_command(OUTPUT "${private_obj}"
      COMMAND "${CMAKE_COMMAND}" -DNM=${CMAKE_NM} -DOBJCOPY=${CMAKE_OBJCOPY}
              "-DINPUT=$<TARGET_OBJECTS:${obj}>" "-DOUTPUT=${private_obj}"
              -DSUFFIX=.luxcpp_${level}
              -P "${PROJECT_SOURCE_DIR}/cmake/luxcpp-localize.cmake"
      DEPENDS ${obj} "$<TARGET_OBJECTS:${obj}>" "${PROJECT_SOURCE_DIR}/cmake/luxcpp-localize.cmake"
      COMMENT "luxcpp: private symbols for ${part}_${level}"
      VERBATIM)
    list(APPEND _luxcpp_dispatch_sources "${private_obj}")
    string(APPEND _luxcpp_dispatch_providers " X(${part}, ${level})")
  endforeach()
endforeach()
file(CONFIGURE OUTPUT "${_luxcpp_dispatch_dir}/library.cpp" CONTENT
"#define LUX_DISPATCH_PROVIDERS(X)${_luxcpp_dispatch_providers}
#include \"lux/dispatch/library.hpp\"
")

add_library(luxcpp_dispatch STATIC "${_luxcpp_dispatch_dir}/library.cpp" ${_luxcpp_dispatch_sources})
set_source_files_properties(${_luxcpp_dispatch_sources} PROPERTIES
  EXTERNAL_OBJECT TRUE GENERATED TRUE)
add_library(luxcpp::dispatch ALIAS luxcpp_dispatch)
set_target_properties(luxcpp_dispatch PROPERTIES
  EXPORT_NAME dispatch
  POSITION_INDEPENDENT_CODE ON)
target_compile_features(luxcpp_dispatch PRIVATE cxx_std_20)
target_include_directories(luxcpp_dispatch PRIVATE "${PROJECT_SOURCE_DIR}/include")
target_compile_options(luxcpp_dispatch PRIVATE ${_luxcpp_dispatch_warnings})
target_link_libraries(luxcpp_dispatch PRIVATE xsimd)
if(OpenMP_CXX_FOUND)
  target_link_libraries(luxcpp_dispatch PUBLIC OpenMP::OpenMP_CXX)
endif()

target_link_libraries(luxcpp INTERFACE luxcpp_dispatch)
target_compile_definitions(luxcpp INTERFACE LUXCPP_RUNTIME_DISPATCH=1)
set(LUXCPP_HAS_DISPATCH ON)
