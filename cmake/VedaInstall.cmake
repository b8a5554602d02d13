# Installs pyveda::core as a CMake package: find_package(pyveda CONFIG).
include(GNUInstallDirs)
include(CMakePackageConfigHelpers)

set(VEDA_CMAKE_DIR ${CMAKE_INSTALL_LIBDIR}/cmake/pyveda)

install(TARGETS pyveda_core EXPORT pyvedaTargets
  ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR}
  LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR}
  RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR}
  INCLUDES DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})
install(DIRECTORY ${PROJECT_SOURCE_DIR}/cpp/include/veda
  DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})
install(EXPORT pyvedaTargets NAMESPACE pyveda:: DESTINATION ${VEDA_CMAKE_DIR})

configure_package_config_file(${PROJECT_SOURCE_DIR}/cmake/pyvedaConfig.cmake.in
  ${PROJECT_BINARY_DIR}/pyvedaConfig.cmake INSTALL_DESTINATION ${VEDA_CMAKE_DIR})
write_basic_package_version_file(${PROJECT_BINARY_DIR}/pyvedaConfigVersion.cmake
  COMPATIBILITY SameMinorVersion)
install(FILES ${PROJECT_BINARY_DIR}/pyvedaConfig.cmake
  ${PROJECT_BINARY_DIR}/pyvedaConfigVersion.cmake DESTINATION ${VEDA_CMAKE_DIR})
