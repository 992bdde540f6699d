# Installs the C++ client package (component cropshield_dev):
#   include/cropshield/client/client.h, include/cropshield/v1/*.pb.h (generated),
#   lib/libcropshield_client.a, lib/libcropshield_proto.a,
#   lib/cmake/cropshield/cropshield{Config,ConfigVersion,Targets}.cmake,
#   share/cropshield/proto/cropshield/v1/*.proto.
# An outside project then uses:
#   find_package(cropshield CONFIG REQUIRED)
#   target_link_libraries(app PRIVATE cropshield::client)   # also cropshield::proto (stubs only)
include(GNUInstallDirs)
include(CMakePackageConfigHelpers)

set(CROPSHIELD_INSTALL_CMAKEDIR ${CMAKE_INSTALL_LIBDIR}/cmake/cropshield)
set_target_properties(cropshield_proto PROPERTIES EXPORT_NAME proto)

install(TARGETS cropshield_client cropshield_proto
  EXPORT cropshieldTargets
  ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR} COMPONENT cropshield_dev
  LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR} COMPONENT cropshield_dev
  RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR} COMPONENT cropshield_dev
  INCLUDES DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})
install(DIRECTORY ${PROJECT_SOURCE_DIR}/client/lib/include/
  DESTINATION ${CMAKE_INSTALL_INCLUDEDIR} COMPONENT cropshield_dev FILES_MATCHING PATTERN "*.h")
get_target_property(cropshield_proto_gen_dir cropshield_proto CROPSHIELD_GENERATED_DIR)
install(DIRECTORY ${cropshield_proto_gen_dir}/
  DESTINATION ${CMAKE_INSTALL_INCLUDEDIR} COMPONENT cropshield_dev FILES_MATCHING PATTERN "*.h")
install(DIRECTORY ${PROJECT_SOURCE_DIR}/proto/cropshield
  DESTINATION ${CMAKE_INSTALL_DATADIR}/cropshield/proto COMPONENT cropshield_dev
  FILES_MATCHING PATTERN "*.proto")

install(EXPORT cropshieldTargets
  NAMESPACE cropshield::
  FILE cropshieldTargets.cmake
  DESTINATION ${CROPSHIELD_INSTALL_CMAKEDIR}
  COMPONENT cropshield_dev)
configure_package_config_file(${PROJECT_SOURCE_DIR}/cmake/cropshieldConfig.cmake.in
  ${PROJECT_BINARY_DIR}/cropshieldConfig.cmake
  INSTALL_DESTINATION ${CROPSHIELD_INSTALL_CMAKEDIR})
# 0.x: a minor version may change the API.
write_basic_package_version_file(${PROJECT_BINARY_DIR}/cropshieldConfigVersion.cmake
  VERSION ${PROJECT_VERSION}
  COMPATIBILITY SameMinorVersion)
install(FILES ${PROJECT_BINARY_DIR}/cropshieldConfig.cmake
              ${PROJECT_BINARY_DIR}/cropshieldConfigVersion.cmake
  DESTINATION ${CROPSHIELD_INSTALL_CMAKEDIR}
  COMPONENT cropshield_dev)
