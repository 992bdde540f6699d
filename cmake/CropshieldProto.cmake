# cropshield_proto_library(TARGET PROTO_ROOT PROTOS GRPC_PROTOS)
# Generates C++ messages for PROTOS (and gRPC stubs for those also listed in GRPC_PROTOS), paths
# relative to PROTO_ROOT, into a static library TARGET. The generated headers' folder is the
# target's CROPSHIELD_GENERATED_DIR property (installed by cmake/CropshieldInstall.cmake).
include(GNUInstallDirs)
function(cropshield_proto_library target)
  cmake_parse_arguments(ARG "" "PROTO_ROOT" "PROTOS;GRPC_PROTOS" ${ARGN})
  set(out_dir ${CMAKE_CURRENT_BINARY_DIR}/${target}_gen)
  file(MAKE_DIRECTORY ${out_dir})
  get_target_property(grpc_plugin gRPC::grpc_cpp_plugin LOCATION)
  # protoc and the plugin carry no RPATH on a relocated prefix (GPU host); pass the library path.
  get_filename_component(protobuf_libdir "${Protobuf_LIBRARY}" DIRECTORY)
  set(env ${CMAKE_COMMAND} -E env "LD_LIBRARY_PATH=${protobuf_libdir}:$ENV{LD_LIBRARY_PATH}")
  set(sources)
  foreach(proto ${ARG_PROTOS})
    string(REGEX REPLACE "\\.proto$" "" base ${proto})
    set(outs ${out_dir}/${base}.pb.cc ${out_dir}/${base}.pb.h)
    set(grpc_args)
    if(proto IN_LIST ARG_GRPC_PROTOS)
      list(APPEND outs ${out_dir}/${base}.grpc.pb.cc ${out_dir}/${base}.grpc.pb.h)
      set(grpc_args --grpc_out=${out_dir} --plugin=protoc-gen-grpc=${grpc_plugin})
    endif()
    add_custom_command(
      OUTPUT ${outs}
      COMMAND ${env} $<TARGET_FILE:protobuf::protoc> --proto_path=${ARG_PROTO_ROOT}
              --cpp_out=${out_dir} ${grpc_args} ${ARG_PROTO_ROOT}/${proto}
      DEPENDS ${ARG_PROTO_ROOT}/${proto} protobuf::protoc
      COMMENT "protoc ${proto}")
    list(APPEND sources ${outs})
  endforeach()
  add_library(${target} ${sources})
  target_include_directories(${target} PUBLIC $<BUILD_INTERFACE:${out_dir}>
                                              $<INSTALL_INTERFACE:${CMAKE_INSTALL_INCLUDEDIR}>)
  set_target_properties(${target} PROPERTIES CROPSHIELD_GENERATED_DIR ${out_dir})
  target_link_libraries(${target} PUBLIC protobuf::libprotobuf gRPC::grpc++)
endfunction()
