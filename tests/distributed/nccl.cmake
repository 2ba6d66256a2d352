# lux::distributed over NCCL: included by tests/CMakeLists.txt when LUXCPP_HAS_NCCL. The test
# has its own main (MPI + Catch2) and needs one GPU per rank. It exits with 77, which CTest
# reports as skipped (Open MPI's mpirun passes a rank's exit code on), without a CUDA device and
# where a node has more ranks than devices (np2 on a one-GPU machine).
add_executable(test_nccl distributed/test_nccl.cpp)
target_link_libraries(test_nccl PRIVATE Catch2::Catch2 luxcpp::nccl luxcpp_dev_flags)
target_include_directories(test_nccl PRIVATE "${CMAKE_CURRENT_SOURCE_DIR}")
# Open MPI refuses root without the first two; leak checking is off as for test_distributed.
set(_nccl_env "OMPI_ALLOW_RUN_AS_ROOT=1;OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1;OMP_NUM_THREADS=1"
    "ASAN_OPTIONS=detect_leaks=0")
foreach(np 1 2)
  add_test(NAME test_nccl_np${np}
    COMMAND ${MPIEXEC_EXECUTABLE} ${MPIEXEC_NUMPROC_FLAG} ${np} --oversubscribe
            ${MPIEXEC_PREFLAGS} $<TARGET_FILE:test_nccl> ${MPIEXEC_POSTFLAGS})
  set_tests_properties(test_nccl_np${np} PROPERTIES
    LABELS "cuda;mpi"
    SKIP_RETURN_CODE 77
    TIMEOUT 120
    PROCESSORS ${np}
    ENVIRONMENT "${_nccl_env}")
endforeach()
