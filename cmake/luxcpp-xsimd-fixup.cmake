# Debian's xsimd 8.1 exports a `xsimd` target whose link interface names a target `xtl`
# that its config file never looks for (xtl is only needed for xsimd's optional
# xtl::xcomplex support, which luxcpp does not use). Without an `xtl` target the link line
# gets a bogus "-lxtl". Use xtl when it is installed, otherwise drop the dangling name.
if(TARGET xsimd AND NOT TARGET xtl)
  find_package(xtl QUIET)
  if(NOT TARGET xtl)
    get_target_property(_luxcpp_xsimd_libs xsimd INTERFACE_LINK_LIBRARIES)
    if(_luxcpp_xsimd_libs)
      list(REMOVE_ITEM _luxcpp_xsimd_libs xtl)
      set_property(TARGET xsimd PROPERTY INTERFACE_LINK_LIBRARIES "${_luxcpp_xsimd_libs}")
    endif()
    unset(_luxcpp_xsimd_libs)
  endif()
endif()
