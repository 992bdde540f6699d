# OpenCV core and imgproc, the only modules the server uses. Debian ships OpenCVConfig.cmake only in
# libopencv-dev, which pulls every module's headers (64 more packages, 64 MB on a fresh bookworm);
# without it, libopencv-core-dev and libopencv-imgproc-dev are found directly. Sets OpenCV_LIBS.
find_package(OpenCV QUIET COMPONENTS core imgproc)
if(OpenCV_FOUND)
  return()
endif()
find_path(CROPSHIELD_OPENCV_INCLUDE_DIR opencv2/core.hpp PATH_SUFFIXES opencv4)
find_library(CROPSHIELD_OPENCV_CORE opencv_core)
find_library(CROPSHIELD_OPENCV_IMGPROC opencv_imgproc)
if(NOT CROPSHIELD_OPENCV_INCLUDE_DIR OR NOT CROPSHIELD_OPENCV_CORE OR NOT CROPSHIELD_OPENCV_IMGPROC)
  message(FATAL_ERROR "OpenCV core and imgproc not found: install libopencv-core-dev and "
                      "libopencv-imgproc-dev (scripts/install-deps.sh)")
endif()
add_library(cropshield_opencv INTERFACE)
target_include_directories(cropshield_opencv SYSTEM INTERFACE ${CROPSHIELD_OPENCV_INCLUDE_DIR})
target_link_libraries(cropshield_opencv INTERFACE ${CROPSHIELD_OPENCV_IMGPROC}
                                                  ${CROPSHIELD_OPENCV_CORE})
set(OpenCV_LIBS cropshield_opencv)
