# Package files for hosts: conclua.pc (pkg-config) and the CMake package
# (find_package(conclua) -> conclua::conclua, conclua::conclua_static).
# Both are relocatable: they find the prefix from where they are installed.
include(CMakePackageConfigHelpers)

set(CONCLUA_CMAKE_DIR ${CMAKE_INSTALL_LIBDIR}/cmake/conclua)

# pkg-config: ${pcfiledir} is <prefix>/<libdir>/pkgconfig.
if(IS_ABSOLUTE "${CMAKE_INSTALL_LIBDIR}")
  set(CONCLUA_PC_PREFIX "${CMAKE_INSTALL_PREFIX}")
else()
  file(RELATIVE_PATH CONCLUA_PC_UP "/p/${CMAKE_INSTALL_LIBDIR}/pkgconfig" "/p")
  string(REGEX REPLACE "/$" "" CONCLUA_PC_UP "${CONCLUA_PC_UP}")
  set(CONCLUA_PC_PREFIX "\${pcfiledir}/${CONCLUA_PC_UP}")
endif()
foreach(dir LIBDIR INCLUDEDIR)
  if(IS_ABSOLUTE "${CMAKE_INSTALL_${dir}}")
    set(CONCLUA_PC_${dir} "${CMAKE_INSTALL_${dir}}")
  else()
    set(CONCLUA_PC_${dir} "\${prefix}/${CMAKE_INSTALL_${dir}}")
  endif()
endforeach()
if(IS_ABSOLUTE "${CONCLUA_INSTALL_CMOD_DIR}")
  set(CONCLUA_PC_CMODDIR "${CONCLUA_INSTALL_CMOD_DIR}")
else()
  set(CONCLUA_PC_CMODDIR "\${prefix}/${CONCLUA_INSTALL_CMOD_DIR}")
endif()
configure_file(${CMAKE_CURRENT_LIST_DIR}/conclua.pc.in ${PROJECT_BINARY_DIR}/conclua.pc @ONLY)
install(FILES ${PROJECT_BINARY_DIR}/conclua.pc DESTINATION ${CMAKE_INSTALL_LIBDIR}/pkgconfig)

# CMake package.
install(EXPORT conclua-targets NAMESPACE conclua:: DESTINATION ${CONCLUA_CMAKE_DIR})
configure_package_config_file(${CMAKE_CURRENT_LIST_DIR}/conclua-config.cmake.in
                              ${PROJECT_BINARY_DIR}/conclua-config.cmake
                              INSTALL_DESTINATION ${CONCLUA_CMAKE_DIR})
# 0.x: a minor release may break the API, so it must match.
write_basic_package_version_file(${PROJECT_BINARY_DIR}/conclua-config-version.cmake
                                 COMPATIBILITY SameMinorVersion)
install(FILES ${PROJECT_BINARY_DIR}/conclua-config.cmake
              ${PROJECT_BINARY_DIR}/conclua-config-version.cmake
        DESTINATION ${CONCLUA_CMAKE_DIR})
