# The NCCL component: luxcpp::nccl adds NCCL (on top of luxcpp::cuda and luxcpp::mpi) for
# lux/distributed/nccl.hpp (data-parallel training on CUDA devices, bootstrapped through MPI).
# Included by the top-level CMakeLists.txt right after the MPI section; sets LUXCPP_HAS_NCCL.
# NCCL is optional: without CUDA, MPI or NCCL the target is simply not defined.
# The install rules and luxcpp-config.cmake.in export luxcpp::nccl and find NCCL again
# (cmake/FindNCCL.cmake is installed beside the config).
set(LUXCPP_HAS_NCCL OFF)
if(LUXCPP_HAS_CUDA AND LUXCPP_HAS_MPI)
  find_package(NCCL QUIET)
  if(NCCL_FOUND)
    set(LUXCPP_HAS_NCCL ON)
    add_library(luxcpp_nccl INTERFACE)
    add_library(luxcpp::nccl ALIAS luxcpp_nccl)
    set_target_properties(luxcpp_nccl PROPERTIES EXPORT_NAME nccl)
    target_link_libraries(luxcpp_nccl INTERFACE luxcpp_cuda luxcpp_mpi NCCL::nccl)
  endif()
endif()
